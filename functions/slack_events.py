"""Slack → API Gateway (HTTP API, payload 2.0) → this function → the Bolt app.

Slack wants an answer within 3 s. The app acks at once; its lazy listeners run in a second,
asynchronous invocation of this same function (Bolt's ``LambdaLazyListenerRunner`` re-invokes
``context.invoked_function_arn`` with the header ``x-slack-bolt-lazy-only``), which is why
this function's role may ``lambda:InvokeFunction`` on itself and nothing else.
https://tools.slack.dev/bolt-python/concepts/lazy-listeners

Importing this module loads Powertools and nothing heavy. Lambda's init phase imports what
the ack needs (end of the module); the first request reads the Slack secrets and builds the
Bolt app — a few milliseconds — and acks. The bot's dependencies (settings, DynamoDB,
SageMaker, the catalog) are built only by a lazy listener, in the re-invocation: no ack
needs them, and a cold ack can't afford pydantic and the domain (see ``benchmarks/``).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from bot.slack.deadline import set_deadline
from bot.slack.request_guard import (
    BAD_REQUEST_BODY,
    UNAUTHORIZED_BODY,
    bad_timestamp,
    malformed_body,
)
from functions import lazy, runtime
from functions.observability import logger, metrics

__all__ = ["handler"]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP,
                              clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """An API Gateway event (or Bolt's lazy re-invocation of it) → Bolt's HTTP response."""
    headers = event.get("headers") or {}
    if bad_timestamp(headers):
        return {"statusCode": 401, "body": UNAUTHORIZED_BODY,
                "headers": {"content-type": "application/json"}}
    if _malformed(event, headers):
        return {"statusCode": 400, "body": BAD_REQUEST_BODY,
                "headers": {"content-type": "application/json"}}
    lazy_run = lazy.is_marked(event)
    if lazy_run:
        _restamp(event)
    # Slack's retries must end before this invocation does (bot.slack.deadline).
    set_deadline(context.get_remaining_time_in_millis() / 1000.0)
    try:
        response = runtime.slack_handler().handle(event, context)
    finally:
        set_deadline(None)
    if lazy_run and not 200 <= int(response.get("statusCode") or 500) < 300:
        # Nobody reads an async invocation's answer: fail it, so Lambda retries and then
        # sends it to the failure queue, where the reconcile tells its user.
        logger.error("lazy re-invocation refused", extra={"status": response.get("statusCode")})
        raise lazy.LazyRunRefused(int(response.get("statusCode") or 500))
    return response


def _restamp(event: dict[str, Any]) -> None:
    """This function's own lazy re-invocation (functions.lazy): held to the original
    signature over the body, not to Slack's 5-minute window, which Lambda's async delivery
    may outlast. Bolt then verifies the re-signed request as usual."""
    secret = runtime.slack_settings().signing_secret
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    if secret is None or not lazy.restamp(event, body, secret.get_secret_value()):
        logger.warning("lazy re-invocation with a mark or signature that does not hold")


def _malformed(event: dict[str, Any], headers: dict[str, Any]) -> bool:
    """A body Bolt can't parse (it would raise, and API Gateway answer 500)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return True
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    return malformed_body(body, content_type) is not None


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    runtime.preload(*runtime.ACK_MODULES)
