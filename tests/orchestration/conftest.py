"""Dagster code location tests: Meltano with this project's plugins, private Dagster homes.

The Dagster tests need the ``[dagster]`` extra (``make test`` installs it); without Dagster their
modules are skipped with that reason.
"""

from __future__ import annotations

import pytest

from tests.support.meltano import install_plugins, meltano_executable


@pytest.fixture(scope="session")
def meltano() -> str:
    """Path of a ``meltano`` executable with this project's plugins installed."""
    return install_plugins(meltano_executable())
