"""Mixpanel's ``POST /import``: what its answers mean for a batch.

Bodies are NDJSON (``application/x-ndjson``), gzip-compressed, sent with ``strict=1``: the events
arrive here already encoded one per line, so a batch is joined once and split cheaply when
Mixpanel says it is too large. Retries (408, 429, 5xx, network failures) are the shared
:class:`~braze_mixpanel_common.http.HttpCaller`'s; this client handles the final answer: 413
splits the batch, a 400 names the rejected events, 401/403/404 end the run with a hint.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import requests

from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.errors import DestinationError
from braze_mixpanel_common.http import HttpCaller, RetryBounds, RetryPolicy, error_text
from braze_mixpanel_common.mixpanel import MixpanelAuth
from braze_mixpanel_common.retry import BackoffPolicy
from target_mixpanel.stats import RunStats

IMPORT_ENDPOINT = "/import"
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
    """Sends batches of encoded events to ``<base_url>/import``.

    Args:
        base_url: the ingestion host (``api_url`` or the region's).
        auth: the Mixpanel credential; every text logged or raised is redacted through it.
        strict: send ``strict=1`` so Mixpanel reports each invalid event.
        max_concurrency: threads sending at once (the connection pool's size).
        stats: receives requests, retries, waits and 413 splits.
        clock: time source for the waits between attempts.
        backoff: waits between attempts; the default follows Mixpanel's advice (2 s doubling
            to 60 s plus 1-5 s of jitter, 8 attempts).
        retry_bounds: the user's bounds on attempts and seconds per request.
    """

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
        retry_bounds: RetryBounds | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        gzip_level: int = 3,
        user_agent: str = "target-mixpanel",
        logger: logging.Logger | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + IMPORT_ENDPOINT
        self.auth = auth
        self.params = {"strict": "1" if strict else "0", **auth.params}
        self.stats = stats or RunStats()
        self.gzip_level = gzip_level
        self.logger = logger or logging.getLogger("target-mixpanel")
        self.http = HttpCaller(
            "Mixpanel",
            self.logger,
            policy=RetryPolicy(
                backoff=backoff or BackoffPolicy(), bounds=retry_bounds or RetryBounds()
            ),
            counters=self.stats.sending,
            clock=clock,
            redact=auth.redact,
            headers={
                **auth.headers,
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
                "Accept": "application/json",
                "User-Agent": user_agent,
            },
            timeout=timeout,
            pool_size=max_concurrency,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def send(self, parts: list[bytes]) -> SendResult:
        """Import ``parts`` (one encoded event each); split on 413; never retry a 400.

        Raises:
            DestinationError: credentials refused, an unexpected status, or retries exhausted
                (the message says the unconfirmed batch is re-sent by the next run).
        """
        response = self.http.call(
            "POST",
            self.url,
            what=IMPORT_ENDPOINT,
            consequence=f"The unconfirmed batch of {len(parts)} events will be re-sent by "
            "the next run.",
            params=self.params,
            data=gzip.compress(b"\n".join(parts), compresslevel=self.gzip_level, mtime=0),
        )
        status = response.status_code
        if status == 200:
            imported = _json(response).get("num_records_imported")
            return SendResult(imported if isinstance(imported, int) else len(parts))
        if status == 413:
            return self._split(parts, response)
        if status == 400:
            return self._partial(parts, response)
        message = error_text(response, self.auth.redact)
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

    def _split(self, parts: list[bytes], response: requests.Response) -> SendResult:
        if len(parts) == 1:
            message = error_text(response, self.auth.redact)
            return SendResult(0, [Rejected(0, None, message, 413)])
        self.stats.sending.add(splits=1)
        middle = len(parts) // 2
        first = self.send(parts[:middle])
        second = self.send(parts[middle:])
        for item in second.rejected:
            item.index += middle
        return SendResult(first.imported + second.imported, first.rejected + second.rejected)

    def _partial(self, parts: list[bytes], response: requests.Response) -> SendResult:
        payload = _json(response)
        failed = payload.get("failed_records")
        if not isinstance(failed, list) or not failed:
            message = error_text(response, self.auth.redact)
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


def _json(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or an empty one when the body is not a JSON object."""
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _index_insert_ids(parts: list[bytes]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for i, part in enumerate(parts):
        try:
            insert_id = msgspec.json.decode(part)["properties"]["$insert_id"]
        except (msgspec.DecodeError, KeyError, TypeError):
            continue
        index.setdefault(str(insert_id), []).append(i)
    return index
