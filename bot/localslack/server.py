"""A local stand-in for the Slack Web API: a workspace in a box on loopback.

Point ``slack_sdk.WebClient(token=..., base_url=slack.api_url)`` (or trainbot's
``SLACK_API_URL``) at it and it answers the Web API methods trainbot uses with Slack's own
response shapes, keeps channels, threads, ephemerals, modals and files in memory, and records
every call so tests assert on the traffic instead of mocking the client (the way bolt-python's
own tests run a mock Web API server).

This module is the HTTP server and :class:`LocalSlack`, the object tests and ``make run`` use;
the parts live beside it: :mod:`~bot.localslack.workspace` (the state),
:mod:`~bot.localslack.methods` (``/api/<method>``), :mod:`~bot.localslack.endpoints` (the
``/_local/`` endpoints Slack itself does not have, for the terminal client and tests: state
long-poll, uploads, a user's files, interactions, response_url, view_submission acks),
:mod:`~bot.localslack.files` (file objects, and their ``url_private`` downloads, which need
the bot token) and :mod:`~bot.localslack.traffic` (what was received).

It is strict, always: every ``blocks``, ``text`` and ``view`` goes through
:class:`~bot.localslack.strict.StrictRules` and an invalid one is refused the way Slack refuses
it (``invalid_blocks`` with JSON pointers, ``invalid_arguments``, ``msg_too_long``); a
``trigger_id`` from :meth:`LocalSlack.new_interaction` opens one view within ``trigger_ttl_s``.
Every error answered (refusals and injected faults alike) is in :meth:`LocalSlack.refusals`
and under ``refusals`` in ``/_local/state``. Every public method is thread-safe.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.localslack.endpoints import LocalEndpoints
from bot.localslack.faults import Faults, Reply
from bot.localslack.files import DEFAULT_SCOPES, LOGIN_PAGE, FileServer, user_file
from bot.localslack.methods import Methods
from bot.localslack.params import parse_params
from bot.localslack.strict import DEFAULT_LINK_HOSTS, Refusal, StrictRules
from bot.localslack.traffic import RecordedRequest, Traffic
from bot.localslack.workspace import DEFAULT_CHANNEL, DEFAULT_USERS, ApiError, Workspace

__all__ = ["LocalSlack"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request to the Web API or to a ``/_local/`` endpoint."""

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("localslack: " + format, *args)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        slack = self.server.localslack
        try:
            if url.path.startswith("/api/"):
                params = parse_params(url.query, self.headers.get("Content-Type", ""), body)
                self._reply(*slack._api(url.path[5:], params, dict(self.headers.items())))
            elif url.path.startswith("/files-pri/"):
                self._reply(*slack._files.serve(url.path, dict(self.headers.items())))
            elif url.path.startswith("/files/"):  # a permalink: a page for people signed in
                self._reply(200, LOGIN_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            else:
                self._reply(*slack._endpoints.route(url.path, url.query, body))
        except (ValueError, TypeError) as exc:  # a malformed body or argument
            _log.warning("localslack: bad request to %s: %s", url.path, exc)
            self._reply(400, {"ok": False, "error": "invalid_arguments"}, {})

    def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        content_type = "application/json; charset=utf-8"
        if not isinstance(payload, dict | list):
            content_type = "text/plain; charset=utf-8"
        headers = {"Content-Type": content_type, **headers, "Content-Length": str(len(data))}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of parallel calls into SYN retries
    localslack: LocalSlack


class LocalSlack:
    """A Slack workspace on loopback that speaks the Web API (see the module docstring).

    Use it as a context manager: ``with LocalSlack() as slack:`` then
    ``WebClient(token="xoxb-local", base_url=slack.api_url)``.

    Its checks cannot be turned off; two allow-lists may be widened: ``link_hosts`` (hosts a
    link may point to, ``"*.example.com"`` for subdomains; default
    :data:`~bot.localslack.strict.DEFAULT_LINK_HOSTS`, and ``host`` always) and
    ``special_mentions`` (which of ``here``, ``channel``, ``everyone`` may be used; none by
    default). ``trigger_ttl_s`` is how long a trigger_id opens a view (Slack: 3 s).
    ``scopes`` are the bot token's (default: what infra/slack-app-manifest.yml asks for);
    a files method without its scope answers ``missing_scope``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_token: str = "xoxb-local",
        users: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        channels: dict[str, str] | None = None,
        link_hosts: Iterable[str] | None = None,
        special_mentions: Iterable[str] = (),
        trigger_ttl_s: float = 3.0,
        scopes: Iterable[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.bot_token = bot_token
        self._ws = Workspace(DEFAULT_USERS if users is None else users, usergroups or {},
                             base_url=self.url, channels=channels)
        hosts = frozenset(DEFAULT_LINK_HOSTS if link_hosts is None else link_hosts) | {host}
        self._rules = StrictRules(link_hosts=hosts, special_mentions=frozenset(special_mentions))
        scope_set = frozenset(DEFAULT_SCOPES if scopes is None else scopes)
        self._methods = Methods(self._ws, bot_token, self._rules, trigger_ttl_s, scope_set)
        self._traffic = Traffic(self._ws)
        self._files = FileServer(self._ws, bot_token, scope_set, self._traffic)
        self._faults = Faults()
        self._endpoints = LocalEndpoints(self._ws, self._rules, self._faults, self._traffic)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> LocalSlack:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.localslack = self
        self.port = server.server_address[1]
        with self._ws.lock:
            self._ws.base_url = self.url
            self._ws.serving = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="localslack",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        with self._ws.lock:
            server, self._server = self._server, None
            self._ws.serving = False
            self._ws.lock.notify_all()  # wake long-polls: they end once not serving
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> LocalSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (the terminal client's ``slack`` URL)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL for ``WebClient(base_url=...)`` / ``SLACK_API_URL``."""
        return f"{self.url}/api/"

    # --------------------------------------------------------- tests: traffic
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        return self._traffic.requests()

    def requests_for(self, method: str) -> list[RecordedRequest]:
        """The recorded requests for one Web API method (e.g. ``chat.postMessage``)."""
        return [r for r in self.requests if r.method == method]

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: int | None = 1,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (``"*"``: any Web API method) fail.

        Without ``status`` and ``error`` the answer is HTTP 429 with ``Retry-After``;
        ``status=500`` (or 503 …) answers a server error; ``error="..."`` alone answers
        HTTP 200 ``{"ok": false, "error": error}`` (``not_in_channel``, ``channel_not_found``,
        ``is_archived``, ``token_revoked``, ``expired_trigger_id``, ``user_not_in_channel`` …).
        ``method="_local.response"`` fails response_url posts: ``error`` alone answers HTTP 404
        with that text (``expired_url``, ``used_url``), as Slack's response_url does.
        """
        with self._ws.lock:
            self._faults.add(method, status=status, retry_after=retry_after, error=error,
                             times=times)

    def refusals(self) -> list[dict[str, Any]]:
        """Every error answered, oldest first: ``{n, method, status, error, messages, time}``
        (strict-check refusals carry ``messages`` with JSON pointers)."""
        return self._read(lambda: copy.deepcopy(self._ws.refusals))

    def leave(self, channel: str, user: str) -> None:
        """``user`` is no longer in ``channel``: ephemerals to them there answer
        ``user_not_in_channel``, as Slack does."""
        with self._ws.lock:
            self._ws.absent.add((channel, user))

    # --------------------------------------------------------- tests: files
    def share_file(self, channel: str, user: str, name: str, content: bytes, *,
                   title: str | None = None, comment: str = "") -> dict[str, Any]:
        """``user`` shares a file in ``channel`` (a ``file_share`` message there); returns
        Slack's file object (``id``, ``permalink``, ``url_private_download`` …)."""
        with self._ws.lock:
            return user_file(self._ws, user, name, content, channel=channel, title=title,
                             comment=comment)

    def upload_file(self, user: str, name: str, content: bytes, *,
                    title: str | None = None) -> dict[str, Any]:
        """``user`` uploads a file shared nowhere, as a modal's ``file_input`` does."""
        with self._ws.lock:
            return user_file(self._ws, user, name, content, title=title)

    def delete_file(self, file_id: str) -> None:
        """The file is deleted: ``files.info`` answers ``file_deleted``, downloads 404."""
        with self._ws.lock:
            self._ws.files[file_id]["deleted"] = True
            self._ws.changed()

    # --------------------------------------------------------- tests: state
    def _read(self, fn: Callable[[], T]) -> T:
        with self._ws.lock:
            return fn()

    def messages(self, channel: str = DEFAULT_CHANNEL) -> list[dict[str, Any]]:
        """Top-level messages of ``channel``, oldest first, each with ``replies``."""
        return self._read(lambda: [self._ws.local_message(channel, m)
                                   for m in self._ws.top.get(channel, [])])

    def ephemerals(self, user: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages (``recipient`` is the user who sees them), oldest first."""
        return self._read(lambda: [copy.deepcopy(e) for e in self._ws.ephemerals
                                   if user is None or e["recipient"] == user])

    def views(self) -> list[dict[str, Any]]:
        """Open modals, each a Slack view plus ``user`` and ``errors``."""
        return self._read(lambda: self._ws.state()["views"])

    def files(self) -> list[dict[str, Any]]:
        """Files' metadata (the bot's uploads and users'), each with its bytes under
        ``content``."""
        return self._read(lambda: [dict(copy.deepcopy(f), content=self._ws.file_bytes.get(i))
                                   for i, f in self._ws.files.items()])

    def state(self) -> dict[str, Any]:
        """The workspace as ``/_local/state`` returns it."""
        return self._read(self._ws.state)

    @property
    def version(self) -> int:
        """Increases on every change to the workspace."""
        return self._read(lambda: self._ws.version)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10) -> T:
        """Return ``predicate()``'s first truthy value, re-checking on every change.

        Raises ``TimeoutError`` when it stays falsy for ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.version
            # Outside the lock: the predicate may itself call this server over HTTP.
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            with self._ws.lock:
                if self._ws.version == seen:
                    self._ws.lock.wait(min(left, 0.1))

    def new_interaction(self, channel: str, user: str, message_ts: str | None = None,
                        *, thread_ts: str | None = None) -> dict[str, str]:
        """Issue a ``trigger_id`` (it opens one view within ``trigger_ttl_s``) and a
        ``response_url`` for a command or click by ``user``."""
        with self._ws.lock:
            return self._ws.new_interaction(channel, user, message_ts, thread_ts)

    # ------------------------------------------------------------ HTTP: Web API
    def _api(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._ws.lock:
            fault = self._faults.take(method)
        if fault is not None:
            answer = fault.api_reply()
            self._traffic.record(method, params, fault.status, headers, answer[1]["error"])
            return answer
        messages: tuple[str, ...] = ()
        try:
            reply: dict[str, Any] = {"ok": True, **self._methods.call(
                method, params, headers.get("Authorization", ""))}
        except ApiError as exc:
            reply = {"ok": False, "error": exc.error, **exc.extra}
        except Refusal as exc:
            reply, messages = exc.reply(), tuple(exc.messages)
        self._traffic.record(method, params, 200, headers, reply.get("error"), messages)
        return 200, reply, {}


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.localslack.server --port 3001``: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a local Slack Web API stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--bot-token", default="xoxb-local")
    args = parser.parse_args(argv)
    with LocalSlack(args.host, args.port, bot_token=args.bot_token) as slack:
        print(f"local Slack Web API at {slack.api_url} (state: {slack.url}/_local/state)",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
