"""Serve the Bolt app over HTTP on loopback (threaded, unlike Bolt's development server).

Slack (or the local client) POSTs commands, interactivity and options to ``/slack/events``;
Bolt verifies the signature and timestamp and answers 401 when they don't hold.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from slack_bolt.request import BoltRequest

from bot.slack.request_guard import UNAUTHORIZED_BODY, bad_timestamp

__all__ = ["BoltHTTPServer"]

PATH = "/slack/events"
MAX_BODY = 1_000_000


class BoltHTTPServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 3000) -> None:
        self.app = app
        handler = _handler(app)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
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
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> BoltHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(app: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: Bolt logs what matters
            return

        def _send(self, status: int, body: str, headers: dict[str, Any] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for key, values in (headers or {}).items():
                for value in values if isinstance(values, list) else [values]:
                    if key.lower() != "content-length":
                        self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if urlparse(self.path).path == "/healthz":
                self._send(200, "ok", {"Content-Type": "text/plain"})
            else:
                self._send(404, "not found")

        def do_POST(self) -> None:
            url = urlparse(self.path)
            if url.path != PATH:
                self._send(404, "not found")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, "too large")
                return
            body = self.rfile.read(length).decode("utf-8")
            headers = {k.lower(): [v] for k, v in self.headers.items()}
            if bad_timestamp(headers):
                self._send(401, UNAUTHORIZED_BODY, {"Content-Type": "application/json"})
                return
            resp = app.dispatch(BoltRequest(body=body, query=url.query, headers=headers))
            self._send(resp.status, resp.body, resp.headers)

    return Handler
