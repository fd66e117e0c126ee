"""Commands whose work never ran: read from the Slack function's failure queue, told to their
users.

The Slack function's async invocations (Bolt's lazy re-invocations, :mod:`functions.lazy`)
have an on-failure destination, an SQS queue (``serverless.yml``). Lambda sends there, as an
invocation record, every re-invocation that failed all its attempts (``RetriesExhausted``)
or waited longer than ``maximumEventAge`` (``EventAgeExceeded``, e.g. under throttling);
the record's ``requestPayload`` is the original API Gateway event, Slack's signed request
in its ``body``. https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html

:func:`drain` (run by the scheduled reconcile) reads each record, finds who asked for what
(slash command, button, modal), tells that user — an ephemeral message in the channel,
else a DM — and deletes the message once told. A message it can't tell about yet (Slack
failing) stays for the next pass; after :data:`MAX_RECEIVES` passes, or when the record
holds no Slack request at all, it is logged and deleted, so the queue never clogs.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["MAX_RECEIVES", "QUEUE_VARIABLE", "DrainSummary", "LostCommand", "drain", "parse",
           "queue_url", "tell"]

# The queue's URL, set on the reconcile function only (serverless.yml).
QUEUE_VARIABLE = "LOST_COMMANDS_QUEUE_URL"
MAX_RECEIVES = 5
_BATCH = 10
_MAX_TEXT = 200

_REASONS = {
    "EventAgeExceeded": "trainbot was too busy to start it in time",
    "RetriesExhausted": "trainbot failed while starting it",
}


def queue_url() -> str | None:
    return os.environ.get(QUEUE_VARIABLE, "").strip() or None


@dataclass(frozen=True)
class LostCommand:
    """Who asked for what, and when, as far as the original Slack request says."""

    user: str
    channel: str | None
    what: str  # mrkdwn, e.g. "`/train start …`"
    at: int | None  # the request's epoch seconds
    reason: str
    response_url: str | None = None

    def message(self) -> str:
        when = ""
        if self.at:
            fallback = time.strftime("%H:%M UTC", time.gmtime(self.at))
            when = f" from <!date^{self.at}^{{time}}|{fallback}>"
        return f"Your {self.what}{when} couldn't be run ({self.reason}); run it again."


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            raw = value[0] if isinstance(value, list) and value else value
            return raw if isinstance(raw, str) else None
    return None


def _code(text: str) -> str:
    """Slack-escaped text (inbound command text already is) shown as inline code."""
    text = " ".join(text.replace("`", "'").split())
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT - 1] + "…"
    return f"`{text}`"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse(record: dict[str, Any]) -> LostCommand | None:
    """The Slack request in a Lambda destination record (None when there is none)."""
    event = record.get("requestPayload")
    if not isinstance(event, dict):
        return None
    body = event.get("body")
    if not isinstance(body, str):
        return None
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    condition = (record.get("requestContext") or {}).get("condition")
    reason = _REASONS.get(str(condition), "trainbot failed while starting it")
    raw_ts = _header(event.get("headers"), "x-slack-request-timestamp")
    at = int(raw_ts) if raw_ts and raw_ts.isdigit() else None
    form = dict(parse_qsl(body, keep_blank_values=True))
    if "command" in form and form.get("user_id"):
        command = f"{form['command']} {form.get('text', '')}".strip()
        return LostCommand(user=form["user_id"], channel=form.get("channel_id") or None,
                           what=_code(command), at=at, reason=reason,
                           response_url=form.get("response_url") or None)
    try:
        payload = json.loads(form.get("payload", ""))
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    user = (payload.get("user") or {}).get("id") if isinstance(payload.get("user"), dict) \
        else None
    if not isinstance(user, str) or not user:
        return None
    channel = payload.get("channel")
    channel_id = channel.get("id") if isinstance(channel, dict) else None
    kind = payload.get("type")
    if kind == "block_actions":
        actions = payload.get("actions") or [{}]
        action = actions[0] if isinstance(actions[0], dict) else {}
        label = ((action.get("text") or {}).get("text") if isinstance(action.get("text"), dict)
                 else None) or action.get("action_id") or "button"
        what = f"click on “{_escape(str(label))}”"
    elif kind == "view_submission":
        view = payload.get("view")
        view = view if isinstance(view, dict) else {}
        title = (view.get("title") or {}).get("text") if isinstance(view.get("title"), dict) \
            else None
        what = f"“{_escape(title)}” form" if title else "form"
    elif kind in ("shortcut", "message_action"):
        what = f"shortcut `{_escape(str(payload.get('callback_id') or ''))}`"
    else:
        what = "request"
    response_urls = payload.get("response_urls") or []
    response_url = payload.get("response_url") or next(
        (u.get("response_url") for u in response_urls if isinstance(u, dict)), None)
    return LostCommand(user=user, channel=channel_id if isinstance(channel_id, str) else None,
                       what=what, at=at, reason=reason, response_url=response_url)


def tell(client: Any, lost: LostCommand) -> str:
    """Tell ``lost.user``: ephemeral in the channel, else a DM. Returns where ("ephemeral" or
    "dm"); raises ``SlackApiError`` when neither worked."""
    from slack_sdk.errors import SlackApiError

    text = lost.message()
    if lost.channel:
        try:
            client.chat_postEphemeral(channel=lost.channel, user=lost.user, text=text)
            return "ephemeral"
        except SlackApiError:
            pass  # not in the channel, archived, a DM the bot isn't in…: DM instead
    client.chat_postMessage(channel=lost.user, text=text)
    return "dm"


@dataclass
class DrainSummary:
    told: list[str] = field(default_factory=list)  # "U123 (ephemeral)"
    dropped: int = 0  # no Slack request in it, or given up after MAX_RECEIVES
    kept: int = 0  # left for the next pass

    def as_dict(self) -> dict[str, Any]:
        return {"told": self.told, "dropped": self.dropped, "kept": self.kept}


def drain(sqs: Any, url: str, client: Any, *, logger: Any,
          time_left: Callable[[], float] = lambda: float("inf"),
          max_messages: int = 100) -> DrainSummary:
    """Tell the user of every lost command in the queue at ``url``; delete what is done."""
    summary = DrainSummary()
    seen: set[str] = set()  # a message kept for later may come back within this pass
    while len(seen) < max_messages and time_left() > 10:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=_BATCH, WaitTimeSeconds=0,
                                    AttributeNames=["ApproximateReceiveCount"])
        messages = [m for m in reply.get("Messages") or [] if m.get("MessageId") not in seen]
        if not messages:
            break
        for message in messages:
            seen.add(message.get("MessageId") or message["ReceiptHandle"])
            if _handle(message, client, summary, logger):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return summary


def _handle(message: dict[str, Any], client: Any, summary: DrainSummary, logger: Any) -> bool:
    """Whether ``message`` is done with (to be deleted)."""
    try:
        record = json.loads(message.get("Body") or "")
    except ValueError:
        record = None
    lost = parse(record) if isinstance(record, dict) else None
    if lost is None:
        logger.error("lost-command record without a Slack request; dropped",
                     extra={"message_id": message.get("MessageId")})
        summary.dropped += 1
        return True
    try:
        where = tell(client, lost)
    except Exception:
        receives = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
        if receives >= MAX_RECEIVES:
            logger.exception("couldn't tell a user about a lost command; giving up",
                             extra={"slack_user": lost.user, "receives": receives})
            summary.dropped += 1
            return True
        logger.warning("couldn't tell a user about a lost command yet",
                       extra={"slack_user": lost.user, "receives": receives}, exc_info=True)
        summary.kept += 1
        return False
    logger.info("told a user about a lost command",
                extra={"slack_user": lost.user, "where": where,
                       "condition": ((record or {}).get("requestContext") or {})
                       .get("condition")})
    summary.told.append(f"{lost.user} ({where})")
    return True
