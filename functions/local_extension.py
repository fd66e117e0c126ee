"""A loopback stand-in for the AWS Parameters and Secrets Lambda Extension.

The real extension is a layer that serves, on ``localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``,
``GET /systemsmanager/parameters/get?name=…&withDecryption=true`` (the GetParameter response
as JSON) and ``GET /secretsmanager/get?secretId=…`` (GetSecretValue), fetching from AWS with
the function's credentials and caching for a TTL. Requests must carry
``X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN``.
https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-integration-lambda-extensions.html

This one does the same against whatever ``bot.aws.aws_client`` reaches (the moto server in
the tests and benchmarks), so :mod:`functions.secrets` runs its real HTTP path off Lambda.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.parse
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LocalSecretsExtension"]


class LocalSecretsExtension:
    """``with LocalSecretsExtension(token=...) as ext:`` then point
    ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`` at ``ext.port``."""

    def __init__(self, *, token: str, ttl_s: float = 300.0, port: int = 0) -> None:
        from bot.aws import aws_client

        self.token = token
        self.ttl_s = ttl_s
        self.requests: list[str] = []  # paths served, in order
        self.backend_calls = 0  # GetParameter / GetSecretValue calls made (cache misses)
        self._ssm = aws_client("ssm")
        self._secrets = aws_client("secretsmanager")
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="secrets-extension")

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> LocalSecretsExtension:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalSecretsExtension:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answer(self, path: str, query: dict[str, str], token: str | None
               ) -> tuple[int, bytes]:
        self.requests.append(path)
        if token != self.token:
            return 401, b"missing or invalid X-Aws-Parameters-Secrets-Token"
        if path.rstrip("/") == "/systemsmanager/parameters/get" and query.get("name"):
            key = f"ssm:{query['name']}:{query.get('withDecryption', 'false')}"
            call = functools.partial(self._ssm.get_parameter, Name=query["name"],
                                     WithDecryption=query.get("withDecryption") == "true")
        elif path.rstrip("/") == "/secretsmanager/get" and query.get("secretId"):
            key = f"sm:{query['secretId']}"
            call = functools.partial(self._secrets.get_secret_value,
                                     SecretId=query["secretId"])
        else:
            return 400, b"unknown path or missing name/secretId"
        with self._lock:
            cached = self._cache.get(key)
            if cached and time.monotonic() - cached[0] < self.ttl_s:
                return 200, cached[1]
        from botocore.exceptions import ClientError

        self.backend_calls += 1
        try:
            result = call()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            return 400, f"{error.get('Code')}: {error.get('Message')}".encode()
        result.pop("ResponseMetadata", None)
        body = json.dumps(result, default=_json_default).encode()
        with self._lock:
            self._cache[key] = (time.monotonic(), body)
        return 200, body


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()  # AWS's JSON protocols send epoch seconds
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _handler_for(extension: LocalSecretsExtension) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            status, body = extension.answer(
                url.path, query, self.headers.get("X-Aws-Parameters-Secrets-Token"))
            self.send_response(status)
            self.send_header("Content-Type",
                             "application/json" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests and benchmarks read extension.requests instead

    return Handler
