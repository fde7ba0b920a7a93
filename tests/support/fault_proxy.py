"""A fault-injecting HTTP proxy in front of a storage emulator (moto's S3, Azurite, GCS).

The storage client talks to the proxy as if it were the store; the proxy forwards each request
byte for byte and answers with the store's reply, unless a :class:`Rule` matches. Rules model the
failures real object stores produce:

* ``drop_reply``: the store applies the request, the reply is lost (the connection closes);
* ``refuse``: the connection closes before anything reaches the store;
* ``status``: the proxy answers itself (e.g. 503), nothing reaches the store;
* ``not_found_as_403``: a 404 from the store becomes ``403 AccessDenied`` (S3 without
  ``s3:ListBucket``);
* ``kill_before`` / ``kill_after``: the client process (``Rule.pid``) gets SIGKILL before the
  request reaches the store, or after the store applied it (the reply never arrives).

Every request is logged as ``(method, path, rule action or "")``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


@dataclass
class Rule:
    """Which requests to hit (method, path regex, a header present) and how, ``times`` times.

    ``times=None`` hits every match; ``skip`` lets that many matches pass first.
    """

    action: str
    method: str | None = None
    path: str = ""
    header: str | None = None
    times: int | None = 1
    skip: int = 0
    status: int = 503
    pid: int | None = None
    hits: int = 0
    seen: int = 0
    when: Callable[[], bool] | None = None

    def matches(self, method: str, path: str, headers: Any) -> bool:
        if self.method and method != self.method:
            return False
        if self.path and not re.search(self.path, path):
            return False
        if self.header and self.header not in headers:
            return False
        if self.when is not None and not self.when():
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.hits += 1
        return True


@dataclass
class FaultProxy:
    """The proxy: ``url`` replaces the emulator's endpoint in the client's options."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        target = urlsplit(self.upstream)
        self._host, self._port = target.hostname or "127.0.0.1", target.port or 80
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                proxy._serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _serve  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, action: str, **match: Any) -> Rule:
        """Add a rule (see :class:`Rule`); returns it (its ``hits`` count what it did)."""
        rule = Rule(action, **match)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _rule(self, method: str, path: str, headers: Any) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, headers):
                    return rule
        return None

    @staticmethod
    def _body(handler: BaseHTTPRequestHandler) -> bytes:
        """The request body as sent (chunk framing kept when the client chunked it)."""
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            raw = bytearray()
            while True:
                size_line = handler.rfile.readline()
                raw += size_line
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        line = handler.rfile.readline()
                        raw += line
                        if line in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += handler.rfile.read(size + 2)
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            conn.putrequest(
                handler.command, handler.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in handler.headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            if body:
                conn.send(body)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    @staticmethod
    def _hang_up(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        handler.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = self._body(handler)
        rule = self._rule(handler.command, handler.path, handler.headers)
        action = rule.action if rule else ""
        self.log.append((handler.command, handler.path, action))
        if rule is not None and action == "kill_before":
            os.kill(rule.pid or 0, signal.SIGKILL)
        if action in ("refuse", "kill_before"):
            self._hang_up(handler)
            return
        if rule is not None and action == "status":
            error = f"<Error><Code>Injected</Code><Message>{rule.status}</Message></Error>"
            self._reply(handler, rule.status, [], error.encode())
            return
        status, headers, reply = self._forward(handler, body)
        if action == "kill_after":
            os.kill(rule.pid or 0, signal.SIGKILL)  # type: ignore[union-attr]
        if action in ("drop_reply", "kill_after"):
            self._hang_up(handler)
            return
        if action == "not_found_as_403" and status == 404:
            denied = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            status, headers, reply = 403, [("Content-Type", "application/xml")], denied
        self._reply(handler, status, headers, reply)
