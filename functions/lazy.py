"""Bolt's lazy re-invocation, held to the signature but not to Slack's 5-minute window.

Bolt's ``LambdaLazyListenerRunner`` re-invokes this function asynchronously with the
original API Gateway event, and the re-invocation goes through Bolt's request verification
again — against the original ``X-Slack-Request-Timestamp``. Lambda may deliver an async
event minutes late (its internal queue, throttling, up to two retries with back-off), and a
late one would answer 401: the user saw the hourglass, and the work never ran.

:class:`MarkedLazyListenerRunner` adds a top-level key, :data:`MARK`, to the event it
invokes with. API Gateway builds every event it hands to Lambda and puts the request only
in ``headers``/``body``/``queryStringParameters``/…: no HTTP request can produce a
top-level key, so only an IAM-authorised ``Invoke`` of this function (the function's own
role) can. The mark carries an HMAC with the signing secret over the original timestamp
and signature, so even a principal that may invoke the function cannot forge one without
the secret. For a marked event only, :func:`restamp` checks the original signature over
the body (ignoring its age) and, when it holds, re-signs the request for the current time
with the secret the function already holds; Bolt's own verification then passes. An
unmarked event — everything from API Gateway — is verified by Bolt exactly as before.

How late a lazy run may still start is Lambda's ``maximumEventAge`` (``serverless.yml``);
what never runs lands in the failure queue and its user is told (:mod:`functions.lost_commands`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, MutableMapping
from logging import Logger
from typing import Any

from slack_bolt.adapter.aws_lambda.lazy_listener_runner import LambdaLazyListenerRunner

__all__ = ["MARK", "LazyRunRefused", "MarkedLazyListenerRunner", "is_marked", "mark",
           "restamp"]

MARK = "trainbotLazyInvocation"
_TIMESTAMP = "x-slack-request-timestamp"
_SIGNATURE = "x-slack-signature"


class LazyRunRefused(RuntimeError):
    """A lazy re-invocation whose work did not run (Bolt answered ``status``).

    Raised so that Lambda counts the async invocation as failed: it retries, then sends the
    event to the on-failure destination, where the reconcile finds it and tells the user."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the lazy re-invocation was answered {status}; its work did not run")
        self.status = status


def _header(headers: MutableMapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            raw = value[0] if isinstance(value, list | tuple) and value else value
            return raw if isinstance(raw, str) else None
    return None


def _set_header(headers: MutableMapping[str, Any], name: str, value: str) -> None:
    for key in [k for k in headers if k.lower() == name]:
        del headers[key]
    headers[name] = value


def _mac(secret: str, timestamp: str, signature: str) -> str:
    message = f"trainbot-lazy:v1:{timestamp}:{signature}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def mark(event: MutableMapping[str, Any], secret: str) -> None:
    """Mark ``event`` (an API Gateway event Bolt verified) as this function's own lazy run."""
    headers = event.get("headers") or {}
    timestamp = _header(headers, _TIMESTAMP) or ""
    signature = _header(headers, _SIGNATURE) or ""
    event[MARK] = {"v": 1, "at": int(time.time()), "mac": _mac(secret, timestamp, signature)}


def is_marked(event: MutableMapping[str, Any]) -> bool:
    return isinstance(event.get(MARK), dict)


def _signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def restamp(event: MutableMapping[str, Any], body: str, secret: str,
            now: float | None = None) -> bool:
    """Re-sign a marked lazy event for ``now``; False (event untouched) unless both the mark
    and the original signature over ``body`` (the decoded body Bolt will verify) hold."""
    token = event.get(MARK)
    headers = event.get("headers")
    if not isinstance(token, dict) or not isinstance(headers, MutableMapping):
        return False
    timestamp = _header(headers, _TIMESTAMP)
    signature = _header(headers, _SIGNATURE)
    if not timestamp or not signature or not isinstance(token.get("mac"), str):
        return False
    if not hmac.compare_digest(token["mac"], _mac(secret, timestamp, signature)):
        return False
    if not hmac.compare_digest(signature, _signature(secret, timestamp, body)):
        return False
    fresh = str(int(time.time() if now is None else now))
    _set_header(headers, _TIMESTAMP, fresh)
    _set_header(headers, _SIGNATURE, _signature(secret, fresh, body))
    return True


class MarkedLazyListenerRunner(LambdaLazyListenerRunner):
    """Bolt's Lambda runner, marking each re-invocation (see the module's docstring)."""

    def __init__(self, logger: Logger, *, lambda_client: Any,
                 signing_secret: Callable[[], str]) -> None:
        super().__init__(logger, lambda_client=lambda_client)
        self._signing_secret = signing_secret

    def start(self, function: Callable[..., None], request: Any) -> None:
        mark(request.context["lambda_request"], self._signing_secret())
        super().start(function, request)
