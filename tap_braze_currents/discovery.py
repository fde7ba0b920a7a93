"""Stream schemas at discovery: the built-in catalogue united with the schemas found in files.

Reading one file header per schema folder (``version=<n>/<env>`` or ``<schema-id>/<zone>``) of the
recent partitions catches every schema Braze is writing now without reading the whole bucket.
"""

from __future__ import annotations

import io
import logging

import fastavro

from tap_braze_currents.events import catalogue_schema
from tap_braze_currents.schemas import JSONSchema, merge, record_schema
from tap_braze_currents.state import shift_hour
from tap_braze_currents.storage import CurrentsFile, CurrentsStorage

logger = logging.getLogger(__name__)
# Below this many recent files, every header is read rather than one per schema folder.
_READ_ALL_HEADERS_BELOW = 200
# Currents headers (magic, metadata with the schema, sync marker) are a few KB.
_HEADER_BYTES = 1 << 18


def stream_schema(
    storage: CurrentsStorage,
    event_type: str,
    folders: list[str],
    lookback_hours: int,
) -> JSONSchema | None:
    """Union of the catalogue schema and the writer schemas of the recent files of a type."""
    schema = catalogue_schema(event_type)
    for file in _recent_samples(storage, event_type, folders, lookback_hours):
        found = _header_schema(storage, file)
        if found is not None:
            schema = found if schema is None else merge(schema, found)
    return schema


def _recent_samples(
    storage: CurrentsStorage, event_type: str, folders: list[str], lookback_hours: int
) -> list[CurrentsFile]:
    if not folders:
        return []
    newest = max(
        (entry for folder in folders for entry in _partitions(storage, folder)), default=""
    )
    min_hour = shift_hour(newest, -lookback_hours) if newest else None
    files = storage.files(event_type, folders, min_hour)
    if len(files) <= _READ_ALL_HEADERS_BELOW:
        return files
    newest_per_folder: dict[str, CurrentsFile] = {}
    for file in files:  # oldest first, so the last one kept per folder is the newest
        inside_partition = file.path.split("/date=", 1)[-1].split("/")[1:-1]
        newest_per_folder["/".join(inside_partition)] = file
    return list(newest_per_folder.values())


def _partitions(storage: CurrentsStorage, folder: str) -> list[str]:
    names = [entry.rsplit("/", 1)[-1] for entry in storage.subfolders(folder)]
    return [name[len("date=") :] for name in names if name.startswith("date=")]


def _header_schema(storage: CurrentsStorage, file: CurrentsFile) -> JSONSchema | None:
    """The schema in a file's header, from one ranged read of its first bytes."""
    try:
        head = storage.fs.cat_file(file.path, start=0, end=_HEADER_BYTES)
        return record_schema(fastavro.reader(io.BytesIO(head)).writer_schema)
    except Exception as exc:  # a bad file is reported by the sync; discovery just skips it
        logger.debug("No schema from %s: %s", storage.display(file.path), exc)
        return None
