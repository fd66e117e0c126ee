"""Faults from the outside world: AWS throttling and refusals, Slack 429/5xx, a training
process killed mid-run, the bot restarted mid-run, the bot dying while an approval is applied.

AWS faults are injected on real botocore clients talking to moto's HTTP server: a
``before-send`` hook answers the first calls with an error response, so the client's own
retry logic (adaptive mode, from ``bot.aws.aws_client``) is what recovers — botocore's
Stubber would bypass it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto.server import ThreadedMotoServer

from bot.adapters.algorithm_catalog import PublishedAlgorithm, PublishedCatalog
from bot.adapters.dynamodb.store import DynamoStore
from bot.adapters.dynamodb_schema import ensure_tables
from bot.adapters.local.runs import RunDir, read_json
from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.aws import aws_client
from bot.bootstrap import build_deps
from bot.config import RerunApproval, Settings
from bot.domain import BackendRejected, Decision, JobVersion, QuotaExceeded, Status
from bot.error_text import user_text
from bot.localslack.server import LocalSlack
from bot.services import approvals
from bot.services.authz import Policy
from bot.services.context import Deps
from bot.services.reconcile import reconcile
from bot.services.requests import LaunchRequest, rerun, start_job
from bot.services.state_changes import record_state_change
from bot.slack.notifier import SlackChat
from bot.slack.wiring import web_client
from tests.fakes import FakeCompute, MemoryStore, RecordingChat, event
from tests.integration.slack_harness import algorithms_dir, wait_until
from tests.reliability.conftest import make_store, service_deps

REGION = "us-east-1"
BUCKET = "team-ml"
TOKEN = "xoxb-faults-token"
PUBLISHED = PublishedAlgorithm(
    version="1.0.0", digest="ab" * 32, entry_point="train.py",
    source_uri=f"s3://{BUCKET}/trainbot/algorithms/toy/1.0.0/abababababababab/sourcedir.tar.gz",
    images={"cpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311",
            "gpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311"},
)


class Raw:
    """The raw body botocore reads an injected response from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class Fault:
    """A ``before-send`` hook answering the first ``times`` calls with an AWS JSON error."""

    def __init__(self, code: str, message: str, *, times: int = 1, status: int = 400,
                 content_type: str = "application/x-amz-json-1.1") -> None:
        self.code, self.message, self.times, self.status = code, message, times, status
        self.content_type = content_type
        self.fired = 0
        self.passed = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.fired >= self.times:
            self.passed += 1
            return None  # send it for real
        self.fired += 1
        body = json.dumps({"__type": self.code, "message": self.message}).encode()
        return AWSResponse(request.url, self.status, {"Content-Type": self.content_type},
                           Raw(body))


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    """moto as a real HTTP endpoint; every client built meanwhile points at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", url)
        yield url
    server.stop()


@pytest.fixture(scope="module")
def sagemaker(aws_endpoint: str) -> SageMakerCompute:
    return SageMakerCompute(
        sagemaker_client=aws_client("sagemaker"), logs_client=aws_client("logs"),
        s3_client=aws_client("s3"),
        catalog=PublishedCatalog(region=REGION, bucket=BUCKET, algorithms={"toy": PUBLISHED}),
        role_arn="arn:aws:iam::123456789012:role/trainbot-training", bucket=BUCKET,
        region=REGION)


@pytest.fixture
def inject(sagemaker: SageMakerCompute) -> Iterator[Callable[[Fault], Fault]]:
    """Register a Fault on CreateTrainingJob for one test."""
    hooks: list[Fault] = []

    def add(fault: Fault) -> Fault:
        sagemaker.sagemaker.meta.events.register(
            "before-send.sagemaker.CreateTrainingJob", fault, unique_id="fault")
        hooks.append(fault)
        return fault

    yield add
    sagemaker.sagemaker.meta.events.unregister(
        "before-send.sagemaker.CreateTrainingJob", unique_id="fault")


def sagemaker_deps(compute: SageMakerCompute) -> Deps:
    return service_deps(MemoryStore(), compute=compute, chat=RecordingChat())


# -- SageMaker ----------------------------------------------------------------------------------

def test_sagemaker_throttling_is_retried_until_the_job_is_created(
    sagemaker: SageMakerCompute, inject: Callable[[Fault], Fault]
) -> None:
    fault = inject(Fault("ThrottlingException", "Rate exceeded", times=2))
    deps = sagemaker_deps(sagemaker)

    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-1"))

    assert (fault.fired, fault.passed) == (2, 1)
    assert v.status is Status.QUEUED and v.backend == "sagemaker" and v.backend_job_name
    assert v.compute_note == "1× ml.g5.xlarge"
    found = sagemaker.sagemaker.describe_training_job(TrainingJobName=v.backend_job_name)
    assert found["TrainingJobName"] == v.backend_job_name


@pytest.mark.parametrize(("code", "message", "error", "says"), [
    ("ResourceLimitExceeded",
     "The account-level service limit 'ml.g5.xlarge for training job usage' is 0 Instances, "
     "with current utilization of 0 Instances and a request delta of 1 Instances.",
     QuotaExceeded, "ml.g5.xlarge for training job usage"),
    ("ValidationException", "Value 'bad' at 'hyperParameters' failed to satisfy constraint",
     BackendRejected, "SageMaker rejected the job: Value 'bad'"),
], ids=["quota", "validation"])
def test_sagemaker_refusal_fails_the_version_with_a_clear_reason_and_tells_the_user(
    sagemaker: SageMakerCompute, inject: Callable[[Fault], Fault], code: str, message: str,
    error: type[Exception], says: str,
) -> None:
    fault = inject(Fault(code, message))
    deps = sagemaker_deps(sagemaker)

    with pytest.raises(error) as raised:
        start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-1", channel="C1"))

    assert (fault.fired, fault.passed) == (1, 0)  # a refusal is not retried
    job = deps.store.list_jobs()[0].name
    v = deps.store.get_version(job, 1)
    assert v.status is Status.FAILED
    assert says in (v.failure_reason or "")
    told = user_text(raised.value, log=logging.getLogger("test"))
    assert says in told and "failed to launch" in told and "error id" not in told
    chat: Any = deps.chat
    assert ("changed", (v.label, Status.QUEUED, Status.FAILED)) in chat.calls


# -- DynamoDB -----------------------------------------------------------------------------------

def test_dynamodb_throttling_is_retried_by_the_default_client(aws_endpoint: str) -> None:
    store = DynamoStore("trainbot-throttled")  # the default client: adaptive retries
    ensure_tables(store._client, store.table_name)
    fault = Fault("com.amazonaws.dynamodb.v20120810#ThrottlingException", "Rate exceeded",
                  content_type="application/x-amz-json-1.0")
    store._client.meta.events.register("before-send.dynamodb.TransactWriteItems", fault)
    deps = service_deps(store)

    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", job_name="steady",
                                         pool="local-cpu"))

    # Two transactions: the version's number, then the launch's claim of its backend name.
    assert (fault.fired, fault.passed) == (1, 2)
    assert store.get_version("steady", 1).backend_job_name == v.backend_job_name
    assert store.get_job("steady").latest_version == 1


# -- Slack --------------------------------------------------------------------------------------

@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack(bot_token=TOKEN) as server:
        yield server


def slack_deps(slack: LocalSlack) -> Deps:
    return service_deps(MemoryStore(), compute=FakeCompute(),
                        chat=SlackChat(web_client(TOKEN, slack.api_url)))


def start(deps: Deps) -> JobVersion:
    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", job_name="exp",
                                         pool="local-cpu", channel="C0LOCAL"))
    return v


def test_rate_limited_post_is_retried_after_retry_after(slack: LocalSlack) -> None:
    slack.fail_next("chat.postMessage", retry_after=1)
    deps = slack_deps(slack)

    v = start(deps)

    posts = slack.requests_for("chat.postMessage")
    assert [p.status for p in posts] == [429, 200]
    assert posts[1].time - posts[0].time >= 1.0  # Retry-After honoured
    assert v.message_ts and slack.messages("C0LOCAL")[0]["ts"] == v.message_ts


def test_server_errors_are_retried(slack: LocalSlack) -> None:
    slack.fail_next("chat.postMessage", status=503, times=2)
    deps = slack_deps(slack)

    v = start(deps)

    assert [p.status for p in slack.requests_for("chat.postMessage")] == [503, 503, 200]
    assert v.message_ts


def test_card_update_that_keeps_failing_loses_no_state_change_and_still_announces(
    slack: LocalSlack,
) -> None:
    deps = slack_deps(slack)
    v = start(deps)
    slack.fail_next("chat.update", status=500, times=10)

    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))

    assert done is not None and done.status is Status.COMPLETED
    assert deps.store.get_version("exp", 1).status is Status.COMPLETED
    updates = slack.requests_for("chat.update")
    assert updates and {u.status for u in updates} == {500}
    replies = slack.messages("C0LOCAL")[0]["replies"]
    assert any("completed" in r["text"] for r in replies), replies


# -- local training processes -------------------------------------------------------------------

@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", tensorboard_port=0,
                    algorithms_dir=algorithms_dir(tmp_path, ["sleeper"]))


@pytest.fixture
def deps_on(settings: Settings) -> Iterator[Callable[[], Deps]]:
    """Bot processes on one TRAINBOT_HOME (each call: a new one, recovering what runs)."""
    made: list[Deps] = []

    def build() -> Deps:
        made.append(build_deps(settings))
        return made[-1]

    yield build
    for d in made:
        d.compute.close()
        for v in d.store.list_active():
            kill_group(settings, v)
        d.store.close()  # type: ignore[attr-defined]


def runner_pid(settings: Settings, v: JobVersion) -> int:
    state = read_json(RunDir(settings.runs_dir / (v.backend_job_name or "")).state_file)
    return int(state["runner"]["pid"])


def kill_group(settings: Settings, v: JobVersion) -> None:
    if v.backend_job_name:
        with contextlib.suppress(ProcessLookupError, TypeError, KeyError):
            os.killpg(runner_pid(settings, v), signal.SIGKILL)


def launch_sleeper(deps: Deps, name: str, run_s: float) -> JobVersion:
    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="sleeper", job_name=name,
                                         params={"run_s": str(run_s)}, pool="local-cpu"))
    return v


def wait_status(deps: Deps, job: str, *statuses: Status, timeout: float = 20) -> JobVersion:
    return wait_until(lambda: (v := deps.store.get_version(job, 1)).status in statuses and v,
                      timeout)


def test_training_process_killed_mid_run_fails_the_version_with_the_reason(
    settings: Settings, deps_on: Callable[[], Deps]
) -> None:
    deps = deps_on()
    v = launch_sleeper(deps, "victim", 0)
    wait_status(deps, "victim", Status.TRAINING)

    os.killpg(runner_pid(settings, v), signal.SIGKILL)

    failed = wait_status(deps, "victim", Status.FAILED, Status.COMPLETED)
    assert failed.status is Status.FAILED
    assert "killed by SIGKILL" in (failed.failure_reason or "")
    assert failed.ended_at is not None and deps.store.list_active() == []


def test_bot_restart_mid_run_recovers_and_completes(
    settings: Settings, deps_on: Callable[[], Deps]
) -> None:
    first = deps_on()
    v = launch_sleeper(first, "survivor", 1.5)
    wait_status(first, "survivor", Status.TRAINING)
    first.compute.close()  # the old bot process goes away

    second = deps_on()

    done = wait_status(second, "survivor", Status.COMPLETED, Status.FAILED)
    assert done.status is Status.COMPLETED, done.failure_reason
    assert done.backend_job_name == v.backend_job_name
    assert len(list(settings.runs_dir.glob("trainbot-*"))) == 1  # adopted, not relaunched


def test_bot_restart_after_the_process_died_fails_the_version_with_the_reason(
    settings: Settings, deps_on: Callable[[], Deps]
) -> None:
    first = deps_on()
    v = launch_sleeper(first, "orphan", 0)
    wait_status(first, "orphan", Status.TRAINING)
    first.compute.close()
    os.killpg(runner_pid(settings, v), signal.SIGKILL)  # dies while no bot watches
    time.sleep(0.2)

    second = deps_on()

    failed = wait_status(second, "orphan", Status.FAILED, Status.COMPLETED)
    assert failed.status is Status.FAILED
    assert "trainbot restarted" in (failed.failure_reason or "")


# -- the bot dying between "approval decided" and "version moved" -------------------------------


class Died(BaseException):
    """The process stops here: nothing after it runs (no ``except Exception`` catches it)."""


class DiesAfterDeciding:
    """A store whose process dies at the first version write after an approval was decided
    — where older trainbots moved the version, in a second write."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._decided = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name.startswith("decide_approval"):
            def decide(*args: Any, **kwargs: Any) -> Any:
                result = attr(*args, **kwargs)
                self._decided = True
                return result
            return decide
        if name in ("save_version", "claim_launch") and self._decided:
            raise Died(name)
        return attr


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_dying_while_an_approval_is_applied_never_strands_the_request(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    policy = Policy(approvers=["UAPPROVER"], rerun_approval=RerunApproval.ALWAYS)
    deps = service_deps(make_store(kind, request, tmp_path), policy=policy)
    start_job(deps, LaunchRequest(user="UREQ", algorithm="toy", job_name="exp",
                                  pool="local-cpu"))
    _, approval = rerun(deps, LaunchRequest(user="UREQ", params={"epochs": "5"}), job="exp")
    assert approval is not None
    deps.store = DiesAfterDeciding(deps.store)  # type: ignore[assignment]

    with pytest.raises(Died):
        approvals.decide(deps, approval_id=approval.id, user="UAPPROVER", approve=True)

    compute = FakeCompute()
    restarted = service_deps(make_store(kind, request, tmp_path), compute=compute,
                             policy=policy)
    restarted.clock.advance(minutes=10)  # type: ignore[attr-defined]
    reconcile(restarted)
    v2 = restarted.store.get_version("exp", 2)
    decided = restarted.store.get_approval(approval.id)
    if decided.pending:
        assert v2.status is Status.AWAITING_APPROVAL
    else:
        assert v2.status is Status.QUEUED and v2.approved_by == "UAPPROVER"
        assert v2.backend_job_name and [v.number for v in compute.launched] == [2]


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_a_request_stranded_by_an_older_trainbot_is_applied_by_one_reconcile(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    policy = Policy(approvers=["UAPPROVER"], rerun_approval=RerunApproval.ALWAYS)
    compute = FakeCompute()
    deps = service_deps(make_store(kind, request, tmp_path), compute=compute, policy=policy)
    start_job(deps, LaunchRequest(user="UREQ", algorithm="toy", job_name="exp",
                                  pool="local-cpu"))
    _, approval = rerun(deps, LaunchRequest(user="UREQ", params={"epochs": "5"}), job="exp")
    assert approval is not None
    # Older trainbots decided, then moved the version in a second write that never came.
    deps.store.decide_approval(approval.id, Decision.APPROVED, by="UAPPROVER",
                               at=deps.clock.now())

    summary = reconcile(deps)

    v2 = deps.store.get_version("exp", 2)
    assert summary.repaired == [
        "exp v2: AWAITING_APPROVAL → QUEUED (approved by UAPPROVER)"]
    assert v2.approved_by == "UAPPROVER" and v2.backend_job_name
    assert [v.number for v in compute.launched] == [1, 2]
