"""`trainbot run | serve | chat`: the embedded default, one machine, no AWS account.

``run`` without Slack tokens starts a local Slack (Web API stand-in), the real Bolt app over
HTTP, TensorBoard on demand, and the terminal client in the foreground. With
``SLACK_BOT_TOKEN`` + ``SLACK_APP_TOKEN`` it connects to a real workspace over Socket Mode.

``run`` and ``serve`` are the one process that owns the background work on this machine: the
reconcile runs in it on a timer (``TRAINBOT_RECONCILE_INTERVAL_S``), and the TensorBoard
server it starts is stopped when it exits — normally, on Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from bot.config import Settings, load_settings
from bot.slack.settings import Secret, SlackSettings

if TYPE_CHECKING:
    from bot.services.context import Deps

__all__ = ["main"]

log = logging.getLogger("trainbot")
LOCAL_USER, LOCAL_APPROVER = "U0LOCAL1", "U0LOCAL2"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="trainbot")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="bot + local Slack + terminal client (or Socket Mode)")
    run.add_argument("--port", type=int, default=3000)
    run.add_argument("--slack-port", type=int, default=0)
    serve = sub.add_parser("serve", help="only the Bolt app over HTTP (or Socket Mode)")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--socket", action="store_true")
    chat = sub.add_parser("chat", help="terminal client for a running bot and local Slack")
    chat.add_argument("--bot-url", default="http://127.0.0.1:3000/slack/events")
    chat.add_argument("--slack-url", default="http://127.0.0.1:3001")
    chat.add_argument("--user", default=LOCAL_USER)
    args = parser.parse_args(list(argv))
    logging.getLogger("trainbot").setLevel(logging.INFO)
    if args.cmd == "chat":
        from bot.localslack.client import run_client

        secret = os.environ.get("SLACK_SIGNING_SECRET")
        if not secret:
            print("error: SLACK_SIGNING_SECRET must match the running bot's", file=sys.stderr)
            return 2
        run_client(args.bot_url, args.slack_url, secret, user_id=args.user)
        return 0
    slack = SlackSettings.from_env()
    socket = (args.cmd == "serve" and args.socket) or (
        args.cmd == "run" and slack.bot_token is not None and slack.app_token is not None)
    _stop_on_signals()
    try:
        if socket:
            return _socket_mode(slack)
        if args.cmd == "serve":
            return _serve(slack, args.port)
        return _run_local(args.port, args.slack_port)
    except _PortInUse as exc:
        print(f"error: port {exc.port} is in use — run `trainbot {args.cmd} --port N`",
              file=sys.stderr)
        return 2
    finally:
        from bot.adapters.tensorboard_local import stop_owned

        stop_owned()


class _PortInUse(Exception):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.port = port


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the process as Ctrl-C does, so ``finally`` blocks and
    :mod:`atexit` run (by default they kill it outright, leaving TensorBoard behind)."""
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


@contextlib.contextmanager
def _background(deps: Deps, settings: Settings) -> Iterator[None]:
    """What the scheduled Lambdas do on AWS, for as long as the bot runs; then the local
    compute's monitors stop (its runs go on, a later start recovers them)."""
    from bot.local_reconcile import ReconcileTimer

    try:
        with ReconcileTimer(deps, interval_s=settings.reconcile_interval_s):
            yield
    finally:
        deps.compute.close()


def _http_server(app: Any, port: int) -> Any:
    from bot.slack.http_server import BoltHTTPServer

    try:
        return BoltHTTPServer(app, port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _PortInUse(port) from exc
        raise


def _socket_mode(slack: SlackSettings) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.slack.wiring import build_slack_bot

    if slack.app_token is None:
        print("error: SLACK_APP_TOKEN (xapp-…) is needed for Socket Mode", file=sys.stderr)
        return 2
    app_token = slack.app_token.get_secret_value()
    if slack.signing_secret is None:
        # Socket Mode requests are authenticated by the app token, not signatures.
        slack = dataclasses.replace(slack, signing_secret=Secret("socket-mode"))
    settings = load_settings()
    bot = build_slack_bot(settings, slack, process_before_response=False)
    print("trainbot: connected over Socket Mode; type /train help in Slack", file=sys.stderr)
    with _background(bot.deps, settings), contextlib.suppress(KeyboardInterrupt):
        SocketModeHandler(bot.app, app_token).start()
    return 0


def _serve(slack: SlackSettings, port: int) -> int:
    from bot.slack.wiring import build_slack_bot

    # The ack runs in the HTTP worker and only the lazy half in Bolt's executor: a burst of
    # commands never leaves an ack queued behind earlier commands' work (Slack waits 3 s).
    settings = load_settings()
    bot = build_slack_bot(settings, slack)
    with _background(bot.deps, settings):
        server = _http_server(bot.app, port)
        print(f"trainbot: serving {server.url} (Web API: {slack.api_url})", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


def _run_local(port: int, slack_port: int) -> int:
    from bot.error_text import report_to_log
    from bot.localslack.client import run_client
    from bot.localslack.server import LocalSlack
    from bot.slack.wiring import build_slack_bot

    settings = load_settings()
    # Everyone in the local workspace is the person at this terminal, who can read the log.
    report_to_log(settings.home / "trainbot.log")
    if not settings.approvers and not settings.admins:
        # The local workspace's second user approves, so the rerun → approve loop works.
        settings = settings.model_copy(update={"approvers": [LOCAL_APPROVER]})
    secret = os.environ.get("SLACK_SIGNING_SECRET") or secrets.token_hex(16)
    with LocalSlack(port=slack_port) as workspace:
        slack = SlackSettings(signing_secret=Secret(secret), bot_token=Secret("xoxb-local"),
                              api_url=workspace.api_url)
        bot = build_slack_bot(settings, slack)  # acks in the HTTP worker, as in _serve
        with _background(bot.deps, settings), _http_server(bot.app, port) as server:
            print(
                f"trainbot is running on this machine (store {settings.db_path}).\n"
                f"  bot:         {server.url}\n  local Slack: {workspace.url}\n"
                f"You are <@{LOCAL_USER}>; `/as {LOCAL_APPROVER}` acts as the approver.\n"
                "Try: /train help · /train start tabular-classification · /quit",
                file=sys.stderr,
            )
            with contextlib.suppress(KeyboardInterrupt):
                run_client(server.url, workspace, secret, user_id=LOCAL_USER)
    return 0
