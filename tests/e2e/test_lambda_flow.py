"""The Lambda functions end to end: signed API Gateway events into ``functions.slack_events``,
EventBridge events into ``functions.job_events``, the schedule into ``functions.reconcile``.

AWS is a moto server on loopback reached through ``AWS_ENDPOINT_URL`` (the functions build
their clients from the same settings as the CLI); Slack is the local stand-in, its tokens
read from SSM as in the deployment. Bolt's lazy re-invocation goes to a fake Lambda client
that queues the payload, and the test delivers it after the ack — as Lambda's async
``Invoke`` would.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from bot.adapters.algorithm_catalog import CATALOG_KEY, PublishedAlgorithm, PublishedCatalog
from bot.adapters.dynamodb.store import DynamoStore
from bot.adapters.dynamodb_schema import ensure_tables
from bot.adapters.sagemaker.tuning import SageMakerTuner
from bot.aws import aws_client
from bot.catalog import load_algorithms
from bot.domain import ConfigError, JobVersion, NotFound, Status
from bot.domain.sweep import SweepStatus
from bot.localslack.server import LocalSlack
from bot.localslack.signing import block_actions_body, slash_command_body
from bot.localslack.workspace import DEFAULT_CHANNEL
from functions import job_events, lazy, local_invoke, reconcile, runtime, slack_events
from functions.local_extension import LocalSecretsExtension
from functions.local_invoke import LocalContext
from functions.lost_commands import QUEUE_VARIABLE
from functions.observability import logger
from functions.secrets import EXTENSION_PORT_VARIABLE

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"
SECRET = "e2e-signing-secret-5f1c2b"
TOKEN = "xoxb-e2e-bot-token-9a8b7c"
TABLE = "trainbot-e2e"
IDEMPOTENCY_TABLE = "trainbot-e2e-idempotency"
BUCKET = "trainbot-e2e-artifacts"
ROLE = "arn:aws:iam::123456789012:role/trainbot-e2e-sagemaker"
REGION = "us-east-1"
USER = "U0LOCAL1"
APPROVER = "U0LOCAL2"
SIGNING_PARAM = "/trainbot/e2e/slack-signing-secret"
TOKEN_PARAM = "/trainbot/e2e/slack-bot-token"


# -- Lambda stand-ins ----------------------------------------------------------------------

def FakeContext(function_name: str) -> LocalContext:
    return LocalContext(function_name, region=REGION)


class QueuedLambda:
    """Lambda's ``Invoke`` for Bolt's lazy listeners: records each call, runs none of them."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    # boto3's parameter names, as Bolt calls them.
    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: str) -> dict:
        self.calls.append({"FunctionName": FunctionName, "InvocationType": InvocationType,
                           "Payload": Payload})
        return {"StatusCode": 202}

    def deliver_all(self, context: FakeContext) -> list[dict[str, Any]]:
        """Run the queued invocations through the handler, as Lambda would after the ack."""
        results = []
        while self.calls:
            call = self.calls.pop(0)
            results.append(slack_events.handler(json.loads(call["Payload"]), context))
        return results


def api_gateway_event(body: str, *, secret: str = SECRET, timestamp: int | None = None,
                      base64_body: bool = False) -> dict[str, Any]:
    return local_invoke.api_gateway_event(body, secret=secret, timestamp=timestamp,
                                          base64_body=base64_body)


def state_change_event(backend_job_name: str, sample: str = "sagemaker_training_job_state_change"
                       ) -> dict[str, Any]:
    """A captured EventBridge event, retargeted at ``backend_job_name`` and stamped now."""
    raw = json.loads((EVENTS / f"{sample}.json").read_text())
    old = raw["detail"]["TrainingJobName"]
    event = json.loads(json.dumps(raw).replace(old, backend_job_name))
    now_ms = int(time.time() * 1000)
    event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms / 1000))
    event["detail"]["LastModifiedTime"] = now_ms
    if "TrainingEndTime" in event["detail"]:
        event["detail"]["TrainingEndTime"] = now_ms - 2000
    return event


# -- the stack -----------------------------------------------------------------------------

