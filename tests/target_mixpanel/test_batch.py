"""BATCH messages take the RECORD path: same events, skips, dead letters and state checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braze_mixpanel_common.batch import BatchFileError
from braze_mixpanel_common.batch_target import is_under
from braze_mixpanel_common.errors import DestinationError
from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.server import Response
from tests.support.batch import as_batches, batch_msg
from tests.support.mixpanel import currents_record, record_msg, sa_config, schema_msg, state_msg

CUSTOM = "users_behaviors_customevent"
EMAIL = "users_messages_email_send"
ENCODINGS = [(f, c) for f in ("jsonl", "parquet") for c in ("gzip", "none")]


def mixed_messages() -> list[dict]:
    """Two streams, states between them, and records that are skipped or dead-lettered."""
    msgs: list[dict] = [schema_msg(CUSTOM), schema_msg(EMAIL)]
    msgs += [record_msg(CUSTOM, currents_record(i)) for i in range(20)]
    msgs.append(state_msg({"at": 20}))
    msgs += [record_msg(EMAIL, currents_record(i)) for i in range(20, 35)]
    msgs.append(record_msg(EMAIL, currents_record(35, external_user_id=None)))  # skipped
    msgs.append(record_msg(CUSTOM, currents_record(36, name=None)))  # dead letter
    msgs.append(state_msg({"at": 37}))
    return msgs


def outcome(run, emulator, dead_path: Path) -> tuple:
    dead_letters = [json.loads(x) for x in dead_path.read_text().splitlines()]
    return (
        emulator.event_keys(),
        run.states,
        dict(run.stats.skipped),
        [(d["stream"], d["reason"], d["record"]["id"]) for d in dead_letters],
        run.stats.records_in,
    )


@pytest.mark.parametrize(("fmt", "compression"), ENCODINGS)
def test_batch_messages_load_exactly_like_records(
    run_target, tmp_path: Path, fmt, compression
) -> None:
    results = []
    for batched in (False, True):
        emu = MixpanelImportEmulator().start()
        try:
            msgs = mixed_messages()
            if batched:
                msgs = as_batches(msgs, tmp_path / "batches", fmt, compression, per_file=4)
                assert any(m["type"] == "BATCH" for m in msgs)
                assert not any(m["type"] == "RECORD" for m in msgs)
            dead = tmp_path / f"dead-{batched}.jsonl"
            run = run_target(sa_config(emu.url, batch_size=6, dead_letter_path=str(dead)), msgs)
            results.append(outcome(run, emu, dead))
        finally:
            emu.stop()
    assert results[0] == results[1]
    keys, states, skipped, dead, records_in = results[1]
    assert len(keys) == 35
    assert states[-1] == {"at": 37}
    assert skipped == {"no_external_user_id": 1}
    assert dead == [(CUSTOM, "invalid_record", "evt-000036")]
    assert records_in == 37


def records_then_states(*ends: int) -> list[dict]:
    """A SCHEMA, then records up to each of ``ends`` with a STATE ``{"at": end}`` after each."""
    msgs, start = [schema_msg(CUSTOM)], 0
    for end in ends:
        msgs += [record_msg(CUSTOM, currents_record(i)) for i in range(start, end)]
        msgs.append(state_msg({"at": end}))
        start = end
    return msgs


def down_after_the_first_request() -> MixpanelImportEmulator:
    """A started emulator that imports the first request, then answers 503 for good."""
    emu = MixpanelImportEmulator()
    original = emu._import
    answered: list[int] = []

    def fail_after_first(request):
        if answered:
            return Response(503, {"error": "down"})
        answered.append(1)
        return original(request)

    emu._import = fail_after_first
    emu.start()
    return emu


def test_state_after_a_batch_waits_for_mixpanel_to_confirm_it(run_target, tmp_path) -> None:
    """Mixpanel fails for good after the first request: the STATE after the BATCH never goes."""
    emu = down_after_the_first_request()
    try:
        msgs = records_then_states(5, 30)
        run = run_target(
            sa_config(emu.url, batch_size=5, max_concurrency=1),
            as_batches(msgs, tmp_path, per_file=5, files_per_batch=10),
            expect_error=True,
            backoff=BackoffPolicy(max_attempts=2),
        )
    finally:
        emu.stop()
    assert isinstance(run.error, DestinationError)
    assert {"at": 30} not in run.states  # its records were never confirmed
    assert run.states in ([], [{"at": 5}])
    assert len(emu.events) == 5


def test_unreadable_file_ends_the_run_without_the_state_after_it(
    emulator, run_target, tmp_path
) -> None:
    msgs = [schema_msg(CUSTOM)]
    msgs += [record_msg(CUSTOM, currents_record(i)) for i in range(4)]
    msgs.append(state_msg({"at": 4}))
    msgs = as_batches(msgs, tmp_path)
    missing = (tmp_path / "missing.jsonl.gz").as_uri()
    msgs += [batch_msg(CUSTOM, [missing]), state_msg({"at": 8})]
    run = run_target(sa_config(emulator.url), msgs, expect_error=True)
    assert isinstance(run.error, BatchFileError)
    assert missing in str(run.error)
    assert "jsonl (gzip)" in str(run.error)
    assert {"at": 8} not in run.states
    # The run stops at once: what was read before is resent next run (its state did not go out
    # unless Mixpanel had confirmed it).
    assert run.states in ([], [{"at": 4}])
    if run.states:
        assert len(emulator.events) == 4


def test_batch_in_a_dry_run_is_written_not_sent(emulator, run_target, tmp_path) -> None:
    out = tmp_path / "payloads.ndjson"
    msgs = [schema_msg(CUSTOM)] + [record_msg(CUSTOM, currents_record(i)) for i in range(7)]
    config = sa_config(emulator.url, dry_run=True, dry_run_path=str(out))
    run_target(config, as_batches(msgs, tmp_path / "b", "parquet", "none"))
    assert emulator.stats["requests"] == 0
    assert len(out.read_text().splitlines()) == 7


def test_batch_before_its_schema_is_refused(emulator, run_target, tmp_path) -> None:
    msgs = as_batches([record_msg(CUSTOM, currents_record(1))], tmp_path)
    run = run_target(sa_config(emulator.url), msgs, expect_error=True)
    assert "schema" in str(run.error).lower()
    assert emulator.stats["requests"] == 0


def test_about_declares_batch() -> None:
    from target_mixpanel.target import TargetMixpanel

    assert "batch" in [str(c.value) for c in TargetMixpanel.capabilities]
    properties = TargetMixpanel.config_jsonschema["properties"]
    assert properties["batch_storage_options"]["secret"] is True
    assert "batch_config" not in properties  # a tap's setting; a target reads the URLs it gets


def batch_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize("delete", [True, False])
def test_loaded_batch_files_are_deleted_only_when_asked(emulator, run_target, tmp_path, delete):
    msgs = [schema_msg(CUSTOM)] + [record_msg(CUSTOM, currents_record(i)) for i in range(9)]
    msgs = as_batches(msgs, tmp_path / "b", per_file=4)
    assert batch_files(tmp_path / "b")
    config = sa_config(emulator.url, batch_delete_after_load=delete)
    run_target({**config, "batch_delete_root": str(tmp_path / "b")}, msgs)
    assert len(emulator.events) == 9
    assert bool(batch_files(tmp_path / "b")) is not delete


def test_a_batch_is_deleted_once_the_state_after_it_is_written(run_target, tmp_path) -> None:
    """Mixpanel fails for good after the first batch: that batch's file goes, the next stays."""
    emu = down_after_the_first_request()
    try:
        msgs = records_then_states(5, 10)
        run = run_target(
            sa_config(
                emu.url,
                batch_size=5,
                max_concurrency=1,
                batch_delete_after_load=True,
                batch_delete_root=f"file://{tmp_path / 'b'}",
            ),
            as_batches(msgs, tmp_path / "b", per_file=5, files_per_batch=1),
            expect_error=True,
            backoff=BackoffPolicy(max_attempts=2),
        )
    finally:
        emu.stop()
    assert isinstance(run.error, DestinationError)
    assert run.states == [{"at": 5}]
    assert [path.name for path in batch_files(tmp_path / "b")] == ["b1.jsonl.gz"]


