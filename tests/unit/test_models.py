"""Registering a completed version as a model version, and deciding it exactly once."""

from __future__ import annotations

import threading

import pytest

from bot.config import RerunApproval
from bot.domain import (
    BackendError,
    Conflict,
    InvalidInput,
    JobVersion,
    ModelStatus,
    ModelVersion,
    NotAllowed,
    NotFound,
)
from bot.services import queries
from bot.services.context import Deps, NullChat
from bot.services.models import decide_model, default_group, list_models, register_model
from bot.services.requests import LaunchRequest, rerun, start_job
from bot.services.state_changes import record_state_change
from tests.fakes import FakeClock, RecordingChat, event

REQUESTER, APPROVER, ADMIN = "U1", "UAPPROVER", "UADMIN"


def _run(deps: Deps, name: str = "exp1", *, accuracy: float = 0.9, end: str = "Completed",
         rerun_of: int | None = None) -> JobVersion:
    """A version of ``name`` that ended as ``end`` (a new job, or a rerun of a version)."""
    if rerun_of is None:
        v, _ = start_job(deps, LaunchRequest(user=REQUESTER, algorithm="toy", pool="local-cpu",
                                             channel="C1", job_name=name))
    else:
        deps.policy.rerun_approval = RerunApproval.NEVER
        v, _ = rerun(deps, LaunchRequest(user=REQUESTER, channel="C1"), job=name,
                     base_number=rerun_of)
    if end != "InProgress":
        record_state_change(deps, event(
            v.backend_job_name or "", end, end,
            ModelArtifacts={"S3ModelArtifacts": f"s3://bkt/{name}/v{v.number}/model.tar.gz"},
            FinalMetricDataList=[{"MetricName": "validation:accuracy", "Value": accuracy},
                                 {"MetricName": "train:loss", "Value": 0.25}]))
    else:
        record_state_change(deps, event(v.backend_job_name or "", "InProgress", "Training"))
    return deps.store.get_version(v.job, v.number)


def _chat(deps: Deps) -> RecordingChat:
    assert isinstance(deps.chat, RecordingChat)
    return deps.chat


def test_register_records_artifact_metrics_objective_and_lineage(deps: Deps) -> None:
    v = _run(deps)

    done = register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")

    m = done.model
    assert done.created and m.label == "exp1 v1" and m.status is ModelStatus.PENDING
    assert m.artifact == "s3://bkt/exp1/v1/model.tar.gz"
    assert m.metrics == {"validation:accuracy": 0.9, "train:loss": 0.25}
    assert (m.objective_metric, m.objective_value) == ("validation:accuracy", 0.9)
    assert (m.algorithm, m.algorithm_version) == ("toy", "1.0.0")
    assert m.image is None  # the fake compute runs no image
    assert m.lineage["job"] == "exp1" and m.lineage["version"] == "v1"
    assert m.lineage["data.train"] == "builtin:digits"
    assert m.lineage["training_job"] == v.backend_job_name
    assert m.lineage["registered_by"] == REQUESTER
    # The card went where the version's card is, and where it is was stored.
    assert ("model registered", "exp1 v1") in _chat(deps).calls
    assert (m.channel, m.message_ts) == ("C1", "7.1")


def test_register_twice_returns_the_first_and_says_so(deps: Deps) -> None:
    _run(deps)
    first = register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    again = register_model(deps, "exp1", 1, user="USOMEONE", channel="C1")
    assert not again.created and again.model == first.model
    assert [c for c in _chat(deps).calls if c[0] == "model registered"] == [
        ("model registered", "exp1 v1")]


def test_registering_again_later_posts_a_card_that_never_got_out(deps: Deps) -> None:
    _run(deps)
    chat = _chat(deps)
    deps.chat = NullChat()  # the first card doesn't get out
    first = register_model(deps, "exp1", 1, user=REQUESTER, channel="C1").model
    deps.chat = chat
    assert register_model(deps, "exp1", 1, user=REQUESTER, channel="C1").model == first
    assert ("model registered", "exp1 v1") not in chat.calls  # maybe still on its way
    clock = deps.clock
    assert isinstance(clock, FakeClock)
    clock.advance(minutes=3)
    again = register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    assert not again.created and again.model.message_ts == "7.1"
    assert ("model registered", "exp1 v1") in chat.calls


def test_versions_of_a_job_number_the_group(deps: Deps) -> None:
    _run(deps)
    _run(deps, rerun_of=1, accuracy=0.95)
    assert register_model(deps, "exp1", 1, user=REQUESTER, channel="C1").model.number == 1
    assert register_model(deps, "exp1", 2, user=REQUESTER, channel="C1").model.number == 2
    other = register_model(deps, "exp1", 1, group="churn", user=REQUESTER, channel="C1").model
    assert other.label == "churn v1"


