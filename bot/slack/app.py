"""The Bolt app: `/train`, buttons and modals. Built by a factory from its dependencies.

Every listener acks at once (Slack's 3 s) and does its work in a lazy listener, so the same
app runs on Lambda (``process_before_response=True``; the lazy part re-invokes the function)
and over HTTP or Socket Mode locally. Nothing heavy is imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult

from bot.commands import parse
from bot.dispatch import Actor, execute
from bot.domain import InvalidInput
from bot.error_text import user_text
from bot.services.context import Deps
from bot.slack import interactions
from bot.slack.blocks import fallback_text, render_blocks
from bot.views import presenters

__all__ = ["build_app"]

log = logging.getLogger("trainbot.slack")


def build_app(
    deps: Deps,
    *,
    signing_secret: str,
    bot_token: str,
    client: Any,
    stuck_after: timedelta,
    process_before_response: bool = True,
) -> App:
    """The one Bolt App. ``client`` is a ``slack_sdk.WebClient`` (pointed at Slack or the
    local stand-in through its ``base_url``)."""

    def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        # A fixed single-workspace result: no auth.test call at start or per request.
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=bot_token)

    app = App(
        signing_secret=signing_secret,
        client=client,
        authorize=authorize,
        process_before_response=process_before_response,
        raise_error_for_unhandled_request=False,
    )

    def ack_command(ack: Callable[..., None], command: dict) -> None:
        text = command.get("text", "")
        try:
            cmd = parse(text)
        except InvalidInput as exc:
            ack(response_type="ephemeral", text=exc.user_text())
            return
        if cmd.name == "help":
            doc = presenters.help_doc(cmd.topic)
            ack(response_type="ephemeral", text=fallback_text(doc), blocks=render_blocks(doc))
            return
        ack(response_type="ephemeral", text=f":hourglass: `/train {text[:200]}` …")

    def run_command(command: dict, respond: Callable[..., Any], client: Any) -> None:
        try:
            cmd = parse(command.get("text", ""))
        except InvalidInput:
            return  # already answered in the ack
        if cmd.name == "help":
            return
        actor = Actor(user=command["user_id"], channel=command.get("channel_id"),
                      request_key=_request_key(command), interactive=True)
        try:
            deps.policy.check_channel(actor.channel)
            if cmd.name == "start" and not cmd.algorithm and not cmd.preset:
                interactions.open_start_modal(deps, client, command["trigger_id"], actor)
                return
            reply = execute(deps, cmd, actor, stuck_after=stuck_after)
        except Exception as exc:
            respond(response_type="ephemeral", replace_original=False,
                    text=":warning: " + user_text(exc, log=log))
            return
        if reply.public and reply.version is not None:
            where = "" if reply.version.message_ts else " (no channel card: the bot isn't in " \
                "this channel — `/invite @trainbot`)"
            verb = "is waiting for approval" if reply.approval else "is launching"
            respond(response_type="ephemeral", replace_original=False,
                    text=f":rocket: {reply.version.label} {verb}.{where}")
            return
        respond(response_type="ephemeral", replace_original=False,
                text=fallback_text(reply.doc), blocks=render_blocks(reply.doc))
        if cmd.name == "eval" and reply.version is not None:
            post = getattr(deps.chat, "post_confusion_matrix", None)
            if post is not None:
                post(reply.version, channel=actor.channel)

    app.command("/train")(ack=ack_command, lazy=[run_command])
    interactions.register(app, deps, stuck_after=stuck_after)
    return app


def _request_key(command: dict) -> str | None:
    """Slack re-delivers the same payload on retry; its trigger_id identifies the request."""
    trigger = command.get("trigger_id")
    return f"{command.get('team_id', '')}:{trigger}" if trigger else None

