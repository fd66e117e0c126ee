"""Slack on loopback: a Web API stand-in, Slack-signed payloads, and a terminal client.

- :class:`LocalSlack` answers the Web API methods trainbot calls (``WebClient(base_url=
  slack.api_url)``), keeps the workspace in memory and records the traffic for tests.
- :class:`StrictRules` (:mod:`bot.localslack.strict`) is what it checks, always, before it
  takes a message or a view: Block Kit limits, escaping, links and mentions; it refuses an
  invalid one with Slack's own answer (``invalid_blocks`` and JSON pointers …);
  :mod:`bot.localslack.escaping` checks mrkdwn text, :mod:`bot.localslack.faults` holds the
  failures a test injects with ``LocalSlack.fail_next``.
- :mod:`bot.localslack.signing` signs requests and builds slash-command, ``block_actions``
  and ``view_submission`` bodies exactly as Slack posts them to an app.
- :func:`run_client` is the REPL a person uses to drive a locally running bot.

Only :mod:`bot.localslack.strict` (and so the server) imports slack_sdk, for its Block Kit
models; nothing imports slack_bolt; the client, signing, escaping and faults are standard
library only.
Names load on first use so that ``python -m bot.localslack.server`` / ``.client`` run
without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.localslack.client import (
        ButtonNumbers,
        build_view_values,
        render_message,
        render_refusal,
        render_view,
        run_client,
    )
    from bot.localslack.server import BOT_USER_ID, DEFAULT_CHANNEL, LocalSlack, RecordedRequest
    from bot.localslack.signing import (
        block_actions_body,
        sign,
        slash_command_body,
        view_submission_body,
    )
    from bot.localslack.strict import Refusal, StrictRules

_HOMES = {
    "bot.localslack.client": ("ButtonNumbers", "build_view_values", "render_message",
                              "render_refusal", "render_view", "run_client"),
    "bot.localslack.server": ("BOT_USER_ID", "DEFAULT_CHANNEL", "LocalSlack", "RecordedRequest"),
    "bot.localslack.signing": ("block_actions_body", "sign", "slash_command_body",
                               "view_submission_body"),
    "bot.localslack.strict": ("Refusal", "StrictRules"),
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