def test_a_failed_run_keeps_its_batch_files(run_target, tmp_path) -> None:
    emu = MixpanelImportEmulator()
    emu._import = lambda request: Response(503, {"error": "down"})
    emu.start()
    try:
        msgs = [schema_msg(CUSTOM)] + [record_msg(CUSTOM, currents_record(i)) for i in range(9)]
        run = run_target(
            sa_config(emu.url, batch_delete_after_load=True, batch_delete_root=str(tmp_path)),
            as_batches(msgs, tmp_path / "b", per_file=4),
            expect_error=True,
            backoff=BackoffPolicy(max_attempts=2),
        )
    finally:
        emu.stop()
    assert isinstance(run.error, DestinationError)
    assert len(batch_files(tmp_path / "b")) == 3


def test_a_dry_run_keeps_its_batch_files(emulator, run_target, tmp_path) -> None:
    msgs = [schema_msg(CUSTOM)] + [record_msg(CUSTOM, currents_record(i)) for i in range(5)]
    config = sa_config(
        emulator.url,
        dry_run=True,
        dry_run_path=str(tmp_path / "p.ndjson"),
        batch_delete_after_load=True,
        batch_delete_root=str(tmp_path),
    )
    run_target(config, as_batches(msgs, tmp_path / "b"))
    assert batch_files(tmp_path / "b")