@dataclass
class Stack:
    slack: LocalSlack
    lazy: QueuedLambda
    endpoint: str

    def command_body(self, text: str) -> str:
        inter = self.slack.new_interaction(DEFAULT_CHANNEL, USER)
        return slash_command_body(text, user_id=USER, user_name="you",
                                  channel_id=DEFAULT_CHANNEL,
                                  response_url=inter["response_url"],
                                  trigger_id=inter["trigger_id"])

    def press_body(self, action_id: str, value: str, *, user: str, message_ts: str) -> str:
        inter = self.slack.new_interaction(DEFAULT_CHANNEL, user, message_ts)
        return block_actions_body(action_id, value, user_id=user, channel_id=DEFAULT_CHANNEL,
                                  message_ts=message_ts, response_url=inter["response_url"],
                                  trigger_id=inter["trigger_id"])

    def store(self) -> DynamoStore:
        return DynamoStore(TABLE, client=aws_client("dynamodb"))

    def version(self, job: str, number: int = 1) -> JobVersion:
        return self.store().get_version(job, number)

    def start(self, text: str) -> dict[str, Any]:
        """``/train start …`` acked, then its lazy half delivered; returns the ack."""
        ack = slack_events.handler(api_gateway_event(self.command_body(text)),
                                   FakeContext("trainbot-e2e-slackEvents"))
        self.lazy.deliver_all(FakeContext("trainbot-e2e-slackEvents"))
        return ack


def _publish_catalog() -> None:
    digest = "ab" * 32
    # Published at the version the manifest says, as `trainbot algorithms publish` does.
    version = load_algorithms(REPO / "algorithms")["image-classification"].version
    catalog = PublishedCatalog(region=REGION, bucket=BUCKET, algorithms={
        "image-classification": PublishedAlgorithm(
            version=version, digest=digest, entry_point="train.py",
            source_uri=f"s3://{BUCKET}/trainbot/algorithms/image-classification/{version}/"
                       f"{digest[:16]}/sourcedir.tar.gz",
            images={"cpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:"
                           "2.5-cpu-py311",
                    "gpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:"
                           "2.5-gpu-py311"}),
    })
    s3 = aws_client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=CATALOG_KEY, Body=catalog.to_json().encode())


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def stack(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
          ) -> Iterator[Stack]:
    # moto keeps its accounts in this process: start every test from an empty one.
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset",
                                                  method="POST"), timeout=10).close()
    slack = LocalSlack(bot_token=TOKEN).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        for name, value in {
            "TRAINBOT_STORE": "dynamodb", "TRAINBOT_TABLE": TABLE,
            "TRAINBOT_IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE, "TRAINBOT_COMPUTE": "sagemaker",
            "TRAINBOT_SAGEMAKER_ROLE_ARN": ROLE, "TRAINBOT_BUCKET": BUCKET,
            "TRAINBOT_HOME": str(tmp_path / "home"), "TRAINBOT_SCOPE": "T0LOCAL",
            "TRAINBOT_APPROVERS": APPROVER,
            "SLACK_SIGNING_SECRET_PARAM": SIGNING_PARAM, "SLACK_BOT_TOKEN_PARAM": TOKEN_PARAM,
            "SLACK_API_URL": slack.api_url,
        }.items():
            monkeypatch.setenv(name, value)
        ensure_tables(aws_client("dynamodb"), TABLE, IDEMPOTENCY_TABLE)
        ssm = aws_client("ssm")
        ssm.put_parameter(Name=SIGNING_PARAM, Value=SECRET, Type="SecureString")
        ssm.put_parameter(Name=TOKEN_PARAM, Value=TOKEN, Type="SecureString")
        _publish_catalog()
        runtime.reset()
        lazy = QueuedLambda()
        runtime.slack_handler().app.listener_runner.lazy_listener_runner.lambda_client = lazy
        yield Stack(slack=slack, lazy=lazy, endpoint=moto_endpoint)
    finally:
        runtime.reset()
        logger.clear_state()  # correlation keys of the last invocation
        slack.stop()


def _card_updates(slack: LocalSlack, ts: str) -> list[dict[str, Any]]:
    return [r.params for r in slack.requests_for("chat.update") if r.params.get("ts") == ts]


# -- the flows -------------------------------------------------------------------------------

