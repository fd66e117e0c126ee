"""Security: request signatures, who may do what, and secrets that never leave the bot.

- a request that isn't signed by Slack now is answered 401 and runs nothing;
- launch (restricted pool), approve, reject, stop and delete-preset are checked for the
  requester, an approver, an admin and anyone else;
- the bot token and the signing secret appear in no log record (every logger at DEBUG),
  no message and no file; SageMaker's presigned TensorBoard URLs are never posted.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.algorithm_catalog import PublishedAlgorithm, PublishedCatalog
from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.commands import parse
from bot.config import RerunApproval
from bot.dispatch import Actor, execute
from bot.domain import NotAllowed, ResourcePool, Status
from bot.localslack.server import LocalSlack
from bot.localslack.signing import sign
from bot.services import approvals, launching, presets, requests
from bot.services.authz import Policy
from bot.services.context import Deps
from bot.services.state_changes import record_state_change
from bot.slack.notifier import SlackChat
from bot.slack.wiring import web_client
from tests.fakes import FakeCompute, MemoryStore, event
from tests.integration.slack_harness import CHANNEL, SECRET, TOKEN, Harness
from tests.reliability.conftest import fast_harness, service_deps

REQUESTER, APPROVER, ADMIN, OTHER = "U0LOCAL1", "U0LOCAL2", "U0ADMIN", "U0OTHER"
ROLES = {"requester": REQUESTER, "approver": APPROVER, "admin": ADMIN, "other": OTHER}
RESTRICTED = ResourcePool(id="restricted", instance_type="local", allowed_launchers=[REQUESTER])


# -- signatures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = fast_harness(tmp_path_factory.mktemp("signatures"), algorithms=["quick-metrics"])
    yield harness
    harness.close()


def raw_post(h: Harness, body: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(h.server.url, data=body.encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _without(*names: str) -> Callable[[str], dict[str, str]]:
    return lambda body: {k: v for k, v in sign(SECRET, body).items() if k not in names}


def _tampered(body: str) -> dict[str, str]:
    return sign(SECRET, body + "&user_id=U0ADMIN")  # signed for other bytes than those sent


FORGERIES: dict[str, Callable[[str], dict[str, str]]] = {
    "wrong secret": lambda body: sign("not-the-secret", body),
    "stale (301 s)": lambda body: sign(SECRET, body, int(time.time()) - 301),
    "stale (1 day)": lambda body: sign(SECRET, body, int(time.time()) - 86_400),
    "future (301 s)": lambda body: sign(SECRET, body, int(time.time()) + 301),
    "future (1 h)": lambda body: sign(SECRET, body, int(time.time()) + 3600),
    "no signature": _without("X-Slack-Signature"),
    "no timestamp": _without("X-Slack-Request-Timestamp"),
    "no headers": _without("X-Slack-Signature", "X-Slack-Request-Timestamp"),
    "body changed after signing": _tampered,
    "signature of another scheme": lambda body: sign(SECRET, body) | {
        "X-Slack-Signature": sign(SECRET, body)["X-Slack-Signature"].replace("v0=", "v1=")},
}


@pytest.mark.parametrize("forge", list(FORGERIES))
def test_unsigned_or_stale_requests_are_401_and_run_nothing(signed: Harness, forge: str) -> None:
    seen = len(signed.slack.requests)
    command = signed.command_body("start quick-metrics --name evil")
    press = signed.press_body("delete_preset", "nightly", user=OTHER)

    statuses = [raw_post(signed, body, FORGERIES[forge](body)) for body in (command, press)]

    assert statuses == [401, 401]
    time.sleep(0.2)  # room for a lazy listener, if one had been started
    assert signed.slack.requests[seen:] == []  # no Web API call, no response_url post
    assert signed.bot.deps.store.list_jobs() == []
    assert not signed.settings.runs_dir.exists() or not any(signed.settings.runs_dir.iterdir())


def test_a_timestamp_that_is_not_a_number_is_refused_and_runs_nothing(signed: Harness) -> None:
    """Slack never sends one; Bolt's verifier would fail on ``int()`` with a 500: a guard in
    front of it answers 401 like any other failed verification."""
    seen = len(signed.slack.requests)
    body = signed.command_body("start quick-metrics --name evil")

    status = raw_post(signed, body, sign(SECRET, body) | {"X-Slack-Request-Timestamp": "soon"})

    assert status == 401
    time.sleep(0.2)
    assert signed.slack.requests[seen:] == []
    assert signed.bot.deps.store.list_jobs() == []


def test_a_correctly_signed_request_is_accepted(signed: Harness) -> None:
    """The control for the forgeries above: the same request, signed now, is served."""
    body = signed.command_body("help")
    assert raw_post(signed, body, sign(SECRET, body)) == 200
    body = signed.command_body("help")
    assert raw_post(signed, body, sign(SECRET, body, int(time.time()) - 240)) == 200


# -- the authorisation matrix (service level) ---------------------------------------------------

def matrix_deps(*, allow_self_approval: bool = False) -> Deps:
    return service_deps(
        MemoryStore(), compute=FakeCompute(), pools=[RESTRICTED],
        policy=Policy(approvers=[APPROVER], admins=[ADMIN], rerun_approval=RerunApproval.ALWAYS,
                      allow_self_approval=allow_self_approval))


def _awaiting(deps: Deps) -> str:
    requests.start_job(deps, requests.LaunchRequest(user=REQUESTER, algorithm="toy",
                                                      job_name="exp", pool="local-cpu"))
    _, approval = requests.rerun(deps, requests.LaunchRequest(
        user=REQUESTER, params={"epochs": "5"}), job="exp")
    assert approval is not None
    return approval.id


def act(action: str, deps: Deps, actor: str) -> Callable[[], bool]:
    """Set up what ``action`` needs, then do it as ``actor``; return "did it take effect?"."""
    if action == "launch":
        def launched() -> bool:
            return any(j.name == "restricted-run" for j in deps.store.list_jobs())

        try:
            requests.start_job(deps, requests.LaunchRequest(
                user=actor, algorithm="toy", pool="restricted", job_name="restricted-run"))
        except NotAllowed:
            assert not launched()
            raise
        return launched
    if action in ("approve", "reject"):
        approval_id = _awaiting(deps)

        def decided() -> bool:
            return deps.store.get_approval(approval_id).decided_by == actor

        try:
            approvals.decide(deps, approval_id=approval_id, user=actor,
                             approve=action == "approve", note="no")
        except NotAllowed:
            assert deps.store.get_approval(approval_id).pending
            assert deps.store.get_version("exp", 2).status is Status.AWAITING_APPROVAL
            raise
        return decided
    if action == "stop":
        requests.start_job(deps, requests.LaunchRequest(user=REQUESTER, algorithm="toy",
                                                          job_name="busy", pool="local-cpu"))

        def stopping() -> bool:
            return deps.store.get_version("busy", 1).status is Status.STOPPING

        try:
            launching.stop_version(deps, user=actor, job="busy")
        except NotAllowed:
            assert deps.store.get_version("busy", 1).status is Status.QUEUED
            raise
        return stopping
    assert action == "delete preset"
    presets.save_preset(deps, user=REQUESTER, name="nightly", algorithm="toy")

    def deleted() -> bool:
        return deps.store.list_presets(deps.scope) == []

    try:
        presets.delete_preset(deps, user=actor, name="nightly")
    except NotAllowed:
        assert not deleted()
        raise
    return deleted


ALLOWED = {
    "launch": {"requester", "admin"},  # the pool's allowed_launchers, and admins
    "approve": {"approver", "admin"},  # not the requester: self-approval is off
    "reject": {"approver", "admin"},
    "stop": {"requester", "approver", "admin"},
    "delete preset": {"requester", "admin"},  # the preset's owner, and admins
}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("action", list(ALLOWED))
def test_authorisation_matrix(action: str, role: str) -> None:
    deps = matrix_deps()
    if role in ALLOWED[action]:
        took_effect = act(action, deps, ROLES[role])
        assert took_effect()
    else:
        with pytest.raises(NotAllowed) as refused:
            act(action, deps, ROLES[role])
        assert refused.value.user_text().strip()


def test_self_approval_is_allowed_when_configured() -> None:
    deps = matrix_deps(allow_self_approval=True)
    deps.policy.approvers.append(REQUESTER)
    approval_id = _awaiting(deps)

    approval, version = approvals.decide(deps, approval_id=approval_id, user=REQUESTER,
                                         approve=True)

    assert approval.decided_by == REQUESTER and version.backend_job_name


def test_self_approval_is_refused_by_default_even_for_an_approver() -> None:
    deps = matrix_deps()
    deps.policy.approvers.append(REQUESTER)
    approval_id = _awaiting(deps)

    with pytest.raises(NotAllowed, match="your own request"):
        approvals.decide(deps, approval_id=approval_id, user=REQUESTER, approve=True)
    assert deps.store.get_approval(approval_id).pending


# -- authorisation through Slack ----------------------------------------------------------------

@pytest.fixture(scope="module")
def slack_h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("authz")
    pools = tmp / "pools.yml"
    pools.write_text(yaml.safe_dump({"pools": [
        {"id": "local-cpu", "instance_type": "local"},
        {"id": "restricted", "instance_type": "local", "allowed_launchers": [REQUESTER]},
    ]}))
    harness = fast_harness(tmp, algorithms=["quick-metrics"], approvers=[APPROVER],
                           admins=[ADMIN], pools=pools)
    harness.command("start quick-metrics epochs=1 --name exp")
    harness.wait_status("exp", "COMPLETED")
    harness.command("rerun exp v1 epochs=2")
    harness.wait_status("exp", "AWAITING_APPROVAL", number=2)
    harness.command("preset save nightly --from exp v1")
    harness.wait_ephemeral("Saved preset")
    yield harness
    harness.close()


def test_slack_launch_on_a_restricted_pool_by_someone_else_is_refused(slack_h: Harness) -> None:
    slack_h.command("start quick-metrics --pool restricted --name sneaky", user=OTHER)
    slack_h.wait_ephemeral("may not launch on pool `restricted`", user=OTHER)
    assert all(j.name != "sneaky" for j in slack_h.bot.deps.store.list_jobs())


@pytest.mark.parametrize("user", [OTHER, REQUESTER])
def test_slack_approve_by_a_non_approver_is_refused(slack_h: Harness, user: str) -> None:
    approval_id = slack_h.version("exp", 2).approval_id or ""
    slack_h.press("approve_request", approval_id, user=user)
    slack_h.wait_ephemeral("Only approvers", user=user)
    assert slack_h.bot.deps.store.get_approval(approval_id).pending
    assert slack_h.version("exp", 2).status is Status.AWAITING_APPROVAL


def test_slack_self_approval_by_an_approver_is_refused(slack_h: Harness) -> None:
    slack_h.command("rerun exp v1 epochs=3", user=APPROVER)
    v3 = slack_h.wait_status("exp", "AWAITING_APPROVAL", number=3)
    slack_h.press("approve_request", v3.approval_id or "", user=APPROVER)
    slack_h.wait_ephemeral("can't decide your own request", user=APPROVER)
    assert slack_h.version("exp", 3).status is Status.AWAITING_APPROVAL


def test_slack_delete_preset_by_someone_else_is_refused(slack_h: Harness) -> None:
    slack_h.press("delete_preset", "nightly", user=APPROVER)
    slack_h.wait_ephemeral("its owner", user=APPROVER)
    assert [p.name for p in slack_h.bot.deps.store.list_presets(slack_h.bot.deps.scope)] == [
        "nightly"]


# -- secrets ------------------------------------------------------------------------------------

def test_secrets_never_appear_in_logs_messages_or_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    h = fast_harness(tmp_path, algorithms=["quick-metrics", "crasher"], approvers=[APPROVER])
    acks: list[str] = []
    try:
        acks.append(h.command("start quick-metrics epochs=2 --name exp")[1])
        v1 = h.wait_status("exp", "COMPLETED")
        h.slack.fail_next("chat.postMessage", status=500)  # a retried call is logged too
        h.command("rerun exp v1 epochs=3")
        v2 = h.wait_status("exp", "AWAITING_APPROVAL", number=2)
        h.press("approve_request", v2.approval_id or "", user=APPROVER,
                message_ts=v1.message_ts or "0")
        h.wait_status("exp", "COMPLETED", number=2)
        h.command("start crasher --name boom")
        h.wait_status("boom", "FAILED")
        for text in ("status", "show exp v2", "logs exp v2", "lineage exp v2", "tb exp",
                     "preset save nightly --from exp v2", "preset list", "nonsense",
                     "approve nope", "help"):
            acks.append(h.command(text, user=OTHER)[1])
        h.wait(lambda: len(h.slack.ephemerals(OTHER)) >= 8)
        h.post(h.command_body("help"), secret="wrong")  # a rejected request is logged too
        h.bot.deps.compute = type("Broken", (FakeCompute,), {  # an unexpected error's path
            "logs": lambda self, version, lines=50: 1 / 0})()
        h.command("logs exp v1", user=OTHER)
        h.wait_ephemeral("error id", user=OTHER)
        files = [p for p in h.settings.home.rglob("*") if p.is_file()]
    finally:
        h.close()

    assert len(caplog.records) > 50, "DEBUG logging was not captured"
    logged = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    traffic = json.dumps([r.params for r in h.slack.requests], default=str) + "".join(acks)
    shown = json.dumps(h.slack.state(), default=str)
    assert len(h.slack.requests) > 30 and "exp v2" in traffic
    for secret in (TOKEN, SECRET):
        assert secret not in logged
        assert secret not in traffic
        assert secret not in shown
        leaked = [str(p) for p in files if secret.encode() in p.read_bytes()]
        assert leaked == []


# -- TensorBoard links --------------------------------------------------------------------------

class Tripwire:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"AWS was called ({name})")


FORBIDDEN = ("presigned", "authToken", "sagemaker.aws/auth", "studio", "X-Amz-Signature")


def test_sagemaker_tensorboard_links_are_landing_pages_never_presigned() -> None:
    published = PublishedAlgorithm(
        version="1.0.0", digest="0" * 64, entry_point="train.py",
        source_uri="s3://team-ml/src.tar.gz", images={"gpu": "img:gpu", "cpu": "img:cpu"})
    compute = SageMakerCompute(
        sagemaker_client=Tripwire(), logs_client=Tripwire(), s3_client=Tripwire(),
        catalog=PublishedCatalog(region="eu-west-1", bucket="team-ml",
                                 algorithms={"toy": published}),
        role_arn="arn:aws:iam::1:role/t", bucket="team-ml", region="eu-west-1")
    deps = service_deps(MemoryStore(), compute=FakeCompute())
    with LocalSlack(bot_token=TOKEN) as slack:
        chat = SlackChat(web_client(TOKEN, slack.api_url), links=compute.links,
                         algorithm_of=deps.algorithms.find)
        deps.chat = chat
        v, _ = requests.start_job(deps, requests.LaunchRequest(
            user=REQUESTER, algorithm="toy", job_name="tb", pool="local-cpu", channel=CHANNEL))
        deps.compute = compute  # links and the `tb` command now read SageMaker's
        record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
        reply = execute(deps, parse("tb tb"), Actor(user=REQUESTER, channel=CHANNEL))
        traffic = json.dumps([r.params for r in slack.requests]) + json.dumps(reply.doc.__dict__,
                                                                             default=str)

    landing = (f"https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1"
               f"#/tensor-board-landing/{v.backend_job_name}")
    assert compute.links(v).tensorboard == landing
    assert landing in traffic  # on the card, in the announcement and in `tb`
    for word in FORBIDDEN:
        assert word not in traffic
