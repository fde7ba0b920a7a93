"""HTTP client of Mixpanel's ``POST /import``.

gzip, ``strict=1``, one pooled session shared by the sending threads, retries with backoff,
413 splitting and partial-400 handling.

Bodies are NDJSON (``application/x-ndjson``): the events arrive here already encoded one per line,
so a batch is joined once and split cheaply when Mixpanel says it is too large.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import requests
from requests.adapters import HTTPAdapter

from braze_mixpanel_common.errors import DestinationError
from braze_mixpanel_common.mixpanel import MixpanelAuth
from braze_mixpanel_common.retry import BackoffPolicy, Clock, SystemClock, parse_retry_after
from target_mixpanel.stats import RunStats

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_AUTH_HINTS = {
    "service_account": "check 'service_account_username', 'service_account_secret' and "
    "'project_id' (the service account needs the Owner or Admin role in that project)",
    "api_secret": "check 'api_secret' (Mixpanel retires project secrets on 2027-03-03)",
    "project_token": "check 'project_token' (and 'project_id' if set)",
}


@dataclass
class Rejected:
    """One event Mixpanel refused: its index in the batch, Mixpanel's field and message."""

    index: int
    field: str | None
    message: str
    status: int


@dataclass
class SendResult:
    """Outcome of one batch: how many events Mixpanel imported and which it rejected."""

    imported: int = 0
    rejected: list[Rejected] = field(default_factory=list)


class ImportClient:
    """Sends batches of encoded events to ``<base_url>/import``."""

    def __init__(
        self,
        base_url: str,
        auth: MixpanelAuth,
        *,
        strict: bool = True,
        max_concurrency: int = 10,
        stats: RunStats | None = None,
        clock: Clock | None = None,
        backoff: BackoffPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        gzip_level: int = 3,
        user_agent: str = "target-mixpanel",
        logger: logging.Logger | None = None,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/import"
        self.auth = auth
        self.params = {"strict": "1" if strict else "0", **auth.params}
        self.stats = stats or RunStats()
        self.clock = clock or SystemClock()
        self.backoff = backoff or BackoffPolicy()
        self.timeout = timeout
        self.gzip_level = gzip_level
        self.logger = logger or logging.getLogger("target-mixpanel")
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_concurrency, pool_block=True)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update(
            {
                **auth.headers,
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
                "Accept": "application/json",
                "User-Agent": user_agent,
            }
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()

    def send(self, parts: list[bytes]) -> SendResult:
        """Import ``parts`` (one encoded event each); split on 413; never retry a 400.

        Raises:
            DestinationError: credentials refused, an unexpected status, or retries exhausted.
        """
        status, payload = self._post(b"\n".join(parts), len(parts))
        if status == 200:
            imported = payload.get("num_records_imported")
            return SendResult(imported if isinstance(imported, int) else len(parts))
        if status == 413:
            return self._split(parts, payload)
        if status == 400:
            return self._partial(parts, payload)
        message = self._error_text(payload)
        if status in (401, 403):
            hint = _AUTH_HINTS.get(self.auth.kind, "check the credentials")
            raise DestinationError(
                f"Mixpanel refused the credentials ({status} {message}): {hint}."
            )
        if status == 404:
            raise DestinationError(
                f"Mixpanel answered 404 for {self.url}: check 'api_url' / 'region'."
            )
        raise DestinationError(f"Mixpanel /import answered {status}: {message}")

    def _split(self, parts: list[bytes], payload: dict[str, Any]) -> SendResult:
        if len(parts) == 1:
            return SendResult(0, [Rejected(0, None, self._error_text(payload), 413)])
        self.stats.add(splits=1)
        middle = len(parts) // 2
        first = self.send(parts[:middle])
        second = self.send(parts[middle:])
        for item in second.rejected:
            item.index += middle
        return SendResult(first.imported + second.imported, first.rejected + second.rejected)

    def _partial(self, parts: list[bytes], payload: dict[str, Any]) -> SendResult:
        failed = payload.get("failed_records")
        if not isinstance(failed, list) or not failed:
            message = self._error_text(payload)
            return SendResult(0, [Rejected(i, None, message, 400) for i in range(len(parts))])
        by_insert_id: dict[str, list[int]] | None = None
        rejected: dict[int, Rejected] = {}
        for entry in failed:
            if not isinstance(entry, dict):
                continue
            index = entry.get("index")
            if not isinstance(index, int) or not 0 <= index < len(parts):
                insert_id = entry.get("insert_id") or entry.get("$insert_id")
                if by_insert_id is None:
                    by_insert_id = _index_insert_ids(parts)
                candidates = by_insert_id.get(str(insert_id), [])
                index = next((i for i in candidates if i not in rejected), None)
            if index is None:
                self.logger.warning(
                    "Mixpanel reported a failed record it did not identify: %s",
                    self.auth.redact(str(entry)),
                )
                continue
            field_name = entry.get("field")
            message = self.auth.redact(
                str(entry.get("message") or entry.get("error") or "rejected")
            )
            rejected[index] = Rejected(index, field_name, message, 400)
        imported = payload.get("num_records_imported")
        if not isinstance(imported, int):
            imported = len(parts) - len(rejected)
        if imported + len(rejected) != len(parts):
            self.logger.warning(
                "Mixpanel imported %d and rejected %d of %d events in one request.",
                imported,
                len(rejected),
                len(parts),
            )
        return SendResult(imported, sorted(rejected.values(), key=lambda r: r.index))

    def _error_text(self, payload: dict[str, Any]) -> str:
        """Mixpanel's error text, without any echoed credential, cut to 300 characters."""
        text = str(payload.get("error") or payload.get("status") or payload)
        return self.auth.redact(text)[:300]

    def _post(self, body: bytes, count: int) -> tuple[int, dict[str, Any]]:
        """POST with retries on 408/429/5xx and connection errors; return (status, json)."""
        data = gzip.compress(body, compresslevel=self.gzip_level, mtime=0)
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = self.session.post(
                    self.url, params=self.params, data=data, timeout=self.timeout
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                reason = f"{type(exc).__name__}"
            else:
                self.stats.add(requests=1)
                payload = _json(response)
                if response.status_code not in RETRY_STATUSES:
                    return response.status_code, payload
                reason = f"{response.status_code} {self._error_text(payload)}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt >= self.backoff.max_attempts:
                raise DestinationError(
                    f"Mixpanel /import still failing after {attempt} attempts "
                    f"(last: {reason}); the unconfirmed batch of {count} events will be "
                    "re-sent by the next run."
                )
            delay = self.backoff.delay(attempt, retry_after)
            self.stats.add(retries=1, waited_s=delay)
            self.logger.warning("Mixpanel /import: %s; retry %d in %.1f s.", reason, attempt, delay)
            self.clock.sleep(delay)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {"error": response.text[:20_000]}
    return payload if isinstance(payload, dict) else {"error": str(payload)[:20_000]}


def _index_insert_ids(parts: list[bytes]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for i, part in enumerate(parts):
        try:
            insert_id = msgspec.json.decode(part)["properties"]["$insert_id"]
        except (msgspec.DecodeError, KeyError, TypeError):
            continue
        index.setdefault(str(insert_id), []).append(i)
    return index
