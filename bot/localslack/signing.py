"""Sign requests and build payloads exactly as Slack sends them to an app.

The signature is Slack's v0 scheme: ``v0=`` + HMAC-SHA256(signing secret,
``"v0:{timestamp}:{raw body}"``), see
https://api.slack.com/authentication/verifying-requests-from-slack. The payload builders
mirror what Slack posts for a slash command (form fields) and for interactions
(form field ``payload`` holding JSON), so a Bolt app cannot tell them from the real thing.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "API_APP_ID",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "VERIFICATION_TOKEN",
    "block_actions_body",
    "new_trigger_id",
    "sign",
    "slash_command_body",
    "view_submission_body",
]

TEAM_ID = "T0LOCAL"
TEAM_DOMAIN = "local"
API_APP_ID = "A0LOCAL"
# The deprecated verification token Slack still puts in every payload; Bolt ignores it.
VERIFICATION_TOKEN = "local-verification-token"
FORM = "application/x-www-form-urlencoded"

_trigger_counter = itertools.count(1)


def sign(
    signing_secret: str,
    body: str,
    timestamp: int | None = None,
    *,
    content_type: str = FORM,
) -> dict[str, str]:
    """Return the headers Slack sends with ``body``: timestamp, v0 signature, content type."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
    }


def new_trigger_id() -> str:
    """A fresh id shaped like Slack's trigger ids (``13345224609.738474920.8088930838d88f0``)."""
    return f"{int(time.time())}.{next(_trigger_counter)}.{secrets.token_hex(16)}"


def slash_command_body(
    text: str,
    *,
    user_id: str,
    user_name: str,
    channel_id: str,
    response_url: str,
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
    command: str = "/train",
    channel_name: str = "trainbot-local",
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = API_APP_ID,
) -> str:
    """The form-encoded body Slack posts for ``{command} {text}``, ``text`` as typed: Slack
    sends it with ``&``, ``<`` and ``>`` escaped (https://api.slack.com/interactivity/
    slash-commands#app_command_handling), and so does this."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "team_domain": team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or new_trigger_id(),
        }
    )


def _user(user_id: str, user_name: str | None, team_id: str) -> dict[str, str]:
    name = user_name or user_id
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _envelope(kind: str, *, user_id: str, user_name: str | None, team_id: str,
              trigger_id: str | None) -> dict[str, Any]:
    """The keys every interaction payload shares."""
    return {
        "type": kind,
        "user": _user(user_id, user_name, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
    }


def _form_payload(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def block_actions_body(
    action_id: str,
    value: str | None,
    *,
    user_id: str,
    channel_id: str,
    message_ts: str,
    response_url: str,
    message: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
    block_id: str | None = None,
    user_name: str | None = None,
    channel_name: str = "trainbot-local",
    text: str | None = None,
    is_ephemeral: bool = False,
    view: dict[str, Any] | None = None,
) -> str:
    """The form-encoded ``payload=`` Slack posts when a user clicks a button.

    ``message`` is the clicked message as Slack sends it (Slack omits it for ephemeral
    messages). With ``view``, the button sits in a modal and the container says so.
    """
    payload = _envelope("block_actions", user_id=user_id, user_name=user_name,
                        team_id=team_id, trigger_id=trigger_id)
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = view
    else:
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        }
        payload["channel"] = {"id": channel_id, "name": channel_name}
        payload["response_url"] = response_url
        if message is not None:
            payload["message"] = message
    payload["state"] = {"values": {}}
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or secrets.token_hex(3),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if value is not None:
        action["value"] = value
    if text is not None:
        action["text"] = {"type": "plain_text", "text": text, "emoji": True}
    payload["actions"] = [action]
    return _form_payload(payload)


def view_submission_body(
    view: dict[str, Any],
    values: dict[str, Any],
    *,
    user_id: str,
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    user_name: str | None = None,
) -> str:
    """The form-encoded ``payload=`` Slack posts when a user submits a modal.

    ``values`` is ``view.state.values`` in Slack's shape:
    ``{block_id: {action_id: {"type": ..., "value" | "selected_option" | ...}}}``.
    """
    payload = _envelope("view_submission", user_id=user_id, user_name=user_name,
                        team_id=team_id, trigger_id=trigger_id)
    submitted = {
        "id": view.get("id") or "V0LOCAL",
        "team_id": team_id,
        "type": view.get("type", "modal"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": values},
        "hash": view.get("hash") or secrets.token_hex(8),
        "title": view.get("title"),
        "clear_on_close": view.get("clear_on_close", False),
        "notify_on_close": view.get("notify_on_close", False),
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": view.get("previous_view_id"),
        "root_view_id": view.get("root_view_id") or view.get("id"),
        "app_id": API_APP_ID,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": view.get("bot_id", "B0LOCAL"),
    }
    payload["view"] = submitted
    payload["response_urls"] = []
    return _form_payload(payload)
