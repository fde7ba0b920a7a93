"""The cohort-sync spool: layout, atomic idempotent writes, ordered scans, paged reads."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from braze_mixpanel_common.cohort_spool import (
    SessionInfo,
    SpoolError,
    decode_id,
    encode_id,
    listing_time,
    open_spool,
)
from braze_mixpanel_common.errors import SourceError
from tests.support.storage import new_s3_bucket
from tests.tap_braze_currents.conftest import (  # noqa: F401 (fixtures)
    azurite_connection_string,
    gcs_endpoint,
    s3_endpoint,
)

T0 = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)


def body(
    cohort: object = 42,
    session: str = "s-1",
    page: int = 1,
    total: int = 1,
    action: str = "members",
    members: list[dict] | None = None,
) -> dict:
    return {
        "action": action,
        "parameters": {
            "mixpanel_project_id": "7",
            "mixpanel_cohort_id": cohort,
            "mixpanel_cohort_name": "Buyers",
            "mixpanel_cohort_description": "",
            "mixpanel_session_id": session,
            "page_info": {"total_pages": total, "page_count": page},
            "members": members
            if members is not None
            else [{"mixpanel_distinct_id": f"d{page}", "email": f"u{page}@example.com"}],
        },
    }


def test_ids_are_percent_encoded_outside_the_safe_set():
    assert encode_id("ab.C_9-x") == "ab.C_9-x"
    assert encode_id("a/b c~é") == "a%2Fb%20c%7E%C3%A9"
    assert decode_id(encode_id("a/b c~é=%")) == "a/b c~é=%"
    assert encode_id(1234) == "1234"


def test_layout_and_content(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    assert spool.write_page(body(cohort="c/1", session="s 1", page=2, total=3), T0) is True
    path = tmp_path / "cohort=c%2F1" / "session=s%201" / "members" / "page-000002-of-000003.json"
    assert path.exists()
    (session,) = spool.scan()["c/1"]
    assert (session.session_id, session.action, session.total_pages) == ("s 1", "members", 3)
    page = spool.read_page(session, 2)
    assert page.received_at == "2026-12-01T12:00:00.123456Z"
    assert page.action == "members"
    assert page.parameters["mixpanel_cohort_name"] == "Buyers"
    assert page.members == [{"mixpanel_distinct_id": "d2", "email": "u2@example.com"}]
    # Next to the delivery's folder: its arrival marker, keyed by the arrival time.
    markers = [p.name for p in path.parent.parent.iterdir() if p.is_file()]
    assert len(markers) == 1 and markers[0].startswith("arrival-members-20261201T120000123456Z-")
    # Nothing but the page itself is left in the folder (no temporary file).
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_retried_page_is_stored_once_first_delivery_wins(tmp_path: Path):
    spool = open_spool(f"file://{tmp_path}")
    assert spool.write_page(body(members=[{"mixpanel_distinct_id": "first"}]), T0) is True
    later = T0 + timedelta(minutes=5)
    assert spool.write_page(body(members=[{"mixpanel_distinct_id": "second"}]), later) is False
    page = spool.read_page(spool.scan()["42"][0], 1)
    assert page.members == [{"mixpanel_distinct_id": "first"}]
    assert page.received_at == "2026-12-01T12:00:00.123456Z"


def test_concurrent_writers_of_one_page_store_it_once(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def deliver(index: int) -> None:
        barrier.wait()
        results.append(spool.write_page(body(members=[{"mixpanel_distinct_id": str(index)}]), T0))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    folder = tmp_path / "cohort=42" / "session=s-1" / "members"
    assert [p.name for p in folder.iterdir()] == ["page-000001-of-000001.json"]


def test_scan_orders_deliveries_by_arrival_not_by_listing_time(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    for session, action, page, total, micros in [
        ("b", "members", 2, 2, 1),  # the earliest page decides: b arrived first
        ("b", "members", 1, 2, 10),
        ("s", "add_members", 1, 1, 5),
        ("s", "remove_members", 1, 1, 6),  # a shared session id: both calls are kept
        ("a", "add_members", 1, 1, 7),  # the same second as s; an id that sorts lower
        ("z", "members", 2, 3, 0),  # on another cohort
    ]:
        cohort = 7 if session == "z" else 42
        moment = T0 + timedelta(microseconds=micros)
        spool.write_page(body(cohort, session, page, total, action), moment)
        # A store whose clock runs the other way round, at one-second resolution.
        stamp = (T0 - timedelta(seconds=micros)).timestamp() // 1
        os.utime(spool.page_path(cohort, session, action, page, total), (stamp, stamp))
    # A temporary file of a write in progress and a stray object are not pages.
    session_a = tmp_path / "cohort=42" / "session=a" / "add_members"
    (session_a / ".tmp-123-page-000001-of-000001.json").write_text("{")
    (tmp_path / "README").write_text("spool")

    found = spool.scan()
    assert [(s.session_id, s.action) for s in found["42"]] == [
        ("b", "members"),
        ("s", "add_members"),
        ("s", "remove_members"),
        ("a", "add_members"),
    ]
    b = found["42"][0]
    assert b.complete and b.total_pages == 2 and b.pages_present == {1, 2}
    assert b.order_key == f"{b.arrival}|members|b" and b.arrival.startswith(
        "20261201T120000123457Z"
    )
    z = found["7"][0]
    assert not z.complete and z.missing_pages == [1, 3]
    assert list(spool.scan(7)) == ["7"]
    assert spool.scan("nope") == {}


def test_a_delivery_without_a_marker_falls_back_to_its_listing_time(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    spool.write_page(body(session="old"), T0)
    spool.write_page(body(session="new"), T0 + timedelta(seconds=1))
    for marker in (tmp_path / "cohort=42" / "session=old").glob("arrival-*"):
        marker.unlink()  # a crash between the marker and the page, or a hand-copied page
    stamp = (T0 - timedelta(hours=1)).timestamp()
    os.utime(spool.page_path(42, "old", "members", 1, 1), (stamp, stamp))
    old, new = spool.scan()["42"]
    assert (old.session_id, old.arrival, new.session_id) == ("old", None, "new")
    assert old.order_key.startswith("20261201T110000123456Z-|")


def test_new_folders_are_made_durable_before_the_answer(tmp_path: Path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    spool = open_spool(str(tmp_path / "root"))
    spool.write_page(body(cohort=5, session="s"), T0)
    root = tmp_path / "root"
    session = root / "cohort=5" / "session=s"
    for folder in (tmp_path, root, root / "cohort=5", session, session / "members"):
        assert str(folder) in synced, folder  # each new entry is durable in its parent


def test_long_ids_are_stored_under_a_hash(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    session = "s" * 255
    assert spool.write_page(body(session=session), T0) is True
    assert spool.write_page(body(session=session), T0) is False
    (found,) = spool.scan()["42"]
    assert found.session_id.startswith("~") and len(found.session_id) == 41
    assert spool.read_page(found, 1).parameters["mixpanel_session_id"] == session


def test_iter_pages_in_page_order_and_refuses_incomplete_sessions(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    for page in (3, 1, 2):
        spool.write_page(body(page=page, total=3), T0)
    session = spool.scan()["42"][0]
    pages = spool.iter_pages(session)
    assert next(pages).members[0]["mixpanel_distinct_id"] == "d1"
    assert [p.members[0]["mixpanel_distinct_id"] for p in pages] == ["d2", "d3"]
    partial = SessionInfo("42", "s-1", 4, {1, 2, 3}, T0)
    with pytest.raises(
        SourceError, match=r"members session s-1 of cohort 42 is incomplete: pages \[4\] of 4"
    ):
        list(spool.iter_pages(partial))


def test_an_empty_diff_is_one_page_without_members(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    spool.write_page(body(action="remove_members", members=[]), T0)
    (session,) = spool.scan()["42"]
    assert session.complete
    (page,) = spool.iter_pages(session)
    assert page.action == "remove_members" and page.members == []


def test_a_corrupt_page_names_the_object(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    spool.write_page(body(), T0)
    Path(spool.page_path(42, "s-1", "members", 1, 1)).write_text("not json")
    with pytest.raises(SourceError, match=r"page-000001-of-000001\.json is not a spooled page"):
        spool.read_page(spool.scan()["42"][0], 1)


def test_unwritable_spool_raises_spool_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spool = open_spool(str(blocker / "spool"))
    with pytest.raises(SpoolError, match="not writable"):
        spool.check_writable()
    with pytest.raises(SpoolError, match="cannot write"):
        spool.write_page(body(), T0)
    open_spool(str(tmp_path / "ok")).check_writable()
    assert not list((tmp_path / "ok").iterdir())  # the probe is removed


def test_delete_session(tmp_path: Path):
    spool = open_spool(str(tmp_path))
    spool.write_page(body(page=1, total=2), T0)
    spool.write_page(body(page=2, total=2), T0)
    spool.delete_session(spool.scan()["42"][0])
    assert spool.scan() == {}


@pytest.mark.parametrize(
    "info",
    [
        {"mtime": T0.timestamp()},  # local
        {"LastModified": T0},  # s3fs
        {"last_modified": T0.replace(tzinfo=None)},  # adlfs (naive UTC)
        {"mtime": T0},  # gcsfs
        {"updated": "2026-12-01T12:00:00.123456Z"},  # older gcsfs
    ],
)
def test_listing_times_are_normalised(info):
    assert listing_time(info) == T0


def test_s3_conditional_put_and_scan(s3_endpoint):  # noqa: F811
    bucket, options = new_s3_bucket(s3_endpoint, "spool")
    _write_and_scan(f"s3://{bucket}/spool", options)


def _write_and_scan(url: str, options: dict, conditional: bool = True) -> None:
    """Two writers of one page, then a scan and a paged read, on one object store.

    ``conditional``: the store refuses a create-only PUT of an existing object (the race of two
    replicas that both saw no page is then lost by one of them).
    """
    writer = open_spool(url, options)
    assert writer.write_page(body(page=2, total=2), T0) is True
    assert writer.write_page(body(page=2, total=2, members=[]), T0) is False  # a retry
    if conditional:
        other = open_spool(url, {**options, "skip_instance_cache": True})
        monkey_exists = other.fs.exists
        other.fs.exists = lambda path: False  # a replica that has not seen the page
        try:
            assert other.write_page(body(page=2, total=2, members=[]), T0) is False
        finally:
            other.fs.exists = monkey_exists
    assert writer.write_page(body(page=1, total=2), T0) is True
    (session,) = open_spool(url, {**options, "skip_instance_cache": True}).scan()["42"]
    assert session.complete and session.first_seen.tzinfo is not None
    assert [p.members[0]["mixpanel_distinct_id"] for p in writer.iter_pages(session)] == [
        "d1",
        "d2",
    ]
    writer.check_writable()


def test_gcs_conditional_write_and_scan(gcs_endpoint):  # noqa: F811
    import gcsfs

    options = {"endpoint_url": gcs_endpoint, "token": "anon", "project": "test"}
    bucket = f"spool-{uuid.uuid4().hex[:10]}"
    gcsfs.GCSFileSystem(**options).mkdir(bucket)
    # gcsfs sends ifGenerationMatch=0 (real GCS refuses an existing object with 412), but
    # gcp-storage-emulator ignores the precondition, so the replica race is not checked here.
    _write_and_scan(f"gs://{bucket}/spool", options, conditional=False)


def test_azure_conditional_write_and_scan(azurite_connection_string):  # noqa: F811
    import adlfs

    options = {"connection_string": azurite_connection_string}
    container = f"spool-{uuid.uuid4().hex[:10]}"
    adlfs.AzureBlobFileSystem(**options).mkdir(container)
    _write_and_scan(f"az://{container}/spool", options)
