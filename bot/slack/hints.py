"""What to tell a person when Slack didn't take one of trainbot's messages.

Keyed by Slack's own error codes (https://api.slack.com/methods/chat.postMessage#errors), so
that "the bot isn't in this channel" is said only when that is what Slack answered.
"""

from __future__ import annotations

__all__ = ["card_hint"]

_INVITE = "the bot isn't in this channel — `/invite @trainbot`, then `/train show {ref}`"
_REINSTALL = ("trainbot's Slack token no longer works (the app was uninstalled or its token "
              "revoked) — a workspace admin must reinstall the app")
_BUG = ("Slack refused the message ({code}) — a trainbot bug; the log has the details. "
        "`/train show {ref}` shows it")

_HINTS = {
    "not_in_channel": _INVITE,
    "channel_not_found": _INVITE,
    "is_archived": "this channel is archived — unarchive it or start from another channel",
    "restricted_action": "this channel doesn't let apps post — ask a channel manager",
    "token_revoked": _REINSTALL,
    "account_inactive": _REINSTALL,
    "invalid_auth": _REINSTALL,
    "not_authed": _REINSTALL,
    "missing_scope": "trainbot lacks a Slack permission (scope) — reinstall the app",
    "ratelimited": ("Slack is rate-limiting trainbot right now — `/train show {ref}` shows "
                    "it; the end of the run is still announced here"),
    "connection_error": ("trainbot couldn't reach Slack — `/train show {ref}` shows it; the "
                         "end of the run is still announced here"),
    "invalid_blocks": _BUG,
    "msg_too_long": _BUG,
    "invalid_arguments": _BUG,
}


def card_hint(code: str, *, ref: str) -> str:
    """Why a card isn't in the channel, and what to do (``ref``: ``JOB vN``)."""
    template = _HINTS.get(code)
    if template is None:
        template = ("Slack answered `{code}` — `/train show {ref}` shows it"
                    if not code.startswith("http_") else
                    "Slack had an outage ({code}) — `/train show {ref}` shows it; the end of "
                    "the run is still announced here")
    return template.format(code=code, ref=ref)
