"""Reliability suite helpers: run a plugin's real CLI, misbehaving emulators, secret scans."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sandbox.emulators.server import Request, Response
from tools.about import PACKAGES

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    """What one plugin process produced."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def last_error_line(self) -> str:
        """The last non-empty line of stderr (where a one-line error ends up)."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run_cli(
    plugin: str,
    config: dict[str, Any] | None,
    workdir: Path,
    *,
    stdin: str | None = None,
    args: Iterable[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> CliResult:
    """Run ``python -m <plugin>`` with ``config`` written to ``workdir/config.json``."""
    command = [sys.executable, "-m", PACKAGES[plugin]]
    if config is not None:
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config))
        command += ["--config", str(config_path)]
    command += list(args)
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("LOGLEVEL")}
    full_env.update(env or {})
    proc = subprocess.run(
        command,
        cwd=workdir,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def singer_lines(messages: Iterable[dict[str, Any]]) -> str:
    """Singer messages as the JSON lines a tap writes."""
    return "".join(json.dumps(m) + "\n" for m in messages)


# -- secrets ---------------------------------------------------------------------------------


def secret_forms(secrets: Iterable[str], basic_pairs: Iterable[tuple[str, str]] = ()) -> set[str]:
    """Every form in which a secret could leak: raw, URL-quoted, Bearer, and Basic (base64).

    ``basic_pairs`` are the (user, password) pairs sent as HTTP Basic auth; their base64 token
    is not the base64 of either part alone, so it is listed too.
    """
    forms: set[str] = set()
    for secret in secrets:
        forms |= {secret, quote(secret, safe=""), f"Bearer {secret}"}
        forms.add(base64.b64encode(f"{secret}:".encode()).decode())
        forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    for user, password in basic_pairs:
        forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    return forms


def leaks(forms: set[str], texts: dict[str, str]) -> list[str]:
    """``where: form`` for every secret form found in ``texts`` (name -> content)."""
    return [f"{where}: {form}" for where, text in texts.items() for form in forms if form in text]


def files_text(root: Path, *, skip: Iterable[str] = ("config.json",)) -> dict[str, str]:
    """Every file under ``root`` (except the plugin's own config), decoded leniently."""
    skipped = set(skip)
    return {
        str(path.relative_to(root)): path.read_bytes().decode("utf-8", "replace")
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name not in skipped
    }


# -- misbehaving emulators ---------------------------------------------------------------------


class EchoingMixin:
    """Emulator mixin whose error answers echo the request's credentials and body back.

    ``mode`` is ``ok`` (the emulator's real behaviour) or ``401``, ``429``, ``500``, ``400``
    (partial reject), ``object-errors`` (Braze per-object errors), ``garbage`` (200 that is not
    JSON) or ``teapot`` (an unexpected 418). Retry hints say "now" so retries cost no time.
    """

    mode = "ok"

    def handle(self, request: Request) -> Response:
        """Answer per ``mode``; the text always carries the Authorization header and the body."""
        if self.mode == "ok" or request.path.startswith("/_emulator"):
            return super().handle(request)  # type: ignore[misc]
        echo = (
            f"echo auth={request.headers.get('authorization')} query={request.query} "
            f"body={request.body[:4000].decode('utf-8', 'replace')}"
        )
        retry = {"Retry-After": "0", "X-RateLimit-Reset": str(int(time.time()))}
        if self.mode in ("401", "429", "500", "teapot"):
            status = 418 if self.mode == "teapot" else int(self.mode)
            body = {"error": echo, "message": echo, "status": "error"}
            return Response(status, body, retry if status in (429, 500) else {})
        if self.mode == "garbage":
            return Response(200, f"<html>{echo}</html>".encode())
        if self.mode == "400":
            lines = [line for line in request.body.splitlines() if line.strip()]
            failed = [
                {"index": i, "field": "properties.time", "message": echo} for i in range(len(lines))
            ]
            body = {"code": 400, "status": "Bad Request", "num_records_imported": 0}
            return Response(400, {**body, "failed_records": failed})
        if self.mode == "object-errors":
            payload = json.loads(request.body or b"{}")
            count = len(payload.get("attributes") or payload.get("cohort_changes") or [1])
            errors = [{"type": echo, "input_array": "attributes", "index": i} for i in range(count)]
            if "cohort_changes" in payload:
                return Response(400, {"message": echo, "errors": [echo]})
            return Response(201, {"message": "success", "errors": errors})
        raise ValueError(f"unknown mode {self.mode!r}")
