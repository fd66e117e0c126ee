"""Serve the Bolt app over HTTP (``trainbot serve``, ``trainbot run``), unlike Bolt's
development server safe to leave facing Slack.

Slack (or the local client) POSTs commands, interactivity and options to ``/slack/events``;
``GET /healthz`` answers ``ok``; anything else is 404. In front of Bolt, in this order:

1. framing: a POST without a Content-Length (or chunked) is 411; a Content-Length that isn't
   one plain number is 400; over 1 MB is 413 — all answered before the body is read, and
   the connection is closed;
2. the timestamp and body checks of :mod:`bot.slack.request_guard`: a timestamp that isn't
   a number is 401, a body Bolt can't parse (not UTF-8, a ``payload`` that isn't a JSON
   object, fields of the wrong type) is 400 whether or not it is signed;
3. Bolt, which verifies the signature (401) and answers.

Connections are served by a bounded pool of threads (32), with a listen backlog of 128, so
a burst of commands queues instead of being dropped. Keep-alive holds a worker per
connection, so a connection idle (or stalled mid-request) for 10 s is closed, and while
every worker is taken each answer closes its connection. The app's loggers get
:class:`~bot.slack.request_guard.WithholdBodies`: no request body reaches the log at INFO.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt.request import BoltRequest

from bot.slack.request_guard import (
    BAD_REQUEST_BODY,
    UNAUTHORIZED_BODY,
    bad_timestamp,
    malformed_body,
    withhold_bodies,
)

__all__ = ["BoltHTTPServer"]

log = logging.getLogger("trainbot.http")

PATH = "/slack/events"
MAX_BODY = 1_000_000
WORKERS = 32
BACKLOG = 128
IDLE_TIMEOUT_S = 10.0
_JSON = {"Content-Type": "application/json"}
_LENGTH = re.compile(r"[0-9]{1,19}")  # ASCII digits: int() would also take "+5", " 5", "٥"


class BoltHTTPServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 3000,
                 workers: int = WORKERS, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.app = app
        withhold_bodies(app)
        self.httpd = _PooledHTTPServer((host, port), _handler(app, idle_timeout_s),
                                       workers=workers)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> BoltHTTPServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="bolt-http",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted; then close every connection."""
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def stop(self) -> None:
        """Stop accepting, close open connections, wait for requests in progress."""
        if self._thread is not None:
            self.httpd.shutdown()  # only returns once serve_forever has: never call it unstarted
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> BoltHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _PooledHTTPServer(HTTPServer):
    """An HTTPServer whose connections are served by a bounded pool of threads (socketserver's
    ThreadingMixIn starts one per connection, without limit), with a deeper listen queue
    (socketserver's default of 5 drops connections under a burst: the clients see resets or
    retry after 1-3 s). ``server_close`` also closes the connections still open."""

    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 workers: int) -> None:
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bolt-http")
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._open.add(request)
        self._pool.submit(self._serve, request, client_address)

    def crowded(self) -> bool:
        """Whether every worker has a connection (a new one would wait for a worker)."""
        with self._lock:
            return len(self._open) >= self._workers

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._lock:
                self._open.discard(request)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client going away isn't worth one.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("connection from %s ended: %r", client_address[0], error)
        else:
            log.error("unexpected error serving %s", client_address[0], exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            for sock in self._open:  # wakes the workers waiting on idle keep-alive connections
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            never_served, self._open = self._open, set()
        for sock in never_served:
            self.shutdown_request(sock)


def _handler(app: Any, idle_timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Set on each connection's socket: an idle keep-alive connection, or one stalled
        # mid-request, frees its worker after this long.
        timeout = idle_timeout_s
        length = 0
        unread = False  # a body is left unread: drain it briefly before closing

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def handle_one_request(self) -> None:
            # ``timeout`` bounds each read, not the whole request: a client dripping a byte
            # every few seconds would hold a worker for ever. So the request line, headers
            # and body must all arrive within ``idle_timeout_s``, or the socket is shut.
            self._reading = threading.Timer(idle_timeout_s, self._expire)
            self._reading.daemon = True
            self._reading.start()
            try:
                super().handle_one_request()
            finally:
                self._reading.cancel()

        def _expire(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _read_done(self) -> None:
            self._reading.cancel()  # what follows (Bolt's ack) isn't the client's doing

        def _send(self, status: int, body: str, headers: dict[str, Any] | None = None, *,
                  unread_body: bool = False) -> None:
            data = body.encode()
            # A connection with a body left unread can't carry another request; when every
            # worker is taken, one kept open for a next request would make others wait.
            close = unread_body or self.server.crowded()  # type: ignore[attr-defined]  # our server class
            self.send_response(status)
            for key, values in (headers or {}).items():
                for value in values if isinstance(values, list) else [values]:
                    if key.lower() not in ("content-length", "connection"):
                        self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
            self.unread = unread_body
            self.end_headers()
            self.wfile.write(data)

        def finish(self) -> None:
            super().finish()
            if self.unread:
                _drain(self.connection)

        def _has_body(self) -> bool:
            return bool(self.headers.get("Transfer-Encoding")) or any(
                v.strip() != "0" for v in self.headers.get_all("Content-Length") or [])

        def do_GET(self) -> None:
            self._read_done()
            found = urlsplit(self.path).path == "/healthz"
            self._send(200 if found else 404, "ok" if found else "not found",
                       {"Content-Type": "text/plain"}, unread_body=self._has_body())

        def handle_expect_100(self) -> bool:
            # Refuse an oversized upload before the client sends it, not after.
            refusal = self._refusal() if self.command == "POST" else None
            if refusal is not None:
                self._send(*refusal, {"Content-Type": "text/plain"}, unread_body=True)
                return False
            return super().handle_expect_100()

        def _refusal(self) -> tuple[int, str] | None:
            """Why this POST won't be read (404, 411, 400, 413), before reading its body."""
            if urlsplit(self.path).path != PATH:
                return 404, "not found"
            lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
            if self.headers.get("Transfer-Encoding") or not lengths:
                return 411, "length required"
            if len(lengths) > 1 or not _LENGTH.fullmatch(value := lengths.pop()):
                return 400, "bad content-length"
            self.length = int(value)
            if self.length > MAX_BODY:
                return 413, "too large"
            return None

        def do_POST(self) -> None:
            refusal = self._refusal()
            if refusal is not None:
                self._send(*refusal, {"Content-Type": "text/plain"},
                           unread_body=self._has_body())
                return
            try:
                raw = self.rfile.read(self.length)
            except TimeoutError:
                self.close_connection = True
                return
            if len(raw) < self.length:  # the client went away mid-body
                self.close_connection = True
                return
            self._read_done()
            self._send(*_answer(app, raw, urlsplit(self.path).query, self.headers.items()))

    return Handler


def _drain(sock: socket.socket, *, seconds: float = 1.0, limit: int = MAX_BODY) -> None:
    """Read and drop what the client still sends, for a moment, after a refusal: closing a
    socket with unread data resets the connection, and the client may lose the answer."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.2)
        deadline, total = time.monotonic() + seconds, 0
        while time.monotonic() < deadline and total < limit:
            chunk = sock.recv(65536)
            if not chunk:
                return
            total += len(chunk)


def _answer(app: Any, raw: bytes, query: str, header_items: Any
            ) -> tuple[int, str, dict[str, Any]]:
    headers: dict[str, str | Sequence[str]] = {k.lower(): [v] for k, v in header_items}
    if bad_timestamp(headers):
        return 401, UNAUTHORIZED_BODY, _JSON
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return 400, BAD_REQUEST_BODY, _JSON
    problem = malformed_body(body, headers.get("content-type", [None])[0])
    if problem is not None:
        log.debug("malformed request: %s", problem)
        return 400, BAD_REQUEST_BODY, _JSON
    try:
        request = BoltRequest(body=body, query=query, headers=headers)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        # Bolt reads ids out of the payload while building its request; a shape the
        # checks above don't know (a nested event field of the wrong type) still lands here.
        log.debug("malformed request: %r", exc)
        return 400, BAD_REQUEST_BODY, _JSON
    response = app.dispatch(request)
    return response.status, response.body, response.headers
