"""Local stand-ins for Mixpanel, Braze and Currents exports, and the closed loop on them.

:mod:`sandbox.emulators` holds the API emulators, :mod:`sandbox.loop` the machinery that runs the
loop on them. Used by the tests, the demo and the benchmarks alike; nothing here imports
``tests`` or ``demo``.
"""
