"""The Bolt app: `/train`, buttons and modals. Built by a factory from its dependencies.

Every listener acks at once (Slack's 3 s) and does its work in a lazy listener, so the same
app runs on Lambda (``process_before_response=True``; the lazy part re-invokes the function)
and over HTTP or Socket Mode locally.

The ack path is kept light on purpose — a cold Lambda must answer within Slack's 3 s: this
module imports Bolt, the command grammar and the block renderer, nothing more. The work
itself lives in :mod:`bot.slack.interactions`, imported when a lazy listener (or a modal's
ack) first runs, and the dependencies (settings, store, backend, catalog) come from
``deps``, a function that builds them on first call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from types import ModuleType
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.commands import Help, StartForm, parse, unescape_slack
from bot.domain import InvalidInput
from bot.slack import options
from bot.slack.blocks import fallback_text, render_blocks
from bot.slack.loading import loading_view
from bot.views.help import help_doc
from bot.views.mrkdwn import esc, esc_keep_mentions

if TYPE_CHECKING:
    from bot.services.context import Deps

__all__ = ["BUTTONS", "MODALS", "MODAL_BUTTONS", "build_app", "handlers"]

log = logging.getLogger("trainbot.slack")

# Buttons that stand for a command (``interactions.BUTTON_COMMANDS`` maps each to it); the
# command runs lazily, through the same dispatch as `/train`.
BUTTONS = (
    "show_lineage", "show_logs", "show_eval", "stop_version", "approve_request",
    "delete_preset", "register_model", "approve_model", "stop_sweep",
)
# Buttons that open a modal (a form whose submission is the command): the ack opens a
# "loading" modal while the trigger is fresh; the lazy half, the interactions function of
# that name, fills it in.
MODAL_BUTTONS = {
    "reject_request": "Reject request", "rerun_version": "Rerun", "save_preset": "Save as preset",
    "reject_model": "Reject model",
}
# One "Start" button per preset in a list, each with its own action_id (``start_preset:NAME``;
# Slack refuses two equal action_ids in one block).
START_PRESET = re.compile(r"^start_preset(:.*)?$")
# Modal ``callback_id`` → whether a lazy ``<id>_submit`` follows its ``<id>_ack``.
MODALS = {
    "start_choose": False,  # answers with the next view
    "start_form": True,
    "rerun_form": True,
    "reject_reason": True,
    "save_preset": True,
    "reject_model_reason": True,
}
# The listeners of the model approval card's Reject live in ``bot.slack.model_buttons``
# (``interactions`` holds the rest).
_MODEL_HANDLERS = frozenset({"reject_model", "reject_model_reason"})


def build_app(
    deps: Callable[[], Deps],
    *,
    signing_secret: str,
    bot_token: str,
    client: Any,
    process_before_response: bool = True,
    channels: Collection[str] = (),
) -> App:
    """The one Bolt App. ``client`` is a ``slack_sdk.WebClient`` (pointed at Slack or the
    local stand-in through its ``base_url``); ``deps`` builds (once) and returns the bot's
    dependencies — no listener's ack calls it except a modal's."""

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

    def ack_command(ack: Callable[..., None], command: dict, client: Any) -> None:
        text = command.get("text", "")
        if channels and command.get("channel_id") not in channels:
            ack(response_type="ephemeral", text=":hourglass: …")  # the lazy half refuses it
            return
        try:
            cmd = parse(text, from_slack=True)
        except InvalidInput as exc:
            ack(response_type="ephemeral", text=esc_keep_mentions(exc.user_text()))
            return
        if isinstance(cmd, Help):
            doc = help_doc(cmd.topic)
            ack(response_type="ephemeral", text=fallback_text(doc), blocks=render_blocks(doc))
            return
        if isinstance(cmd, StartForm):
            _open_loading(client, command.get("trigger_id"), "Start training")
        shown = esc(unescape_slack(text)[:200]).replace("`", "'")
        ack(response_type="ephemeral", text=f":hourglass: `/train {shown}` …")

    def run_command(command: dict, respond: Callable[..., Any], client: Any) -> None:
        from bot.slack import interactions

        interactions.run_command(deps, command, respond, client)

    # Help and malformed input are answered whole by the ack: a listener without a lazy half
    # spares them the re-invocation (on Lambda, a second function call — and, on a cold
    # start, the Lambda client that makes it). Bolt takes the first listener that matches.
    def answered_in_ack(command: dict) -> bool:
        # Held to the allow-list like everything else: elsewhere the lazy half refuses it.
        if channels and command.get("channel_id") not in channels:
            return False
        return _answered_in_ack(command)

    app.command("/train", matchers=[answered_in_ack])(ack_command)
    app.command("/train")(ack=ack_command, lazy=[run_command])
    for action_id in BUTTONS:
        app.action(action_id)(ack=_ack, lazy=[_pressed(action_id, deps)])
    for action_id, title in MODAL_BUTTONS.items():
        app.action(action_id)(ack=_ack_opening(title), lazy=[_opened(action_id, deps)])
    app.action(START_PRESET)(ack=_ack, lazy=[_pressed("start_preset", deps)])
    app.action("open_tensorboard")(_ack)  # a URL button: Slack opens the link itself
    app.options(options.ACTION_ID)(_suggest(deps))
    for callback_id, has_submit in MODALS.items():
        ack = _modal_ack(callback_id, deps)
        if has_submit:
            app.view(callback_id)(ack=ack, lazy=[_modal_submit(callback_id, deps)])
        else:
            app.view(callback_id)(ack)
    return app


def _ack(ack: Callable[..., None]) -> None:
    ack()


def _suggest(deps: Callable[[], Deps]) -> Callable[..., None]:
    """Options for a modal's ``external_select`` (menus over 100 entries). They travel in
    the ack itself, so this listener has no lazy half."""

    def suggest(ack: Callable[..., None], body: dict) -> None:
        from bot.slack import interactions

        ack(**interactions.suggest_options(deps, body))

    return suggest


def _open_loading(client: Any, trigger_id: str | None, title: str) -> None:
    """Open the modal at once, while the trigger is fresh; the lazy half fills it in."""
    if not trigger_id:
        return
    # No retries and a short timeout: a late answer is worthless (the trigger lasts 3 s)
    # and the ack must not wait for one.
    quick = WebClient(token=client.token, base_url=client.base_url, timeout=2,
                      retry_handlers=[])
    try:
        quick.views_open(trigger_id=trigger_id, view=loading_view(title, trigger_id))
    except Exception as exc:  # the lazy half finds no modal and tells the user why
        log.warning("could not open the %r modal: %s", title, exc)


def _ack_opening(title: str) -> Callable[..., None]:
    def ack_opening(ack: Callable[..., None], body: dict, client: Any) -> None:
        ack()
        _open_loading(client, body.get("trigger_id"), title)

    return ack_opening


def _answered_in_ack(command: dict) -> bool:
    try:
        return isinstance(parse(command.get("text", ""), from_slack=True), Help)
    except InvalidInput:
        return True


# Bolt injects a listener's arguments by parameter name, and on Lambda finds the lazy half
# again by the function's ``__name__`` (the re-invocation carries it) — so each trampoline
# is named for what it runs.


def _pressed(action_id: str, deps: Callable[[], Deps]) -> Callable[..., None]:
    def run(body: dict, respond: Callable[..., Any], client: Any) -> None:
        from bot.slack import interactions

        interactions.press(action_id, deps, body, respond)

    run.__name__ = run.__qualname__ = action_id
    return run


def handlers(name: str) -> ModuleType:
    """The module holding the work behind listener ``name``, imported on first use."""
    if name in _MODEL_HANDLERS:
        from bot.slack import model_buttons

        return model_buttons
    from bot.slack import interactions

    return interactions


def _opened(action_id: str, deps: Callable[[], Deps]) -> Callable[..., None]:
    def run(body: dict, respond: Callable[..., Any], client: Any) -> None:
        getattr(handlers(action_id), action_id)(deps, body, respond, client)

    run.__name__ = run.__qualname__ = action_id
    return run


def _modal_ack(callback_id: str, deps: Callable[[], Deps]) -> Callable[..., None]:
    def ack_view(ack: Callable[..., None], body: dict, view: dict) -> None:
        getattr(handlers(callback_id), f"{callback_id}_ack")(deps, ack, body, view)

    ack_view.__name__ = ack_view.__qualname__ = f"{callback_id}_ack"
    return ack_view


def _modal_submit(callback_id: str, deps: Callable[[], Deps]) -> Callable[..., None]:
    def submit(body: dict, client: Any) -> None:
        getattr(handlers(callback_id), f"{callback_id}_submit")(deps, body, client)

    submit.__name__ = submit.__qualname__ = f"{callback_id}_submit"
    return submit
