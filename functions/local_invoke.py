"""Invoke the functions off Lambda: the context object and the API Gateway event they get.

Used by the end-to-end tests and the benchmarks (and handy in a REPL): a signed Slack
request wrapped exactly as API Gateway's HTTP API (payload format 2.0) hands it to Lambda.
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.localslack.signing import sign

__all__ = ["LocalContext", "api_gateway_event"]

ACCOUNT = "123456789012"


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that Bolt and Powertools read."""

    function_name: str
    region: str = "us-east-1"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def api_gateway_event(body: str, *, secret: str, timestamp: int | None = None,
                      base64_body: bool = False) -> dict[str, Any]:
    """Slack's signed POST to ``/slack/events`` as an HTTP API (payload 2.0) event."""
    headers = {k.lower(): v for k, v in sign(secret, body, timestamp).items()}
    headers |= {"host": "abc123.execute-api.us-east-1.amazonaws.com",
                "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                "content-length": str(len(body.encode()))}
    return {
        "version": "2.0",
        "routeKey": "POST /slack/events",
        "rawPath": "/slack/events",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "abc123",
            "domainName": headers["host"], "domainPrefix": "abc123",
            "http": {"method": "POST", "path": "/slack/events", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": headers["user-agent"]},
            "requestId": str(uuid.uuid4()), "routeKey": "POST /slack/events",
            "stage": "$default", "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body.encode()).decode() if base64_body else body,
        "isBase64Encoded": base64_body,
    }
