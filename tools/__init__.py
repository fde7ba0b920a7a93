"""Maintenance scripts (README settings tables, meltano.yml plugin definitions)."""
