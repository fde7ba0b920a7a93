"""Conditional writes on every backend: create if absent, replace or delete if unchanged."""

from __future__ import annotations

import pytest

from braze_mixpanel_common.conditional import conditional_store
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.storage import open_url
from tests.support.buckets import azure_container, gcs_bucket, s3_bucket
from tests.support.storage_emulators import (  # noqa: F401 (fixtures)
    azurite_connection_string,
    gcs_endpoint,
    s3_endpoint,
)


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store"), {}
    if request.param == "s3":
        return s3_bucket(request.getfixturevalue("s3_endpoint"))
    if request.param == "gcs":
        return gcs_bucket(request.getfixturevalue("gcs_endpoint"))
    return azure_container(request.getfixturevalue("azurite_connection_string"))


def test_compare_and_swap(root, tmp_path, request):
    url, options = root
    fs, base = open_url(f"{url}/dir/obj.json", options)
    store = conditional_store(fs)
    assert store.read(base) is None
    assert store.download(base, tmp_path / "copy") is None
    first = store.write(base, b"one", None)
    assert first is not None
    found = store.read(base)
    assert found is not None and found.data == b"one" and found.token == first
    source = tmp_path / "two.bin"
    source.write_bytes(b"two\r")
    second = store.write(base, source, first)
    assert second is not None and second != first
    assert store.download(base, tmp_path / "copy") == second
    assert (tmp_path / "copy").read_bytes() == b"two\r"
    assert store.delete(base, second)
    assert store.read(base) is None
    if "gcs" in request.node.name:
        pytest.skip("gcp-storage-emulator ignores ifGenerationMatch; real GCS enforces it")
    assert store.write(base, b"three", None) is not None
    assert store.write(base, b"four", None) is None  # exists
    assert store.write(base, b"four", first) is None  # stale token
    assert not store.delete(base, first)
    assert store.read(base).data == b"three"


def test_unknown_protocol_is_a_configuration_error():
    fs, _ = open_url("memory://x/ledger", {})
    with pytest.raises(ConfigurationError, match="conditional writes"):
        conditional_store(fs)
