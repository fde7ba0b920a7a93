"""One fresh bucket per test on each storage emulator, as ``(url_root, options)`` pairs."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.storage import new_s3_bucket


def s3_bucket(endpoint: str) -> tuple[str, dict[str, Any]]:
    """A new bucket on moto's S3 server (moto's store is shared by every server in a process)."""
    bucket, options = new_s3_bucket(endpoint, "ledger")
    return f"s3://{bucket}", options


def gcs_bucket(endpoint: str) -> tuple[str, dict[str, Any]]:
    """A new bucket on gcp-storage-emulator."""
    import gcsfs

    bucket = f"ledger-{uuid.uuid4().hex[:12]}"
    options = {"endpoint_url": endpoint, "token": "anon", "project": "test"}
    gcsfs.GCSFileSystem(**options).mkdir(bucket)
    return f"gs://{bucket}", options


def azure_container(connection_string: str) -> tuple[str, dict[str, Any]]:
    """A new container on Azurite."""
    import adlfs

    container = f"ledger-{uuid.uuid4().hex[:12]}"
    options = {"connection_string": connection_string}
    adlfs.AzureBlobFileSystem(**options).mkdir(container)
    return f"az://{container}", options
