"""Conditional writes on every backend: create if absent, replace or delete if unchanged."""

from __future__ import annotations

import re

import pytest

from braze_mixpanel_common.conditional import Versioned, conditional_store
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.storage import open_url
from tests.support.buckets import azure_container, gcs_bucket, s3_bucket
from tests.support.fault_proxy import FaultProxy
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


@pytest.fixture(params=["s3", "azure"])
def proxied(request, tmp_path):
    """A fresh bucket (container) reached through a fault proxy: ``(proxy, store, path)``."""
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        url, options = s3_bucket(endpoint)
        upstream = endpoint
    else:
        url, options = azure_container(request.getfixturevalue("azurite_connection_string"))
        upstream = re.search(r"BlobEndpoint=(http://[^/;]+)", options["connection_string"])[1]
    with FaultProxy(upstream) as proxy:
        if request.param == "s3":
            options = {**options, "endpoint_url": proxy.url}
        else:
            text = options["connection_string"].replace(upstream, proxy.url)
            options = {"connection_string": text}
        fs, path = open_url(f"{url}/dir/obj.json", options)
        yield proxy, conditional_store(fs), path


def test_a_lost_reply_is_recognised_as_the_writers_own(proxied):
    """The store applied the write, the reply was lost, the client's retry met a failed
    condition: the object holds the writer's bytes, so the write succeeded."""
    proxy, store, path = proxied
    create = proxy.add("drop_reply", method="PUT", header="If-None-Match")
    first = store.write(path, b"mine-1", None)
    assert create.hits == 1 and first is not None
    replace = proxy.add("drop_reply", method="PUT", header="If-Match")
    second = store.write(path, b"mine-2", first)
    assert replace.hits == 1 and second is not None and second != first
    assert store.read(path) == Versioned(b"mine-2", second)
    # another writer's bytes are still a conflict
    assert store.write(path, b"theirs", first) is None
    assert store.write(path, b"theirs", None) is None