def test_without_a_version_the_best_completed_one_is_registered(deps: Deps) -> None:
    _run(deps, accuracy=0.8)
    _run(deps, rerun_of=1, accuracy=0.97)  # the best trial
    _run(deps, rerun_of=1, accuracy=0.9)
    _run(deps, rerun_of=1, end="Failed")
    assert register_model(deps, "exp1", user=REQUESTER, channel="C1").model.version == 2


@pytest.mark.parametrize("end", ["InProgress", "Failed"])
def test_a_version_that_did_not_complete_is_refused(deps: Deps, end: str) -> None:
    v = _run(deps, end=end)
    with pytest.raises(InvalidInput) as err:
        register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    assert err.value.message == (f"exp1 v1 hasn't completed (it is {v.status.value}); "
                                 "register it once it has.")
    with pytest.raises(InvalidInput):
        register_model(deps, "exp1", user=REQUESTER, channel="C1")  # nothing completed
    assert deps.store.list_model_groups() == []


def test_a_bad_group_name_is_refused(deps: Deps) -> None:
    _run(deps)
    with pytest.raises(InvalidInput, match="not a valid model group"):
        register_model(deps, "exp1", 1, group="no_underscores", user=REQUESTER, channel="C1")


def test_default_group_is_the_job_name_as_sagemaker_takes_it() -> None:
    assert default_group("churn-model-2") == "churn-model-2"
    assert default_group("a_b..c") == "a-b-c"
    assert len(default_group("x" * 80)) == 63


def test_register_holds_to_the_channel_allow_list(deps: Deps) -> None:
    _run(deps)
    deps.policy.channels = ["C0ELSEWHERE"]
    with pytest.raises(NotAllowed):
        register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")


class _Registry:
    def __init__(self) -> None:
        self.registered: list[str] = []
        self.decided: list[tuple[str, ModelStatus, str | None]] = []
        self.fail_register = self.fail_decide = False

    def register(self, model: ModelVersion) -> str | None:
        if self.fail_register:
            raise BackendError("ThrottlingException: Rate exceeded")
        self.registered.append(model.label)
        return f"arn:aws:sagemaker:us-east-1:1:model-package/{model.group}/{model.number}"

    def decide(self, model: ModelVersion) -> None:
        if self.fail_decide:
            raise BackendError("ThrottlingException: Rate exceeded")
        self.decided.append((model.label, model.status, model.decided_by))


def test_the_registry_gets_the_model_and_the_decision(deps: Deps) -> None:
    registry = _Registry()
    deps.models = registry
    _run(deps)
    m = register_model(deps, "exp1", 1, user=REQUESTER, channel="C1").model
    assert m.package_arn == "arn:aws:sagemaker:us-east-1:1:model-package/exp1/1"
    decide_model(deps, "exp1", 1, user=APPROVER, approve=True)
    assert registry.decided == [("exp1 v1", ModelStatus.APPROVED, APPROVER)]
    lineage = queries.lineage(deps, "exp1", 1)
    [node] = [n for n in lineage.nodes if n.label == "exp1 v1" and n.kind == "model"]
    assert node.detail == f"Approved; {m.package_arn}"


def test_an_approver_approves_and_the_card_is_updated(deps: Deps) -> None:
    _run(deps)
    register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    m = decide_model(deps, "exp1", 1, user=APPROVER, approve=True, note="ship it")
    assert (m.status, m.decided_by, m.note) == (ModelStatus.APPROVED, APPROVER, "ship it")
    assert m.decided_at is not None
    assert deps.store.get_model_version("exp1", 1).status is ModelStatus.APPROVED
    assert ("model decided", ("exp1 v1", ModelStatus.APPROVED)) in _chat(deps).calls


def test_reject_records_the_reason(deps: Deps) -> None:
    _run(deps)
    register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    m = decide_model(deps, "exp1", 1, user=ADMIN, approve=False, note="overfits")
    assert (m.status, m.decided_by, m.note) == (ModelStatus.REJECTED, ADMIN, "overfits")


def test_only_approvers_decide(deps: Deps) -> None:
    _run(deps)
    register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    with pytest.raises(NotAllowed) as err:
        decide_model(deps, "exp1", 1, user="USOMEONE", approve=True)
    assert "Only approvers" in err.value.message and f"<@{APPROVER}>" in err.value.message
    assert deps.store.get_model_version("exp1", 1).pending