def test_start_launches_on_sagemaker_and_its_event_updates_the_card_once(
        stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    body = stack.command_body("start image-classification epochs=2 --pool gpu-1 --name digits")
    context = FakeContext("trainbot-e2e-slackEvents")

    began = time.monotonic()
    ack = slack_events.handler(api_gateway_event(body), context)
    acked_in = time.monotonic() - began
    assert ack["statusCode"] == 200 and ":hourglass:" in ack["body"]
    assert acked_in < 3.0, f"the ack took {acked_in:.2f}s; Slack gives up after 3s"
    # The ack did no work: it only re-invoked this function, asynchronously.
    [call] = stack.lazy.calls
    assert call["InvocationType"] == "Event"
    assert call["FunctionName"] == context.invoked_function_arn
    assert json.loads(call["Payload"])["headers"]["x-slack-bolt-lazy-only"] == "1"
    assert aws_client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []

    stack.lazy.deliver_all(context)
    version = stack.version("digits")
    assert version.status is Status.QUEUED and version.backend == "sagemaker"
    name = version.backend_job_name
    assert name and name.startswith("trainbot-digits-v1-")
    job = aws_client("sagemaker").describe_training_job(TrainingJobName=name)
    assert job["RoleArn"] == ROLE
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert job["TensorBoardOutputConfig"]["S3OutputPath"].startswith(f"s3://{BUCKET}/trainbot/")
    [card] = [m for m in stack.slack.messages(DEFAULT_CHANNEL) if m["ts"] == version.message_ts]
    assert "digits v1" in json.dumps(card["blocks"])
    responses = [r.params for r in stack.slack.requests_for("_local.response")]
    assert any("digits v1 is launching" in json.dumps(p) for p in responses)

    event = state_change_event(name)
    result = job_events.handler(event, FakeContext("trainbot-e2e-jobEvents"))
    assert result["outcome"] == "applied" and result["status"] == "COMPLETED"
    done = stack.version("digits")
    assert done.status is Status.COMPLETED
    assert done.metrics["validation:accuracy"] == pytest.approx(0.9733)
    assert done.billable_seconds == 144
    [update] = [u for u in _card_updates(stack.slack, version.message_ts or "")
                if "COMPLETED" in json.dumps(u["blocks"])]
    assert f"#/tensor-board-landing/{name}" in json.dumps(update["blocks"])
    thread = [r.params for r in stack.slack.requests_for("chat.postMessage")
              if r.params.get("thread_ts") == version.message_ts]
    assert any("completed." in p["text"] and f"<@{USER}>" in p["text"] for p in thread)

    # SageMaker delivers again — with the same id, then under a new one: nothing changes.
    seen = len(stack.slack.requests)
    assert job_events.handler(event, FakeContext("trainbot-e2e-jobEvents")) == result
    resent = dict(event, id=str(uuid.uuid4()))
    assert job_events.handler(resent, FakeContext("trainbot-e2e-jobEvents")) == result
    assert len(stack.slack.requests) == seen
    assert stack.version("digits").revision == done.revision
    # Powertools recorded the change once: the repeats were answered from that record.
    [record] = aws_client("dynamodb").scan(TableName=IDEMPOTENCY_TABLE)["Items"]
    assert record["status"]["S"] == "COMPLETED" and "expiration" in record

    out = capsys.readouterr().out
    assert SECRET not in out and TOKEN not in out
    launched = [json.loads(line) for line in out.splitlines() if '"JobsLaunched"' in line]
    completed = [json.loads(line) for line in out.splitlines() if '"JobsCompleted"' in line]
    assert [m["pool"] for m in launched] == ["gpu-1"]
    assert [m["pool"] for m in completed] == ["gpu-1"]


def test_reconcile_applies_the_state_a_missed_event_would_have_brought(stack: Stack) -> None:
    stack.start("start image-classification --pool gpu-1 --name missed")
    version = stack.version("missed")
    assert version.status is Status.QUEUED
    # No event arrives; moto's DescribeTrainingJob already says Completed.
    summary = reconcile.handler({"source": "aws.events", "detail-type": "Scheduled Event"},
                                FakeContext("trainbot-e2e-reconcile"))
    assert summary["repaired"] == ["missed v1: QUEUED → COMPLETED"]
    assert stack.version("missed").status is Status.COMPLETED
    assert any("COMPLETED" in json.dumps(u["blocks"])
               for u in _card_updates(stack.slack, version.message_ts or ""))
    again = reconcile.handler({}, FakeContext("trainbot-e2e-reconcile"))
    assert again["checked"] == 0 and again["repaired"] == []


def test_job_events_and_reconcile_run_without_the_signing_secret(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Their roles can't read the signing secret (infra/iam.yml), and they need not: they
    verify no Slack request, they post with the bot token alone."""
    stack.start("start image-classification --pool gpu-1 --name nosecret")
    stack.start("start image-classification --pool gpu-1 --name nosecret2")
    first, second = stack.version("nosecret"), stack.version("nosecret2")
    runtime.reset()
    monkeypatch.delenv("SLACK_SIGNING_SECRET_PARAM")
    aws_client("ssm").delete_parameter(Name=SIGNING_PARAM)  # as unreadable as it gets

    result = job_events.handler(state_change_event(first.backend_job_name or ""),
                                FakeContext("trainbot-e2e-jobEvents"))
    summary = reconcile.handler({}, FakeContext("trainbot-e2e-reconcile"))

    assert result["outcome"] == "applied" and result["status"] == "COMPLETED"
    assert summary["repaired"] == ["nosecret2 v1: QUEUED → COMPLETED"]
    for version in (first, second):
        assert any("COMPLETED" in json.dumps(u["blocks"])
                   for u in _card_updates(stack.slack, version.message_ts or ""))


def test_an_approval_click_launches_and_its_latency_is_measured(
        stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.start("start image-classification --pool gpu-4 --name big")
    waiting = stack.version("big")
    assert waiting.status is Status.AWAITING_APPROVAL and waiting.approval_id
    approval = stack.store().get_approval(waiting.approval_id)
    assert approval.message_ts  # the approval card is in the channel

    context = FakeContext("trainbot-e2e-slackEvents")
    body = stack.press_body("approve_request", approval.id, user=APPROVER,
                            message_ts=approval.message_ts)
    assert slack_events.handler(api_gateway_event(body), context)["statusCode"] == 200
    stack.lazy.deliver_all(context)

    launched = stack.version("big")
    assert launched.approved_by == APPROVER and launched.backend_job_name
    job = aws_client("sagemaker").describe_training_job(TrainingJobName=launched.backend_job_name)
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.12xlarge"
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if '"ApprovalLatency"' in line]
    assert [(m["pool"], m["decision"]) for m in metrics] == [("gpu-4", "approved")]
    [definition] = metrics[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert definition == {"Name": "ApprovalLatency", "Unit": "Seconds"}


def test_event_for_a_job_trainbot_did_not_start_is_dropped(stack: Stack) -> None:
    result = job_events.handler(state_change_event("trainbot-someone-elses-v1-0000"),
                                FakeContext("trainbot-e2e-jobEvents"))
    assert result == {"outcome": "unknown job", "training_job": "trainbot-someone-elses-v1-0000"}
    assert stack.slack.requests_for("chat.update") == []


def test_event_of_another_shape_is_rejected_without_retry(stack: Stack) -> None:
    event = state_change_event("trainbot-x-v1-0000")
    event["detail-type"] = "SageMaker Endpoint State Change"
    assert job_events.handler(event, FakeContext("trainbot-e2e-jobEvents")) == {
        "outcome": "rejected"}


def test_bad_signature_is_refused_and_nothing_runs(stack: Stack) -> None:
    event = api_gateway_event(stack.command_body("start image-classification"),
                              secret="not-the-secret", base64_body=True)
    resp = slack_events.handler(event, FakeContext("trainbot-e2e-slackEvents"))
    assert resp["statusCode"] == 401
    assert stack.lazy.calls == []


def test_a_timestamp_that_is_not_a_number_is_401_not_500(stack: Stack) -> None:
    event = api_gateway_event(stack.command_body("start image-classification"))
    event["headers"]["x-slack-request-timestamp"] = "soon"
    resp = slack_events.handler(event, FakeContext("trainbot-e2e-slackEvents"))
    assert resp["statusCode"] == 401
    assert stack.lazy.calls == []


@pytest.mark.parametrize(("text", "invokes"), [
    ("help", 0), ("help start", 0), ("frobnicate now", 0), ("status", 1),
])
def test_only_commands_with_work_to_do_reinvoke_the_function(
        stack: Stack, text: str, invokes: int) -> None:
    """Help and malformed input are answered whole by the ack: no second Lambda call."""
    resp = slack_events.handler(api_gateway_event(stack.command_body(text)),
                                FakeContext("trainbot-e2e-slackEvents"))
    assert resp["statusCode"] == 200 and resp["body"]
    assert len(stack.lazy.calls) == invokes


def test_help_is_answered_in_the_ack_from_a_base64_body(stack: Stack) -> None:
    resp = slack_events.handler(api_gateway_event(stack.command_body("help"), base64_body=True),
                                FakeContext("trainbot-e2e-slackEvents"))
    assert resp["statusCode"] == 200
    assert "/train start" in json.dumps(json.loads(resp["body"])["blocks"])


# -- secrets -----------------------------------------------------------------------------------

def test_secrets_come_from_ssm_when_named(stack: Stack) -> None:
    settings = runtime.load_slack_settings()
    assert settings.signing_secret and settings.signing_secret.get_secret_value() == SECRET
    assert settings.bot_token and settings.bot_token.get_secret_value() == TOKEN
    assert SECRET not in repr(settings) and TOKEN not in str(settings)


def test_a_start_reads_its_secrets_through_the_extension_layer(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """As deployed (serverless.yml adds the layer): the container reads the two parameters
    once, from the extension — no SSM client — and the start works end to end."""
    with LocalSecretsExtension(token=os.environ["AWS_SESSION_TOKEN"]) as extension:
        monkeypatch.setenv(EXTENSION_PORT_VARIABLE, str(extension.port))
        runtime.reset()
        runtime.slack_handler().app.listener_runner.lazy_listener_runner.lambda_client = \
            stack.lazy
        ack = stack.start("start image-classification epochs=1 --pool cpu-small --name ext")
    assert ack["statusCode"] == 200
    assert stack.version("ext").status is Status.QUEUED
    assert extension.requests == ["/systemsmanager/parameters/get"] * 2
    assert extension.backend_calls == 2


def test_secrets_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET_PARAM", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN_PARAM", raising=False)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "from-env")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    settings = runtime.load_slack_settings()
    assert settings.signing_secret and settings.signing_secret.get_secret_value() == "from-env"
    assert settings.bot_token and settings.bot_token.get_secret_value() == "xoxb-from-env"


def test_a_missing_parameter_names_the_variable_not_a_value(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN_PARAM", "/trainbot/e2e/nope")
    with pytest.raises(ConfigError) as err:
        runtime.load_slack_settings()
    assert "SLACK_BOT_TOKEN_PARAM" in str(err.value) and "/trainbot/e2e/nope" in str(err.value)
    assert SECRET not in str(err.value)


def _spot_event(name: str, status: str, secondary: str, transitions: list[str],
                at_ms: int) -> dict[str, Any]:
    """The captured in-progress event, moved through a managed-spot interruption."""
    event = state_change_event(name, "sagemaker_training_job_state_change_in_progress")
    event["id"] = str(uuid.uuid4())
    event["detail"].update(TrainingJobStatus=status, SecondaryStatus=secondary,
                           LastModifiedTime=at_ms, SecondaryStatusTransitions=[
                               {"Status": s, "StartTime": at_ms - 1000 * (len(transitions) - i),
                                "StatusMessage": ""} for i, s in enumerate(transitions)])
    if status == "Completed":
        completed = state_change_event(name)["detail"]
        event["detail"].update({k: completed[k] for k in (
            "FinalMetricDataList", "ModelArtifacts", "BillableTimeInSeconds",
            "TrainingTimeInSeconds", "TrainingEndTime") if k in completed})
    return event


def test_a_spot_interruption_through_job_events_is_never_a_stop(stack: Stack) -> None:
    stack.start("start image-classification --pool gpu-1 --spot --name spotty")
    version = stack.version("spotty")
    name = version.backend_job_name or ""
    assert version.spec.spot
    steps = [("InProgress", "Starting"), ("InProgress", "Training"),
             ("InProgress", "Interrupted"), ("InProgress", "Starting"),
             ("InProgress", "Training"), ("Completed", "Completed")]
    seen: list[str] = []
    shown = []
    start_ms = int(time.time() * 1000)
    for i, (status, secondary) in enumerate(steps):
        seen.append(secondary)
        event = _spot_event(name, status, secondary, list(seen), start_ms + 1000 * i)
        job_events.handler(event, FakeContext("trainbot-e2e-jobEvents"))
        shown.append(stack.version("spotty"))
    assert [v.status for v in shown] == [
        Status.STARTING, Status.TRAINING, Status.TRAINING, Status.TRAINING, Status.TRAINING,
        Status.COMPLETED]
    assert shown[2].secondary_status == "Interrupted" and shown[2].spot_interruptions == 1
    cards = json.dumps(_card_updates(stack.slack, version.message_ts or ""))
    assert "STOPPING" not in cards and "spot interruption 1" in cards
    thread = json.dumps([r.params for r in stack.slack.requests_for("chat.postMessage")])
    assert "STOPPING" not in thread


# -- lost commands: a late lazy run still runs; one that never ran is reported ------------------

SLACK_WINDOW = 300


def _ack_in_the_past(stack: Stack, monkeypatch: pytest.MonkeyPatch, text: str,
                     seconds_ago: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``text`` signed and acked ``seconds_ago`` (Bolt's clock moved back for the ack only);
    returns the ack and the lazy re-invocation's payload, not yet delivered."""
    then = int(time.time()) - seconds_ago
    body = stack.command_body(text)
    with monkeypatch.context() as past:
        past.setattr("slack_sdk.signature.time", lambda: float(then))
        ack = slack_events.handler(api_gateway_event(body, timestamp=then),
                                   FakeContext("trainbot-e2e-slackEvents"))
    [call] = stack.lazy.calls
    stack.lazy.calls.clear()
    return ack, json.loads(call["Payload"])


def test_a_lazy_run_delivered_after_slacks_window_still_runs(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda's async delivery (throttling, retries) may outlast Slack's 5 minutes: the
    re-invocation is the function's own, so only its signature counts, not its age."""
    ack, payload = _ack_in_the_past(
        stack, monkeypatch, "start image-classification --pool gpu-1 --name late", 600)
    assert ack["statusCode"] == 200 and ":hourglass:" in ack["body"]
    assert lazy.MARK in payload  # a top-level key: no HTTP request can set one
    assert int(payload["headers"]["x-slack-request-timestamp"]) < time.time() - SLACK_WINDOW

    result = slack_events.handler(payload, FakeContext("trainbot-e2e-slackEvents"))
    assert result["statusCode"] == 200
    version = stack.version("late")
    assert version.status is Status.QUEUED and version.backend_job_name


def test_the_same_old_request_through_api_gateway_is_refused(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaying the late request over HTTP — with the lazy headers, even a header named like
    the mark — is held to Slack's window as before: 401, and nothing runs."""
    _, payload = _ack_in_the_past(
        stack, monkeypatch, "start image-classification --pool gpu-1 --name replay", 600)
    context = FakeContext("trainbot-e2e-slackEvents")
    replay = api_gateway_event(payload["body"], timestamp=int(
        payload["headers"]["x-slack-request-timestamp"]))
    replay["headers"] = {**payload["headers"], lazy.MARK.lower(): json.dumps(payload[lazy.MARK])}
    assert slack_events.handler(replay, context)["statusCode"] == 401
    plain = api_gateway_event(payload["body"], timestamp=int(
        payload["headers"]["x-slack-request-timestamp"]))
    assert slack_events.handler(plain, context)["statusCode"] == 401
    assert stack.lazy.calls == []
    with pytest.raises(NotFound):
        stack.version("replay")


@pytest.mark.parametrize("tamper", ["forged mark", "changed body"])
def test_a_marked_event_that_does_not_hold_is_refused_and_fails_the_invocation(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tamper: str) -> None:
    """Without the signing secret a direct invoker can't mark an event or change its body;
    the invocation fails, so Lambda retries and then queues it as lost."""
    _, payload = _ack_in_the_past(
        stack, monkeypatch, "start image-classification --pool gpu-1 --name forged", 600)
    if tamper == "forged mark":
        payload[lazy.MARK]["mac"] = "0" * 64
    else:
        payload["body"] = payload["body"].replace("forged", "forgee")
    with pytest.raises(lazy.LazyRunRefused) as refused:
        slack_events.handler(payload, FakeContext("trainbot-e2e-slackEvents"))
    assert refused.value.status == 401
    with pytest.raises(NotFound):
        stack.version("forged")


def _destination_record(payload: dict[str, Any], condition: str) -> dict[str, Any]:
    """What Lambda sends to an SQS on-failure destination for an async invocation."""
    return {
        "version": "1.0", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": str(uuid.uuid4()), "condition": condition,
            "functionArn": FakeContext("trainbot-e2e-slackEvents").invoked_function_arn
            + ":$LATEST",
            "approximateInvokeCount": 3 if condition == "RetriesExhausted" else 0},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "the lazy re-invocation was answered 401",
                            "errorType": "LazyRunRefused"},
    }


def test_commands_that_never_ran_are_reported_to_their_users_by_the_reconcile(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = aws_client("sqs")
    url = sqs.create_queue(QueueName="trainbot-e2e-lost-commands")["QueueUrl"]
    monkeypatch.setenv(QUEUE_VARIABLE, url)

    # A command whose lazy run waited past maximumEventAge (Lambda never ran it)…
    _, command = _ack_in_the_past(
        stack, monkeypatch, "start image-classification --pool gpu-1 --name lost", 900)
    # …a button click whose every attempt failed, by a user no longer in the channel…
    stack.start("start image-classification --pool gpu-4 --name big")
    approval = stack.store().get_approval(stack.version("big").approval_id or "")
    body = stack.press_body("approve_request", approval.id, user=APPROVER,
                            message_ts=approval.message_ts or "")
    slack_events.handler(api_gateway_event(body), FakeContext("trainbot-e2e-slackEvents"))
    [click] = [json.loads(c["Payload"]) for c in stack.lazy.calls]
    stack.lazy.calls.clear()
    stack.slack.leave(DEFAULT_CHANNEL, APPROVER)
    # …and a record with no Slack request in it.
    for record in (_destination_record(command, "EventAgeExceeded"),
                   _destination_record(click, "RetriesExhausted"),
                   {"requestPayload": {"source": "elsewhere"}}):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))

    summary = reconcile.handler({}, FakeContext("trainbot-e2e-reconcile"))
    assert summary["lost_commands"]["told"] == [f"{USER} (ephemeral)", f"{APPROVER} (dm)"]
    assert summary["lost_commands"]["dropped"] == 1

    [told] = [e for e in stack.slack.ephemerals(USER) if "couldn't be run" in e["text"]]
    assert told["text"].startswith(
        "Your `/train start image-classification --pool gpu-1 --name lost` from <!date^")
    assert "(trainbot was too busy to start it in time); run it again." in told["text"]
    hhmm = time.strftime("%H:%M UTC", time.gmtime(int(command["headers"][
        "x-slack-request-timestamp"])))
    assert f"|{hhmm}>" in told["text"]
    [dm] = [r.params for r in stack.slack.requests_for("chat.postMessage")
            if r.params.get("channel") == APPROVER]
    assert dm["text"].startswith("Your click on ")
    assert "(trainbot failed while starting it); run it again." in dm["text"]
    # Told once: the queue is empty, and the next pass says nothing more.
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    again = reconcile.handler({}, FakeContext("trainbot-e2e-reconcile"))
    assert again["lost_commands"] == {"told": [], "dropped": 0, "kept": 0}
    with pytest.raises(NotFound):
        stack.version("lost")


def test_a_lost_command_stays_queued_while_slack_cannot_be_told(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = aws_client("sqs")
    url = sqs.create_queue(QueueName="trainbot-e2e-lost-commands",
                           Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    monkeypatch.setenv(QUEUE_VARIABLE, url)
    _, command = _ack_in_the_past(stack, monkeypatch, "status", 900)
    sqs.send_message(QueueUrl=url,
                     MessageBody=json.dumps(_destination_record(command, "EventAgeExceeded")))
    stack.slack.fail_next("chat.postEphemeral", error="channel_not_found")
    stack.slack.fail_next("chat.postMessage", error="account_inactive")

    first = reconcile.handler({}, FakeContext("trainbot-e2e-reconcile"))
    assert first["lost_commands"] == {"told": [], "dropped": 0, "kept": 1}
    second = reconcile.handler({}, FakeContext("trainbot-e2e-reconcile"))
    assert second["lost_commands"]["told"] == [f"{USER} (ephemeral)"]
    [told] = [e for e in stack.slack.ephemerals(USER) if "couldn't be run" in e["text"]]
    assert told["text"].startswith("Your `/train status` from ")


# -- a sweep: one tuning job, its events ------------------------------------------------------

def _trial_event(tuning: str, n: int, status: str, params: dict[str, str],
                 value: float | None = None) -> dict[str, Any]:
    raw = json.loads((EVENTS / "sagemaker_training_job_state_change_tuning_trial.json")
                     .read_text())
    detail = raw["detail"]
    name = f"{tuning}-{n:03d}-{n:08x}"
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{tuning}"
    now_ms = int(time.time() * 1000)
    detail.update({
        "TrainingJobName": name, "TuningJobArn": arn, "TrainingJobStatus": status,
        "SecondaryStatus": "Completed" if status == "Completed" else "Training",
        "HyperParameters": {**params, "_tuning_objective_metric": "validation:accuracy",
                            "sagemaker_program": '"train.py"'},
        "LastModifiedTime": now_ms,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"})
    detail.pop("TrainingEndTime", None) if status != "Completed" else None
    if value is not None:
        detail["FinalMetricDataList"] = [{"MetricName": "validation:accuracy", "Value": value,
                                          "Timestamp": now_ms}]
    else:
        detail.pop("FinalMetricDataList", None)
    raw["resources"] = [detail["TrainingJobArn"]]
    return raw


def _tuning_event(tuning: str, status: str) -> dict[str, Any]:
    raw = json.loads((EVENTS / "sagemaker_hyperparameter_tuning_job_state_change.json")
                     .read_text())
    old = raw["detail"]["HyperParameterTuningJobName"]
    event = json.loads(json.dumps(raw).replace(old, tuning))
    event["detail"]["HyperParameterTuningJobStatus"] = status
    event["detail"]["LastModifiedTime"] = int(time.time() * 1000)
    return event


def test_a_sweep_is_one_tuning_job_and_its_events_record_and_end_it(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    context = FakeContext("trainbot-e2e-slackEvents")
    body = stack.command_body("sweep image-classification lr=0.001..0.01:log epochs=2..4 "
                              "--trials 3 --parallel 1 --pool gpu-1 --name sw")
    ack = slack_events.handler(api_gateway_event(body), context)
    assert ack["statusCode"] == 200
    stack.lazy.deliver_all(context)
    sweep = stack.store().get_sweep("sw")
    assert sweep.status is SweepStatus.RUNNING and sweep.backend == "sagemaker"
    tuning = sweep.backend_name
    assert tuning and tuning.startswith("trainbot-sw-")
    found = aws_client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning)
    config = found["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 3,
                                        "MaxParallelTrainingJobs": 1}
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize", "MetricName": "validation:accuracy"}
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.01", "ScalingType": "Logarithmic"}]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "epochs", "MinValue": "2", "MaxValue": "4", "ScalingType": "Linear"}]
    [card] = [m for m in stack.slack.messages(DEFAULT_CHANNEL) if m["ts"] == sweep.message_ts]
    assert "sw" in json.dumps(card["blocks"])

    jobs_context = FakeContext("trainbot-e2e-jobEvents")
    trials = [({"lr": "0.002", "epochs": "3"}, 0.91), ({"lr": "0.008", "epochs": "2"}, 0.95),
              ({"lr": "0.004", "epochs": "4"}, 0.93)]
    for n, (params, value) in enumerate(trials, start=1):
        job_events.handler(_trial_event(tuning, n, "InProgress", params), jobs_context)
        done = job_events.handler(_trial_event(tuning, n, "Completed", params, value),
                                  jobs_context)
        assert done["outcome"] == "applied", done
        again = job_events.handler(_trial_event(tuning, n, "Completed", params, value),
                                   jobs_context)  # a duplicate changes nothing
        assert again["outcome"] == "applied"
    # What ListTrainingJobsForHyperParameterTuningJob would say (moto hasn't that call):
    names = [f"{tuning}-{n:03d}-{n:08x}" for n in (1, 2, 3)]
    monkeypatch.setattr(SageMakerTuner, "trial_names", lambda self, sweep: names)
    ended = job_events.handler(_tuning_event(tuning, "Completed"), jobs_context)
    assert ended["outcome"] == "applied" and ended["status"] == "COMPLETED", ended
    job_events.handler(_tuning_event(tuning, "Completed"), jobs_context)  # a duplicate

    versions = stack.store().list_versions("sw")
    assert sorted(v.trial for v in versions) == [0, 1, 2]  # trial NNN − 1
    assert all(v.status is Status.COMPLETED and v.backend_job_name in names for v in versions)
    best = max(versions, key=lambda v: v.metrics["validation:accuracy"])
    assert best.spec.hyperparameters["lr"] == 0.008 and best.trial == 1
    assert stack.store().get_sweep("sw").status is SweepStatus.COMPLETED
    ends = [m for m in stack.slack.requests_for("chat.postMessage")
            if "sweep *sw* completed" in m.params.get("text", "")]
    assert len(ends) == 1 and ends[0].params.get("reply_broadcast") is True
