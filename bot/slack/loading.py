"""The "loading" modal a listener opens in its ack, how the lazy half finds it again, and
the title every trainbot modal shows.

Slack's ``trigger_id`` is good for 3 s. A cold Lambda's lazy half (a second invocation) can
miss that, so the ack itself opens a light modal at once (``views.open``) and the lazy half
fills it in with ``views.update`` by ``external_id`` — derived from the trigger, so both
halves name the same modal without sharing state.
https://api.slack.com/surfaces/modals#updating_views
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["TITLE_MAX", "external_id", "loading_view", "message_view", "modal_title",
           "shorten"]

# https://api.slack.com/reference/surfaces/views: a modal's title (and its submit and close
# texts) hold at most 24 characters.
TITLE_MAX = 24
# Job and algorithm names are read in parts ("tabular-classification"), so a title may break
# inside one at these, as between words.
_BREAKS = " -_."


def external_id(trigger_id: str) -> str:
    """A stable, unique ``external_id`` for the modal opened with ``trigger_id``."""
    return "trainbot-" + hashlib.sha256(trigger_id.encode()).hexdigest()[:32]


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut after its last whole word or whole part
    of a name and ended with "…": "Rerun tabular-classification v3" → "Rerun tabular-…".
    Only text with no break to cut at is cut mid-word ("abcdefghijklmn…")."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if text[limit - 1] in _BREAKS:  # the cut falls between two words already
        return head.rstrip() + "…"
    cut = max(head.rfind(c) for c in _BREAKS)
    if cut > 0:
        # A name's own "-" stays, telling that the name goes on; a space doesn't.
        head = head[: cut + 1].rstrip()
    return head + "…"


def modal_title(title: str) -> dict[str, Any]:
    """``title`` as a modal's title, within Slack's 24 characters (see :func:`shorten`)."""
    return _plain(shorten(title, TITLE_MAX) or " ")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def loading_view(title: str, trigger_id: str) -> dict[str, Any]:
    return {
        "type": "modal", "external_id": external_id(trigger_id), "title": modal_title(title),
        "close": _plain("Cancel"),
        "blocks": [{"type": "section", "block_id": "loading",
                    "text": {"type": "mrkdwn", "text": ":hourglass: Loading…"}}],
    }


def message_view(title: str, mrkdwn: str) -> dict[str, Any]:
    """A modal that only says something (a refusal, an error) and can be closed."""
    return {
        "type": "modal", "title": modal_title(title), "close": _plain("Close"),
        "blocks": [{"type": "section", "block_id": "message",
                    "text": {"type": "mrkdwn", "text": mrkdwn[:3000]}}],
    }