def test_who_registered_it_may_not_decide_it_unless_allowed(deps: Deps) -> None:
    _run(deps)
    register_model(deps, "exp1", 1, user=APPROVER, channel="C1")
    with pytest.raises(NotAllowed, match="you registered it"):
        decide_model(deps, "exp1", 1, user=APPROVER, approve=True)
    deps.policy.allow_self_approval = True
    assert decide_model(deps, "exp1", 1, user=APPROVER, approve=True).status is \
        ModelStatus.APPROVED


def test_a_second_decision_names_the_first(deps: Deps) -> None:
    _run(deps)
    register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    decide_model(deps, "exp1", 1, user=APPROVER, approve=True)
    with pytest.raises(Conflict) as err:
        decide_model(deps, "exp1", 1, user=ADMIN, approve=False, note="no")
    assert err.value.message == f"exp1 v1 was already approved by <@{APPROVER}>."


def test_concurrent_decisions_take_effect_exactly_once(deps: Deps) -> None:
    registry = _Registry()
    deps.models = registry
    deps.policy.approvers = [f"UAPP{i}" for i in range(8)]
    _run(deps)
    register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    barrier = threading.Barrier(8)
    won: list[ModelVersion] = []
    lost: list[Conflict] = []

    def decide(i: int) -> None:
        barrier.wait()
        try:
            won.append(decide_model(deps, "exp1", 1, user=f"UAPP{i}", approve=i % 2 == 0))
        except Conflict as exc:
            lost.append(exc)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 7
    stored = deps.store.get_model_version("exp1", 1)
    assert (stored.status, stored.decided_by) == (won[0].status, won[0].decided_by)
    assert len(registry.decided) == 1
    assert len([c for c in _chat(deps).calls if c[0] == "model decided"]) == 1


def test_list_models_by_group(deps: Deps) -> None:
    _run(deps)
    _run(deps, "exp2")
    register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    register_model(deps, "exp2", 1, user=REQUESTER, channel="C1")
    register_model(deps, "exp2", 1, group="exp1", user=REQUESTER, channel="C1")
    everything = list_models(deps)
    assert {g: [m.label for m in ms] for g, ms in everything.items()} == {
        "exp1": ["exp1 v1", "exp1 v2"], "exp2": ["exp2 v1"]}
    assert [m.job for m in list_models(deps, "exp1")["exp1"]] == ["exp1", "exp2"]
    with pytest.raises(NotFound) as err:
        list_models(deps, "nope")
    assert "`exp1`" in (err.value.hint or "")


def test_lineage_shows_the_model_versions_of_a_version(deps: Deps) -> None:
    _run(deps)
    register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    register_model(deps, "exp1", 1, group="churn", user=REQUESTER, channel="C1")
    nodes = queries.lineage(deps, "exp1", 1).nodes
    kinds = [(n.kind, n.label) for n in nodes]
    at = kinds.index(("version", "exp1 v1"))
    assert ("model", "churn v1") in kinds[at:] and ("model", "exp1 v1") in kinds[at:]
    assert {n.detail for n in nodes if n.kind == "model" and n.label.endswith(" v1")} == {
        "PendingManualApproval"}


def test_a_decision_waits_for_the_registry_and_a_later_retry_repairs_it(deps: Deps) -> None:
    """Registration failed (the registry was down): deciding registers it first, so no
    decision lives only in the store; a decision the registry missed is told again when an
    approver repeats it later."""
    registry = _Registry()
    deps.models = registry
    _run(deps)
    registry.fail_register = True
    with pytest.raises(BackendError):
        register_model(deps, "exp1", 1, user=REQUESTER, channel="C1")
    assert deps.store.get_model_version("exp1", 1).package_arn is None
    with pytest.raises(BackendError):
        decide_model(deps, "exp1", 1, user=APPROVER, approve=True)
    assert deps.store.get_model_version("exp1", 1).pending  # nothing decided

    registry.fail_register = False
    registry.fail_decide = True
    with pytest.raises(BackendError, match="again to tell it again"):
        decide_model(deps, "exp1", 1, user=APPROVER, approve=True)
    stored = deps.store.get_model_version("exp1", 1)
    assert stored.package_arn and stored.status is ModelStatus.APPROVED
    assert registry.decided == []

    registry.fail_decide = False
    deps.clock.advance(minutes=2)  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match="already approved"):
        decide_model(deps, "exp1", 1, user=APPROVER, approve=True)
    assert len(registry.decided) == 1


def test_the_card_goes_where_its_buttons_work(deps: Deps) -> None:
    """The version's channel was taken off the allow-list since it trained: the card goes to
    the channel the registration came from, where Approve/Reject are taken."""
    _run(deps)
    deps.policy.channels = ["C2"]

    model = register_model(deps, "exp1", 1, user=REQUESTER, channel="C2").model

    assert model.channel == "C2"
