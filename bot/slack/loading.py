"""The "loading" modal a listener opens in its ack, and how the lazy half finds it again.

Slack's ``trigger_id`` is good for 3 s. A cold Lambda's lazy half (a second invocation) can
miss that, so the ack itself opens a light modal at once (``views.open``) and the lazy half
fills it in with ``views.update`` by ``external_id`` — derived from the trigger, so both
halves name the same modal without sharing state.
https://api.slack.com/surfaces/modals#updating_views
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["external_id", "loading_view", "message_view"]


def external_id(trigger_id: str) -> str:
    """A stable, unique ``external_id`` for the modal opened with ``trigger_id``."""
    return "trainbot-" + hashlib.sha256(trigger_id.encode()).hexdigest()[:32]


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def loading_view(title: str, trigger_id: str) -> dict[str, Any]:
    return {
        "type": "modal", "external_id": external_id(trigger_id), "title": _plain(title[:24]),
        "close": _plain("Cancel"),
        "blocks": [{"type": "section", "block_id": "loading",
                    "text": {"type": "mrkdwn", "text": ":hourglass: Loading…"}}],
    }


def message_view(title: str, mrkdwn: str) -> dict[str, Any]:
    """A modal that only says something (a refusal, an error) and can be closed."""
    return {
        "type": "modal", "title": _plain(title[:24]), "close": _plain("Close"),
        "blocks": [{"type": "section", "block_id": "message",
                    "text": {"type": "mrkdwn", "text": mrkdwn[:3000]}}],
    }
