"""tap-braze-currents settings: the JSON schema shown by ``--about`` and the validated, typed form.

Defaults, limits and enums live only in :data:`CONFIG_SCHEMA` (the SDK checks them before the
tap runs); the rules a schema cannot state live only in :meth:`Settings.from_config`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from singer_sdk import typing as th

from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.settings import ConfigView
from tap_braze_currents.state import HOUR_FORMAT

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "storage_url",
        th.StringType(nullable=False),
        required=True,
        title="Storage URL",
        description=(
            "Root of the Currents export as an fsspec URL: s3://bucket/prefix, "
            "gs://bucket/prefix, az://container/prefix (or abfs://), file:///path or a "
            "plain local path. Every integration below it is read."
        ),
    ),
    th.Property(
        "storage_options",
        th.ObjectType(),
        secret=True,
        title="Storage options",
        description=(
            "Options passed to the fsspec filesystem: credentials, endpoint_url, anon, "
            "account_name, connection_string, ... (see s3fs, gcsfs, adlfs)."
        ),
    ),
    th.Property(
        "event_types",
        th.ArrayType(th.StringType()),
        title="Event types",
        description=(
            "Currents event types to read, e.g. users.behaviors.CustomEvent. "
            "Default: every known type and every type found in the bucket."
        ),
    ),
    th.Property(
        "start_date",
        th.DateTimeType(),
        title="Start date",
        description="Ignore date= partitions (the hour Braze queued the events) before this.",
    ),
    th.Property(
        "end_date",
        th.DateTimeType(),
        title="End date",
        description=(
            "Ignore date= partitions at or after this hour (exclusive). With start_date it "
            "cuts a backfill into independent time windows."
        ),
    ),
    th.Property(
        "lookback_hours",
        th.IntegerType(minimum=0),
        default=48,
        title="Lookback hours",
        description=(
            "How far before the newest partition each run re-lists for late files. Braze "
            "retries deliveries for up to 48 hours, so keep it at 48 or more."
        ),
    ),
    th.Property(
        "on_corrupt_file",
        th.StringType(),
        default="skip",
        allowed_values=["skip", "fail"],
        title="On corrupt file",
        description=(
            "skip: log a warning naming the file and the reason, count it and go on; "
            "fail: stop with an error and a non-zero exit."
        ),
    ),
).to_dict()


@dataclass(frozen=True)
class Settings:
    """The tap's settings, typed and checked; built once per run by :meth:`from_config`."""

    storage_url: str
    storage_options: Mapping[str, Any] | None
    event_types: tuple[str, ...] | None
    """None: every known type and every type found in the bucket."""
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    lookback_hours: int
    on_corrupt_file: Literal["skip", "fail"]

    @classmethod
    def from_config(cls, view: ConfigView) -> Settings:
        """Read the SDK-validated config and apply the rules its schema cannot state.

        Raises:
            ConfigurationError: ``storage_url`` is empty, a date is not ISO 8601, or
                ``batch_config`` asks for parquet.
        """
        storage_url = view.optional_text("storage_url")
        if storage_url is None:
            raise ConfigurationError(
                "Setting 'storage_url' is required: the root of the Currents export, "
                "e.g. s3://bucket/currents."
            )
        batch = view.get("batch_config")
        if isinstance(batch, dict) and (batch.get("encoding") or {}).get("format") == "parquet":
            raise ConfigurationError(
                "Setting 'batch_config': encoding format 'parquet' is not supported: the Singer "
                "SDK's parquet batcher takes a batch's columns from its first record, so the "
                "fields of newer Currents schemas would be lost. Use format 'jsonl'."
            )
        return cls(
            storage_url=storage_url,
            storage_options=view.get("storage_options"),
            event_types=view.texts("event_types"),
            start_date=view.datetime("start_date"),
            end_date=view.datetime("end_date"),
            lookback_hours=view.integer("lookback_hours"),
            on_corrupt_file=cast(Literal["skip", "fail"], view.text("on_corrupt_file")),
        )

    @property
    def start_hour(self) -> str | None:
        """The first ``date=`` partition to read (UTC), from ``start_date``."""
        return _hour(self.start_date)

    @property
    def end_hour(self) -> str | None:
        """The first ``date=`` partition not to read (UTC), from ``end_date``."""
        return _hour(self.end_date)


def _hour(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).strftime(HOUR_FORMAT) if moment else None
