"""Fixtures for the webhook receiver: the real process on a free port, a spool folder, S3."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.loop.webhook_receiver import ReceiverProcess, start_receiver
from tests.tap_braze_currents.conftest import s3_endpoint  # noqa: F401 (a fixture)

USER, PASSWORD = "mixpanel-sync", "s3cr3t-webhook-pa55word"


@pytest.fixture(scope="module")
def spool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One spool folder per test module (tests tell their pages apart by cohort id)."""
    return tmp_path_factory.mktemp("spool")


@pytest.fixture
def cohort() -> str:
    """A cohort id of this test's own."""
    return f"c{uuid.uuid4().hex[:10]}"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[..., ReceiverProcess]]:
    """Start receivers (``start(spool_url, **kwargs)``); all are stopped after the test."""
    started: list[ReceiverProcess] = []

    def start(spool_url: str | Path, **kwargs: Any) -> ReceiverProcess:
        kwargs.setdefault("credentials", (USER, PASSWORD))
        log = tmp_path / f"receiver-{len(started)}.log"
        receiver = start_receiver(str(spool_url), log, **kwargs)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture(scope="module")
def receiver(
    spool_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReceiverProcess]:
    """One receiver per test module, on :func:`spool_dir`, with Basic auth."""
    log = tmp_path_factory.mktemp("logs") / "receiver.log"
    receiver = start_receiver(str(spool_dir), log, credentials=(USER, PASSWORD))
    yield receiver
    receiver.stop()
