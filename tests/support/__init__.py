"""Helpers the test folders share (builders, runners, clocks); fixtures stay in conftest.py."""
