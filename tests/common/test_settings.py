"""ConfigView: schema defaults, typed reads, secrets; the one way a fatal error ends."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from braze_mixpanel_common.cli import exit_on_error
from braze_mixpanel_common.errors import ConfigurationError, DestinationError
from braze_mixpanel_common.settings import ConfigView

SCHEMA = th.PropertiesList(
    th.Property("size", th.IntegerType(minimum=1, maximum=10), default=5),
    th.Property("name", th.StringType),
    th.Property("since", th.DateTimeType),
    th.Property("tags", th.ArrayType(th.StringType)),
    th.Property("key", th.StringType, secret=True),
    th.Property("options", th.ObjectType(), secret=True),
).to_dict()


def test_unset_and_null_settings_read_as_the_schema_default():
    assert ConfigView({}, SCHEMA).integer("size") == 5
    assert ConfigView({"size": None}, SCHEMA).integer("size") == 5
    assert ConfigView({"size": 7}, SCHEMA).integer("size") == 7
    assert ConfigView({}, SCHEMA).optional_text("name") is None
    assert ConfigView({"name": "  "}, SCHEMA).optional_text("name") is None


def test_required_text_names_the_setting():
    with pytest.raises(ConfigurationError, match="'name'"):
        ConfigView({}, SCHEMA).text("name")


def test_datetime_is_utc_and_a_bad_one_names_the_setting():
    view = ConfigView({"since": "2026-01-02T03:00:00"}, SCHEMA)
    assert view.datetime("since") == dt.datetime(2026, 1, 2, 3, tzinfo=dt.UTC)
    with pytest.raises(ConfigurationError, match="'since'"):
        ConfigView({"since": "soon"}, SCHEMA).datetime("since")


def test_texts_drop_duplicates_and_keep_order():
    assert ConfigView({"tags": ["b", "a", "b"]}, SCHEMA).texts("tags") == ("b", "a")
    assert ConfigView({"tags": []}, SCHEMA).texts("tags") is None


def test_secrets_lists_every_secret_value_nested_ones_included():
    view = ConfigView({"key": "k-123", "options": {"a": {"b": "nested-1"}, "x": True}}, SCHEMA)
    assert set(view.secrets()) == {"k-123", "nested-1"}


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ConfigurationError("Setting 'size' is bad."), "Setting 'size' is bad."),
        (DestinationError("Braze said no."), "Braze said no."),
        (
            ConfigValidationError("failed", errors=["0 is less than 1 in config['size']"]),
            "Setting 'size': 0 is less than 1.",
        ),
        (
            ConfigValidationError(
                "failed", errors=["5 is not of type 'string' in config['o']['k']"]
            ),
            "Setting 'o.k': 5 is not of type 'string'.",
        ),
        (
            ConfigValidationError("failed", errors=["'url' is a required property"]),
            "Invalid settings: 'url' is a required property.",
        ),
    ],
)
def test_fatal_errors_end_in_one_line_and_exit_1(caplog, error, line):
    logger = logging.getLogger("test-cli")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as info, exit_on_error(logger):
        raise error
    assert info.value.code == 1
    assert [r.getMessage() for r in caplog.records] == [line]
    assert all(r.exc_info is None for r in caplog.records)
