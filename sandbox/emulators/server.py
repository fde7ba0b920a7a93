"""A small threaded HTTP server base for the API emulators, with fault injection.

Subclasses implement :meth:`Emulator.handle`; the base decodes gzip bodies, keeps connections
alive (HTTP/1.1), and injects faults (429, 5xx, connection resets, slow answers, answers cut
mid-body) at set rates. :meth:`Emulator.use_tls` serves HTTPS with a given certificate (for
instance a self-signed one, which clients must refuse).
"""

from __future__ import annotations

import gzip
import json
import random
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Faults:
    """Rates (0..1) of injected faults; drawn once per request from a seeded generator."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    rate_slow: float = 0.0
    rate_cut: float = 0.0
    """Requests that are handled, but whose answer breaks off after half of its body."""
    slow_seconds: float = 0.3
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        """Return the fault for this request: '429', '5xx', 'reset', 'slow', 'cut' or None."""
        with self._lock:
            roll = self._rng.random()
        for name, rate in (
            ("429", self.rate_429),
            ("5xx", self.rate_5xx),
            ("reset", self.rate_reset),
            ("slow", self.rate_slow),
            ("cut", self.rate_cut),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None


@dataclass
class Request:
    """An incoming request, body already gunzipped."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        """First value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, str]:
        """The body as an url-encoded form (first value of each field)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Response:
    """What an emulator answers: a JSON-serialisable body (or raw bytes) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Emulator:
    """Base class: start on 127.0.0.1 (port 0 = any free port), answer with :meth:`handle`."""

    def __init__(self, faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0):
        self.faults = faults or Faults()
        self.lock = threading.RLock()
        self.requests_seen = 0
        self.faults_injected: dict[str, int] = {}
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._scheme = "http"

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def use_tls(self, certfile: str | Path, keyfile: str | Path) -> Emulator:
        """Serve HTTPS with this certificate chain (call before :meth:`start`)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https"
        return self

    def start(self) -> Emulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the current thread (used by the command-line entry points)."""
        self._server.serve_forever()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, request: Request) -> Response:
        """Answer one request; implemented by each emulator."""
        raise NotImplementedError

    def rate_limited(self) -> Response:
        """The API's own 429 answer (used for injected 429s)."""
        return Response(429, {"error": "rate limited"})

    def server_error(self, status: int) -> Response:
        """The API's own 5xx answer (used for injected faults)."""
        return Response(status, {"error": "injected server error"})

    def _count_fault(self, name: str) -> None:
        with self.lock:
            self.faults_injected[name] = self.faults_injected.get(name, 0) + 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _make_handler(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK add
        # ~40 ms to every answer.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                try:
                    body = gzip.decompress(body)
                except OSError:
                    self._send(Response(400, {"error": "body is not valid gzip"}))
                    return
            with emulator.lock:
                emulator.requests_seen += 1
            fault = emulator.faults.draw()
            if fault:
                emulator._count_fault(fault)
            if fault == "reset":
                # SO_LINGER 0 makes close() send a TCP RST: the client sees a connection reset.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return
            if fault == "slow":
                time.sleep(emulator.faults.slow_seconds)
            if fault == "429":
                self._send(emulator.rate_limited())
                return
            if fault == "5xx":
                self._send(emulator.server_error(random.choice((500, 502, 503))))
                return
            split = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                response = emulator.handle(request)
            except Exception as exc:  # an emulator bug must show up, not hang the client
                response = Response(500, {"error": f"emulator error: {exc!r}"})
            self._send(response, cut=fault == "cut")

        def _send(self, response: Response, *, cut: bool = False) -> None:
            if isinstance(response.body, bytes | bytearray):
                payload = bytes(response.body)
                content_type = "application/octet-stream"
            else:
                payload = json.dumps(response.body).encode()
                content_type = "application/json"
            self.send_response(response.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            try:
                self.end_headers()
                self._write(payload, cut=cut)
            except (BrokenPipeError, ConnectionResetError):  # the client hung up (a timeout)
                self.close_connection = True

        def _write(self, payload: bytes, *, cut: bool) -> None:
            if cut:  # the full length announced, half the body sent, then the connection closed
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)

        do_GET = _dispatch  # noqa: N815
        do_POST = _dispatch  # noqa: N815

    return Handler