@pytest.mark.parametrize("root", ["unset", "path", "url"])
def test_only_files_under_batch_delete_root_are_deleted(
    emulator, run_target, tmp_path, root, caplog
):
    """A manifest line is trusted to be read, not to be deleted: files outside the root stay."""
    trusted, other = tmp_path / "batches", tmp_path / "precious"
    inside = as_batches(
        [schema_msg(CUSTOM), *[record_msg(CUSTOM, currents_record(i)) for i in range(4)]],
        trusted,
        per_file=2,
    )
    outside = as_batches(
        [record_msg(CUSTOM, currents_record(i)) for i in range(4, 8)], other, per_file=2
    )
    # A path that starts inside the root and climbs out of it is outside too.
    climbing = batch_msg(CUSTOM, [f"file://{trusted}/../precious/b0.jsonl.gz"], "jsonl", "gzip")
    config = sa_config(emulator.url, batch_delete_after_load=True)
    if root != "unset":
        config["batch_delete_root"] = str(trusted) if root == "path" else f"file://{trusted}"
    with caplog.at_level("WARNING"):
        run_target(config, [*inside, *outside, climbing])
    assert len(emulator.events) == 8  # every file read (the climbing one again: same $insert_ids)
    assert len(batch_files(other)) == 2  # never deleted
    assert bool(batch_files(trusted)) is (root == "unset")  # unset: nothing deleted
    warnings = [r for r in caplog.records if "not deleted" in r.getMessage()]
    assert len(warnings) == 1
    assert "batch_delete_root" in warnings[0].getMessage()


def test_is_under_compares_normalised_locations(tmp_path):
    root = tmp_path / "batches"
    assert is_under(f"file://{root}/a/b.jsonl", str(root))
    assert is_under(str(root / "b.jsonl"), f"file://{root}/")
    assert not is_under(str(root), str(root))  # the root itself is no file under it
    assert not is_under(f"{root}-evil/b.jsonl", str(root))
    assert not is_under(f"{root}/../b.jsonl", str(root))
    assert is_under("s3://bucket/batches/x.jsonl", "s3://bucket/batches")
    assert not is_under("s3://bucket/batches/../x.jsonl", "s3://bucket/batches")
    assert not is_under("gs://bucket/batches/x.jsonl", "s3://bucket/batches")
    assert not is_under("s3://bucket/batches2/x.jsonl", "s3://bucket/batches")
