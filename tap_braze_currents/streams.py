"""One Singer stream per Currents event type, incremental by file."""

from __future__ import annotations

import gzip
import itertools
import sys
import typing as t
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cached_property

from singer_sdk import Stream
from singer_sdk import singerlib as singer
from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.helpers.conform import TypeConformanceLevel
from typing_extensions import override

from braze_mixpanel_common.currents import stream_name
from braze_mixpanel_common.fast_records import PassThroughRecords
from tap_braze_currents.reader import (
    CorruptFileError,
    UnreadableFileError,
    check_structure,
    decode_blocks,
    float32_fields,
    open_local,
    shortest_float32,
)
from tap_braze_currents.schemas import JSONSchema, record_schema
from tap_braze_currents.settings import Settings
from tap_braze_currents.staging import EncodedStage, RecordStage
from tap_braze_currents.state import HOUR_FORMAT, FileLedger
from tap_braze_currents.storage import CurrentsFile, CurrentsStorage
from tap_braze_currents.summary import SyncSummary

if t.TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.metrics import Counter

SOURCE_FILE_FIELD = "_sdc_source_file"
Record = dict[str, t.Any]
T = t.TypeVar("T")
# Level 1: batch files are written once and read once; level 9 (the SDK's) cost more CPU than
# the whole record path.
BATCH_GZIP_LEVEL = 1


