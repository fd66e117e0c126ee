"""What the benchmarks share: a loopback-only AWS environment, signed Slack events, a fake
Lambda context and lazy-invoke client, request counters, statistics and the result line.

Every benchmark prints its figures for people and, for ``run_all.py``, one or more lines

    RESULT {"benchmark": "...", "figure": "...", "target": "...", "result": "PASS"}

(``result`` is PASS, FAIL, INFO or SKIP). Benchmarks measure; they never assert.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from functions.local_invoke import LocalContext
from functions.local_invoke import api_gateway_event as _api_gateway_event

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ACCOUNT = "123456789012"
SECRET = "bench-signing-secret-4d2a91"
TOKEN = "xoxb-bench-bot-token-77c1e0"
USER = "U0LOCAL1"
RESULT_PREFIX = "RESULT "

__all__ = [
    "ACCOUNT",
    "REGION",
    "ROOT",
    "SECRET",
    "TOKEN",
    "USER",
    "AwsCallCounter",
    "FakeContext",
    "RecordingLambda",
    "api_gateway_event",
    "fake_aws_env",
    "fmt_ms",
    "median",
    "percentile",
    "result",
]


def fake_aws_env() -> None:
    """Fake credentials and a region, no metadata probing, no proxy for loopback.

    Called first thing by every benchmark (before boto3 is imported), so that nothing can
    reach a real AWS account or the EC2 metadata address.
    """
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        POWERTOOLS_SERVICE_NAME="trainbot",
        POWERTOOLS_METRICS_NAMESPACE="Trainbot",
        POWERTOOLS_TRACE_DISABLED="true",
    )


# -- statistics ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 samples is the 990th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def result(benchmark: str, figure: str, target: str, verdict: str) -> None:
    """The machine-readable line run_all.py collects (after the human summary)."""
    line = json.dumps({"benchmark": benchmark, "figure": figure, "target": target,
                       "result": verdict}, ensure_ascii=False)
    print(RESULT_PREFIX + line, flush=True)


def verdict(ok: bool | None) -> str:
    return "INFO" if ok is None else ("PASS" if ok else "FAIL")


# -- Lambda and API Gateway stand-ins --------------------------------------------------------


def FakeContext(function_name: str) -> LocalContext:
    return LocalContext(function_name, region=REGION)


class RecordingLambda:
    """Lambda's ``Invoke`` for Bolt's lazy listeners: counts calls, runs none of them."""

    def __init__(self, keep: bool = False) -> None:
        self.count = 0
        self.keep = keep
        self.calls: list[dict[str, Any]] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: str) -> dict:
        self.count += 1
        if self.keep:
            self.calls.append({"FunctionName": FunctionName, "InvocationType": InvocationType,
                               "Payload": Payload})
        return {"StatusCode": 202}


def api_gateway_event(body: str, *, secret: str = SECRET, base64_body: bool = False
                      ) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for Slack's POST to /slack/events."""
    return _api_gateway_event(body, secret=secret, base64_body=base64_body)


def command_body(text: str, *, response_url: str = "http://127.0.0.1:9/response",
                 channel: str = "C0LOCAL") -> str:
    """A ``/train TEXT`` slash-command body with a fresh trigger id."""
    from bot.localslack.signing import new_trigger_id, slash_command_body

    return slash_command_body(text, user_id=USER, user_name="you", channel_id=channel,
                              response_url=response_url, trigger_id=new_trigger_id())


# -- counting AWS requests -------------------------------------------------------------------


class AwsCallCounter:
    """Counts botocore API calls (``before-call``) per operation, on every client it watches.

    ``install_default()`` hooks boto3's default session so that every client created after
    it (the bot's, Powertools') is counted; ``watch(client)`` hooks one existing client.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def _hook(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "?")
        service = getattr(getattr(model, "service_model", None), "service_name", "?")
        self.calls[f"{service}.{name}"] += 1

    def install_default(self) -> AwsCallCounter:
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call", self._hook)
        return self

    def watch(self, client: Any) -> AwsCallCounter:
        client.meta.events.register("before-call", self._hook)
        return self

    def total(self) -> int:
        return sum(self.calls.values())

    def snapshot(self) -> Counter[str]:
        return Counter(self.calls)

    def reset(self) -> None:
        self.calls.clear()


def describe_counts(counts: Counter[str], per: int = 1) -> str:
    if not counts:
        return "none"
    parts = []
    for name, n in sorted(counts.items()):
        value = n / per
        parts.append(f"{name.split('.', 1)[1]}×{value:g}")
    return ", ".join(parts)


def print_table(rows: Iterable[Sequence[str]], headers: Sequence[str]) -> None:
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


@contextlib.contextmanager
def capture_stdout(buffer: io.StringIO) -> Iterator[io.StringIO]:
    """Send stdout — and every logging handler already writing to it (Powertools' JSON
    logger keeps its own reference) — into ``buffer``, as CloudWatch would receive it."""
    real = sys.stdout
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    swapped = [h for lg in loggers for h in lg.handlers
               if isinstance(h, logging.StreamHandler) and h.stream in (real, sys.__stdout__)]
    previous = [h.setStream(buffer) for h in swapped]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        for handler, stream in zip(swapped, previous, strict=True):
            handler.setStream(stream or real)


BENCH_TABLE = "trainbot-bench"
BENCH_IDEMPOTENCY_TABLE = "trainbot-bench-idempotency"
SIGNING_PARAM = "/trainbot/bench/slack-signing-secret"
TOKEN_PARAM = "/trainbot/bench/slack-bot-token"


@contextlib.contextmanager
def lambda_backends(prefix: str, *, idempotency: bool = False) -> Iterator[Any]:
    """What the Lambda functions need, on loopback: moto's server (DynamoDB tables, the Slack
    secrets in SSM), the Slack stand-in, and the functions' environment. Yields the stand-in.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    from bot.adapters.dynamodb_schema import ensure_tables
    from bot.localslack.server import LocalSlack

    warnings.filterwarnings("ignore", "No application metrics to publish")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    slack = LocalSlack(bot_token=TOKEN).start()
    try:
        os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        ensure_tables(boto3.client("dynamodb"), BENCH_TABLE,
                      BENCH_IDEMPOTENCY_TABLE if idempotency else None)
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name=SIGNING_PARAM, Value=SECRET, Type="SecureString")
        ssm.put_parameter(Name=TOKEN_PARAM, Value=TOKEN, Type="SecureString")
        os.environ.update({
            "TRAINBOT_STORE": "dynamodb", "TRAINBOT_TABLE": BENCH_TABLE,
            "TRAINBOT_COMPUTE": "sagemaker",
            "TRAINBOT_SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/trainbot-bench",
            "TRAINBOT_BUCKET": "trainbot-bench-artifacts",
            "TRAINBOT_HOME": tempfile.mkdtemp(prefix=f"bench-{prefix}-"),
            "TRAINBOT_SCOPE": "T0LOCAL",
            "SLACK_SIGNING_SECRET_PARAM": SIGNING_PARAM, "SLACK_BOT_TOKEN_PARAM": TOKEN_PARAM,
            "SLACK_API_URL": slack.api_url,
        })
        if idempotency:
            os.environ["TRAINBOT_IDEMPOTENCY_TABLE"] = BENCH_IDEMPOTENCY_TABLE
        yield slack
    finally:
        slack.stop()
        server.stop()
