"""Storage emulators as pytest fixtures: moto's S3 server, gcp-storage-emulator and Azurite.

Each starts once per test session on 127.0.0.1 and is skipped (with the reason) only where its
emulator cannot run on this machine. Import the fixtures into a ``conftest.py`` to use them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulators.server import free_port
from tests.support.storage import wait_for_port

__all__ = ["azurite_connection_string", "gcs_endpoint", "s3_endpoint"]

# gcsfs's experimental gRPC bucket-type probe cannot reach an HTTP-only emulator (60 s timeouts).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

REPO = Path(__file__).resolve().parents[2]
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (not a secret: it is the same for every installation).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _serving(server: Any, port: int) -> Iterator[str]:
    """Start an in-process emulator server, yield its URL, stop it afterwards."""
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    yield from _serving(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False), port)


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    port = free_port()
    yield from _serving(create_server("127.0.0.1", port, in_memory=True), port)


@pytest.fixture(scope="session")
def azurite_connection_string(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = REPO / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists() or shutil.which("node") is None:
        pytest.skip("Azurite is not installed (make test installs it with npm)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
