"""What Bolt's own request handling leaves out, checked in front of it
(:mod:`bot.slack.http_server` uses all three checks; ``functions.slack_events`` the first).

- **Timestamps.** Bolt calls ``int()`` on ``X-Slack-Request-Timestamp`` before comparing
  signatures, so a value that isn't ASCII digits (``²``, or 5,000 digits: over Python's
  limit for ``int()``) makes it answer 500. Such a request is forged or broken either way:
  :func:`bad_timestamp` lets the front door answer 401, as for any failed verification.
- **Bodies.** Bolt parses the body while building its request, before it verifies the
  signature, and crashes on a ``payload`` that isn't a JSON object; fields of the wrong type
  (``"actions": "x"``) crash its listener matching (500). :func:`malformed_body` finds both,
  so the front door answers 400. It needs no secret and tells the sender nothing it didn't
  send, so it runs before the signature check: malformed is 400, signed or not.
- **Logs.** Bolt logs the whole body of every request that fails the signature check, at
  INFO: one unsigned megabyte would be a megabyte of log, and newlines in it forged log
  lines. :func:`withhold_bodies` installs :class:`WithholdBodies` on Bolt's loggers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "BAD_REQUEST_BODY",
    "UNAUTHORIZED_BODY",
    "WithholdBodies",
    "bad_timestamp",
    "malformed_body",
    "withhold_bodies",
]

UNAUTHORIZED_BODY = '{"error": "invalid request"}'
BAD_REQUEST_BODY = '{"error": "malformed request"}'

# ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() rejects or reads.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def bad_timestamp(headers: Mapping[str, object]) -> bool:
    """True when a timestamp header is present but not a plain integer."""
    for key, value in headers.items():
        if key.lower() == "x-slack-request-timestamp":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            return not (isinstance(raw, str) and _TIMESTAMP.fullmatch(raw))
    return False


# The parts of Slack's payloads that Bolt (its context extraction and listener matchers) and
# our listeners read without checking their type. ``str``: a string; a dict: an object whose
# fields, when present, have these shapes (``"*"``: every field, ``"!"``: the fields that
# must be there); a one-item list: a list of that shape. JSON null is accepted for a named
# field except where Bolt indexes into it; Bolt takes the first of the ``actions`` unchecked.
_ID = {"id": str}
_STATE = {"values": {"*": {"*": {"type": str, "value": str, "selected_option": {"value": str}}}}}
_PAYLOAD: dict[str, Any] = {
    **dict.fromkeys(("type", "command", "text", "callback_id", "action_id", "block_id",
                     "value", "trigger_id", "response_url", "user_id", "channel_id",
                     "team_id", "enterprise_id", "api_app_id", "thread_ts"), str),
    "team": _ID, "user": {"id": str, "team_id": str}, "channel": _ID, "enterprise": _ID,
    "actions": [{"!": ("action_id",), "action_id": str, "block_id": str, "type": str,
                 "value": str}],
    # Bolt indexes view["type"] (is_workflow_step_save): a view without one is malformed.
    "view": {"!": ("type",), "id": str, "type": str, "callback_id": str, "private_metadata": str,
             "team_id": str, "app_installed_team_id": str, "state": _STATE},
    "state": _STATE,
    "container": {"type": str, "channel_id": str, "message_ts": str, "view_id": str},
    "message": {"ts": str, "thread_ts": str},
    "event": {"type": str},
    "authorizations": [{"team_id": str, "enterprise_id": str, "user_id": str}],
    "response_urls": [{"response_url": str}],
}
_NOT_NULL = frozenset({"actions", "view", "event", "state", "authorizations", "response_urls"})
_NOT_EMPTY = frozenset({"actions"})


def malformed_body(body: str, content_type: str | None) -> str | None:
    """Why Bolt can't take ``body`` as a Slack request (None when it can).

    Mirrors Bolt's own parsing (``slack_bolt.request.internals.parse_body``): JSON when the
    content type says so or the body starts with ``{``; else a form, whose ``payload`` field,
    when there is one, holds JSON. ``content_type`` is the header's value.
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if not body:
        return None
    if mime == "application/json" or body.startswith("{"):
        return _json_object_problem(body, "the body")
    if "payload" in body:
        payload = dict(parse_qsl(body, keep_blank_values=True)).get("payload")
        if payload is not None:
            return _json_object_problem(payload, "payload")
    return None  # form fields: strings by construction


def _json_object_problem(text: str, what: str) -> str | None:
    try:
        document = json.loads(text)
    except ValueError:
        return f"{what} is not JSON"
    return _shape_problem(document, _PAYLOAD, what)


def _shape_problem(value: Any, shape: Any, where: str) -> str | None:
    if shape is str:
        return None if isinstance(value, str) else f"{where} is not a string"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is not a list"
        if not value and where.rpartition(".")[2] in _NOT_EMPTY:
            return f"{where} is empty"
        problems = (_shape_problem(item, shape[0], f"{where}[{i}]")
                    for i, item in enumerate(value))
        return next((p for p in problems if p), None)
    if not isinstance(value, dict):
        return f"{where} is not an object"
    missing = [key for key in shape.get("!", ()) if key not in value]
    if missing:
        return f"{where} has no {missing[0]}"
    for key, item in value.items():
        sub = shape.get("*", shape.get(key))
        if sub is None or (item is None and key not in _NOT_NULL and "*" not in shape):
            continue
        problem = _shape_problem(item, sub, f"{where}.{key}")
        if problem:
            return problem
    return None


# Bolt's signature failure: "Invalid request signature detected (signature: …,
# timestamp: …, body: …)" (slack_bolt.middleware.request_verification).
_SIGNATURE_FAILURE = "Invalid request signature detected"
_TIMESTAMP_IN_MESSAGE = re.compile(r"timestamp: ([^,]{0,20})")
MAX_MESSAGE = 500


class WithholdBodies(logging.Filter):
    """Rewrites Bolt's records at INFO and above so that no request body reaches the log:
    a failed signature keeps only its timestamp; any other message is cut to 500 characters
    (Bolt's "Unhandled request" summary fits). DEBUG records are left alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        message = record.getMessage()
        if message.startswith(_SIGNATURE_FAILURE):
            found = _TIMESTAMP_IN_MESSAGE.search(message)
            record.msg = _SIGNATURE_FAILURE + " (timestamp %r; request body withheld)"
            record.args = (found.group(1) if found else None,)
        elif len(message) > MAX_MESSAGE:
            record.msg = "%s… (%d more characters withheld)"
            record.args = (message[:MAX_MESSAGE], len(message) - MAX_MESSAGE)
        return True


def withhold_bodies(app: Any) -> None:
    """Install :class:`WithholdBodies` on the Bolt ``app``'s logger and on the logger of
    Bolt's signature check (a logger's filters don't apply to its children). Idempotent."""
    for logger in (app.logger, logging.getLogger("slack_bolt.RequestVerification")):
        if not any(isinstance(f, WithholdBodies) for f in logger.filters):
            logger.addFilter(WithholdBodies())
