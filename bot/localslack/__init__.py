"""Slack on loopback: a Web API stand-in, Slack-signed payloads, and a terminal client.

- :class:`LocalSlack` (:mod:`bot.localslack.server`) answers the Web API methods trainbot
  calls (``WebClient(base_url=slack.api_url)``): :mod:`~bot.localslack.workspace` keeps the
  workspace in memory, :mod:`~bot.localslack.methods` answers ``/api/<method>``,
  :mod:`~bot.localslack.endpoints` the ``/_local/`` endpoints,
  :mod:`~bot.localslack.files` files (users' shares, ``files.info``'s file object, and
  ``url_private`` downloads that need the bot token), and
  :mod:`~bot.localslack.traffic` records what it received for tests.
- :class:`StrictRules` (:mod:`bot.localslack.strict`) is what it checks, always, before it
  takes a message or a view: Block Kit limits, escaping, links and mentions; it refuses an
  invalid one with Slack's own answer (``invalid_blocks`` and JSON pointers …);
  :mod:`bot.localslack.escaping` checks mrkdwn text, :mod:`bot.localslack.faults` holds the
  failures a test injects with ``LocalSlack.fail_next``.
- :mod:`bot.localslack.signing` signs requests and builds slash-command, ``block_actions``
  and ``view_submission`` bodies exactly as Slack posts them to an app.
- :func:`run_client` (:mod:`bot.localslack.client`) is the REPL a person uses to drive a
  locally running bot; :mod:`~bot.localslack.screen` decides what it prints (new messages
  whole, edits as the lines that changed), :mod:`~bot.localslack.render` how (Block Kit as
  text, numbered buttons), :mod:`~bot.localslack.modal_values` what a ``/submit`` sends.

Only :mod:`bot.localslack.strict` imports slack_sdk, for its Block Kit models (and so the
server, methods and endpoints load it); nothing imports slack_bolt; the rest, the whole
client side included, is standard library only.
Names load on first use so that ``python -m bot.localslack.server`` / ``.client`` run
without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.localslack.client import run_client
    from bot.localslack.modal_values import build_view_values
    from bot.localslack.render import (
        ButtonNumbers,
        render_message,
        render_refusal,
        render_view,
    )
    from bot.localslack.server import LocalSlack
    from bot.localslack.signing import (
        block_actions_body,
        sign,
        slash_command_body,
        view_submission_body,
    )
    from bot.localslack.strict import Refusal, StrictRules
    from bot.localslack.traffic import RecordedRequest
    from bot.localslack.workspace import BOT_USER_ID, DEFAULT_CHANNEL

_HOMES = {
    "bot.localslack.client": ("run_client",),
    "bot.localslack.modal_values": ("build_view_values",),
    "bot.localslack.render": ("ButtonNumbers", "render_message", "render_refusal",
                              "render_view"),
    "bot.localslack.server": ("LocalSlack",),
    "bot.localslack.signing": ("block_actions_body", "sign", "slash_command_body",
                               "view_submission_body"),
    "bot.localslack.strict": ("Refusal", "StrictRules"),
    "bot.localslack.traffic": ("RecordedRequest",),
    "bot.localslack.workspace": ("BOT_USER_ID", "DEFAULT_CHANNEL"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "BOT_USER_ID",
    "DEFAULT_CHANNEL",
    "ButtonNumbers",
    "LocalSlack",
    "RecordedRequest",
    "Refusal",
    "StrictRules",
    "block_actions_body",
    "build_view_values",
    "render_message",
    "render_refusal",
    "render_view",
    "run_client",
    "sign",
    "slash_command_body",
    "view_submission_body",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME_OF[name]), name)