class CurrentsStream(PassThroughRecords, Stream):
    """Records of one Currents event type, read file by file.

    Each record is the Avro record as Braze wrote it (``time`` stays integer seconds) plus
    ``_sdc_source_file``. A file is read once across runs (see ``state.py``); state is emitted
    after every file, so an interrupted run resumes at the first file not fully emitted.

    Every file is decoded whole before its first record is written (a corrupt file yields
    none). When no stream map, flattening, deselected field, BATCH or record limit applies, its
    records are encoded as RECORD lines while it decodes and written in large blocks (see
    :meth:`_sync_records`); otherwise they take the SDK's record path.
    """

    primary_keys: t.ClassVar[list[str]] = ["id"]
    # Avro already types every value as the schema says; the SDK's per-value conformance pass
    # was half of the tap's CPU time.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(
        self,
        tap: Tap,
        *,
        event_type: str,
        folders: list[str],
        storage: CurrentsStorage,
        schema: JSONSchema,
        settings: Settings,
        summary: SyncSummary,
    ) -> None:
        schema.setdefault("properties", {})[SOURCE_FILE_FIELD] = {"type": ["string"]}
        super().__init__(tap, schema=schema, name=stream_name(event_type))
        self.event_type = event_type
        self.folders = folders
        self.storage = storage
        self.settings = settings
        self.summary = summary
        # Bookmarks are per file (FileLedger), not per record value.
        self.forced_replication_method = "INCREMENTAL"

    @property
    def has_output(self) -> bool:
        """True when the bucket holds files of this type or ``event_types`` names it.

        Discovery lists every known type, so a catalog can select one before its first file
        arrives; but only these streams are synced, so a target is not told about (and does not
        create a table for) a type that has no data.
        """
        requested = self.settings.event_types or ()
        return bool(self.folders) or self.event_type in requested

    @property
    @override
    def selected(self) -> bool:
        """Selected in the catalog and :attr:`has_output` (no SCHEMA or STATE otherwise)."""
        return self.has_output and Stream.selected.fget(self)  # type: ignore[attr-defined]

    @selected.setter
    def selected(self, value: bool | None) -> None:
        Stream.selected.fset(self, value)  # type: ignore[attr-defined]

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, t.Any], *, context: t.Any = None
    ) -> None:
        """No per-record bookmark: the file ledger is advanced after each whole file."""

    @override
    def log_sync_costs(self) -> None:
        """Also log the tap's end-of-run summary (once, for all streams).

        The SDK calls this for every stream after all of them are synced.
        """
        super().log_sync_costs()
        self.summary.log_once(len(self.storage.ignored_files))

    @override
    def get_records(self, context: t.Any) -> t.Iterable[Record]:
        """Yield the records of every file not read before, oldest partition first."""
        return self._sync_files(self._read_file)

    @override
    def _sync_records(
        self, context: t.Any = None, *, write_messages: bool = True
    ) -> t.Generator[Record, t.Any, t.Any]:
        """Write each file's records as RECORD lines encoded while it decodes (the fast path).

        The lines are the SDK writer's own (same encoder, same message fields); the record
        count metric, the per-file STATE and the final STATE are the SDK's. Any case the fast
        path does not cover takes the SDK's own method (see :attr:`_encodes_ahead`).

        A stream with nothing to read (no files, not in ``event_types``) writes nothing, not
        even STATE: a normal sync never syncs it, but the SDK's ``--test`` syncs every stream.
        """
        if not self.has_output:
            return
        if not (write_messages and self._encodes_ahead):
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        with self.get_record_counter() as counter, self.get_sync_timer():
            self._write_starting_replication_value(None)
            for _ in self._sync_files(lambda file: self._write_file_lines(file, counter)):
                pass  # pragma: no cover - writing a file's lines yields no records
        self._finalize_state(self.stream_state)
        self._write_state_message()

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: t.Any = None
    ) -> t.Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """One JSONL batch file per Currents file, encoded while the file decodes.

        The file is written only once the Currents file decoded whole (no half files), with
        the encoder of the RECORD fast path; ``compression: gzip`` writes gzip at level 1,
        ``none`` plain JSONL. ``batch_size`` does not split a Currents file (Braze writes at most
        about 15,000 events per file). Stream maps, flattening, deselected fields, a record limit
        or ``parquet`` take the SDK's own batcher.
        """
        encoding = batch_config.encoding
        if not (
            self._pass_through and self.ABORT_AT_RECORD_COUNT is None and encoding.format == "jsonl"
        ):
            yield from super().get_batches(batch_config, context)
            return
        sync_id = f"{self.tap_name}--{self.name}-{uuid.uuid4()}"
        names = (f"{batch_config.storage.prefix or ''}{sync_id}-{n}" for n in itertools.count(1))
        yield from self._sync_files(
            lambda file: self._write_batch_file(file, batch_config, next(names))
        )

    def _write_batch_file(
        self, file: CurrentsFile, batch_config: BatchConfig, name: str
    ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """Decode the file whole, then write its records as one JSONL batch file."""
        encoding, storage = batch_config.encoding, batch_config.storage
        compressed = encoding.compression == "gzip"
        name += ".json.gz" if compressed else ".jsonl"
        stage = EncodedStage(b"", b"\n", encoder.encode_into)
        try:
            source = self._decode(file, stage.add)
            if stage.count:
                with storage.open(name, "wb") as raw:
                    if compressed:
                        with gzip.GzipFile(
                            fileobj=raw, mode="wb", compresslevel=BATCH_GZIP_LEVEL
                        ) as packed:
                            stage.write_to(t.cast(t.IO[bytes], packed))  # writes like a file
                    else:
                        stage.write_to(raw)
        finally:
            stage.close()
        self._file_read(source, stage.count)
        if stage.count:
            yield encoding, [storage.get_url(name)]

    @property
    def _encodes_ahead(self) -> bool:
        """Whether records can be written as lines encoded ahead: nothing would change them."""
        return (
            self._pass_through
            and not self._batching
            and self.ABORT_AT_RECORD_COUNT is None
            and isinstance(self._tap.message_writer, MsgSpecWriter)
        )

    def _sync_files(self, read: Callable[[CurrentsFile], Iterator[T]]) -> Iterator[T]:
        """Read every file not read before with ``read``, oldest partition first.

        Each whole file is marked read in the ledger and the state emitted after it. A failure
        (a corrupt file under ``on_corrupt_file: fail``, a listing error) logs the end-of-run
        summary before it ends the sync.
        """
        try:
            yield from self._unread_records(read)
        except Exception:
            self.summary.log_once(len(self.storage.ignored_files))
            raise

    def _unread_records(self, read: Callable[[CurrentsFile], Iterator[T]]) -> Iterator[T]:
        settings = self.settings
        ledger = FileLedger(self.stream_state)
        min_hour = max(filter(None, (ledger.floor, settings.start_hour)), default=None)
        unreadable: list[CurrentsFile] = []
        files = self.storage.files(self.event_type, self.folders, min_hour, settings.end_hour)
        for settled, file in enumerate(files):
            self.summary.file_done(self.name, settled, len(files))  # throttled progress line
            relative = self.storage.relative(file.path)
            if ledger.is_read(file, relative):
                self.summary.files_already_read += 1
                continue
            try:
                yield from read(file)
            except UnreadableFileError as exc:
                self._on_bad_file(file, str(exc), self.summary.unreadable)
                unreadable.append(file)
                continue
            except CorruptFileError as exc:
                self._on_bad_file(file, exc.reason, self.summary.corrupt)
            ledger.mark_read(file, relative)
            self._checkpoint()
        now_hour = datetime.now(UTC).strftime(HOUR_FORMAT)
        ledger.advance(settings.lookback_hours, now_hour, unreadable)

    def _read_file(self, file: CurrentsFile) -> Iterator[Record]:
        """The SDK record path: the file's records, once all of them decoded."""
        stage = RecordStage()
        try:
            source = self._decode(file, stage.extend)
        except BaseException:
            stage.close()
            raise
        yield from stage.drain()
        self._file_read(source, stage.count)

    def _write_file_lines(self, file: CurrentsFile, counter: Counter) -> Iterator[Record]:
        """The fast path: write the file's RECORD lines, once all of its records decoded."""
        prefix, suffix = self._record_line_parts()
        stage = EncodedStage(prefix, suffix, encoder.encode_into)
        try:
            source = self._decode(file, stage.add)
            sys.stdout.flush()  # what the SDK's writer wrote before
            stage.write_to(sys.stdout.buffer)
            sys.stdout.flush()
        finally:
            stage.close()
        counter.increment(stage.count)
        self.state_manager.is_flushed = False
        self._file_read(source, stage.count)
        return iter(())

    def _record_line_parts(self) -> tuple[bytes, bytes]:
        """The encoded RECORD message before and after its record, as the SDK writes it.

        ``time_extracted`` is the time the file is read (the SDK's path takes it per record).
        """
        message = singer.RecordMessage(
            stream=self.stream_maps[0].stream_alias,
            record={},
            version=self._stream_version,
            time_extracted=datetime.now(UTC),
        ).to_dict()
        marker = "\u0000record\u0000"
        message["record"] = marker
        prefix, suffix = (encoder.encode(message) + b"\n").split(encoder.encode(marker))
        return prefix, suffix

    def _decode(self, file: CurrentsFile, take: Callable[[list[Record]], None]) -> str:
        """Decode the whole file, passing each block's finished records to ``take``.

        Each record gets ``_sdc_source_file`` and its 32-bit floats shortened. Returns the
        file's display name.
        """
        source = self.storage.display(file.path)
        with open_local(self.storage.fs, file.path) as handle:
            writer_schema = check_structure(handle, source)
            self._note_drift(writer_schema, source)
            floats = float32_fields(writer_schema)
            for records in decode_blocks(handle, source):
                for record in records:
                    for name in floats:
                        if record.get(name) is not None:
                            record[name] = shortest_float32(record[name])
                    record[SOURCE_FILE_FIELD] = source
                take(records)
        return source

    def _file_read(self, source: str, records: int) -> None:
        self.summary.files_read += 1
        self.summary.records += records
        self.logger.debug("Read %d records from %s", records, source)

    def _on_bad_file(self, file: CurrentsFile, reason: str, bucket: list[tuple[str, str]]) -> None:
        source = self.storage.display(file.path)
        bucket.append((source, reason))
        if self.settings.on_corrupt_file == "fail":
            raise CorruptFileError(
                source, f"{reason} (on_corrupt_file=fail; set it to 'skip' to go on)"
            )
        self.logger.warning("Skipping %s: %s", source, reason)

    def _note_drift(self, writer_schema: dict[str, t.Any], source: str) -> None:
        """Log fields that the stream schema does not know (they are passed through as is)."""
        known = self.effective_schema["properties"]
        try:
            fields = record_schema(writer_schema)["properties"]
        except ValueError as exc:
            raise CorruptFileError(source, str(exc)) from exc
        new = {name for name in fields if name not in known}
        if new - self.summary.drift.get(self.name, set()):
            self.summary.drift.setdefault(self.name, set()).update(new)
            self.logger.info(
                "%s has fields not in the '%s' schema: %s. They are passed through; "
                "run --discover to add them to the catalog.",
                source,
                self.name,
                ", ".join(sorted(new)),
            )

    def _checkpoint(self) -> None:
        """Emit the state now that a whole file's records are written.

        Under ``batch_config`` the file's last records may sit in a batch file not announced
        yet, so the state waits: the SDK writes it after the next BATCH message.
        """
        self.state_manager.is_flushed = False
        if not self._batching:
            self._write_state_message()

    @cached_property
    def _batching(self) -> bool:
        """Whether records go to BATCH files (the SDK's ``batch_config``)."""
        return self.get_batch_config(self.config) is not None
