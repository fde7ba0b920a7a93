"""Storage emulators for the Currents tap: moto's S3 server, gcp-storage-emulator and Azurite.

Each starts once per test session on 127.0.0.1 and is skipped (with the reason) only where its
emulator cannot run on this machine.
"""

from __future__ import annotations

from tests.support.storage_emulators import (  # noqa: F401 (fixtures)
    azurite_connection_string,
    gcs_endpoint,
    s3_endpoint,
)
