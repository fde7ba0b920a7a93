"""Maintenance scripts (settings tables in docs/, meltano.yml plugin definitions)."""
