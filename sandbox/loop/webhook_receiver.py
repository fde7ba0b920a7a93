"""Run the real ``mixpanel-cohort-webhook`` as a process: for the demo, the tests and the bench.

:func:`start_receiver` starts ``python -m mixpanel_cohort_webhook`` on a free port and waits until
it answers ``/healthz``; the :class:`ReceiverProcess` it returns stops it gracefully (SIGTERM) or
kills it (SIGKILL, as a crash would) and exposes its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from sandbox.emulators.server import free_port


@dataclass
class ReceiverProcess:
    """A running receiver."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """Where Mixpanel POSTs (``/``)."""
        return f"http://127.0.0.1:{self.port}/"

    def log(self) -> str:
        """Everything the receiver wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (in-flight deliveries finish), then SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the receiver dies mid-delivery, as on a crash or an OOM kill."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()


def start_receiver(
    spool_url: str,
    log_path: Path,
    *,
    credentials: tuple[str, str] | None = ("mixpanel", "webhook-password"),
    spool_options: Mapping[str, Any] | None = None,
    args: Iterable[str] = (),
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> ReceiverProcess:
    """Start a receiver; ``credentials=None`` runs it with ``--no-auth``."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "mixpanel_cohort_webhook",
        "--spool-url",
        spool_url,
        "--port",
        str(port),
        *args,
    ]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPANEL_WEBHOOK_")}
    if credentials is None:
        command.append("--no-auth")
    else:
        full_env["MIXPANEL_WEBHOOK_USERNAME"], full_env["MIXPANEL_WEBHOOK_PASSWORD"] = credentials
    if spool_options:
        full_env["MIXPANEL_WEBHOOK_SPOOL_OPTIONS"] = json.dumps(dict(spool_options))
    full_env.update(env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    receiver = ReceiverProcess(process, port, log_path)
    if wait:
        wait_until_listening(receiver)
    return receiver


def wait_until_listening(receiver: ReceiverProcess, timeout: float = 30.0) -> None:
    """Block until the receiver answers ``/healthz`` (any status); raise if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.process.poll() is not None:
            raise RuntimeError(
                f"the receiver exited with {receiver.process.returncode}:\n{receiver.log()}"
            )
        with contextlib.suppress(requests.ConnectionError):
            requests.get(f"{receiver.url}healthz", timeout=5)
            return
        time.sleep(0.1)
    receiver.kill()
    raise TimeoutError(f"the receiver did not listen within {timeout} s:\n{receiver.log()}")


@contextmanager
def running_receiver(spool_url: str, log_path: Path, **kwargs: Any) -> Iterator[ReceiverProcess]:
    """:func:`start_receiver`, stopped on exit whatever happens."""
    receiver = start_receiver(spool_url, log_path, **kwargs)
    try:
        yield receiver
    finally:
        receiver.stop()
