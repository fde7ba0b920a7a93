"""The same tap against real storage APIs: S3 (moto server), GCS (emulator), Azure (Azurite)."""

from __future__ import annotations

import collections
import uuid

import pytest

from sandbox.loop.currents_gen import generate_export
from tap_braze_currents.tap import TapBrazeCurrents
from tests.support.storage import upload_tree, upload_tree_gcs


@pytest.fixture
def export(tmp_path):
    return generate_export(tmp_path / "tree", seed=3, hours=2, events_per_file=20)


def assert_reads_everything_and_resumes(run_tap, config, export):
    first = run_tap(TapBrazeCurrents, config)
    got = collections.Counter(r["id"] for r in first.all_records())
    assert got == collections.Counter(export.expected_ids())
    assert all("://" in r["_sdc_source_file"] for r in first.all_records())
    second = run_tap(TapBrazeCurrents, config, state=first.state)
    assert second.all_records() == []


def test_s3(s3_endpoint, export, run_tap, monkeypatch):
    import boto3
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # moto keeps one in-memory S3 per process, shared by every moto server other tests start.
    bucket = f"braze-exports-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    upload_tree(s3fs.S3FileSystem(**options), export.root, f"{bucket}/data")
    config = {"storage_url": f"s3://{bucket}/data/currents", "storage_options": options}
    assert_reads_everything_and_resumes(run_tap, config, export)


def test_gcs(gcs_endpoint, export, run_tap):
    import gcsfs

    options = {"endpoint_url": gcs_endpoint, "token": "anon", "project": "test"}
    fs = gcsfs.GCSFileSystem(**options)
    fs.mkdir("braze-currents")
    upload_tree_gcs(fs, gcs_endpoint, export.root, "braze-currents")
    config = {"storage_url": "gs://braze-currents/currents", "storage_options": options}
    assert_reads_everything_and_resumes(run_tap, config, export)


def test_azure_blob(azurite_connection_string, export, run_tap):
    import adlfs

    options = {"connection_string": azurite_connection_string}
    fs = adlfs.AzureBlobFileSystem(**options)
    fs.mkdir("currents-container")
    upload_tree(fs, export.root, "currents-container")
    config = {"storage_url": "az://currents-container/currents", "storage_options": options}
    assert_reads_everything_and_resumes(run_tap, config, export)
