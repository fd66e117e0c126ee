from __future__ import annotations

import pytest

from bot.domain import (
    BackendError,
    Conflict,
    InvalidInput,
    NotAllowed,
    QuotaExceeded,
    Status,
)
from bot.services.context import Deps
from bot.services.launching import stop_version
from bot.services.requests import LaunchRequest, rerun, start_job
from bot.services.state_changes import record_state_change
from tests.fakes import event


def _start(deps, **kw):  # type: ignore[no-untyped-def]
    req = LaunchRequest(user=kw.pop("user", "U1"), algorithm="toy", pool="local-cpu",
                        channel="C1", **kw)
    return start_job(deps, req)


def test_start_creates_v1_names_the_backend_job_and_launches(deps) -> None:  # type: ignore[no-untyped-def]
    version, approval = _start(deps, params={"epochs": "5"}, job_name="exp1")
    assert approval is None
    assert (version.job, version.number, version.status) == ("exp1", 1, Status.QUEUED)
    assert version.backend_job_name.startswith("trainbot-exp1-v1-")
    assert version.spec.hyperparameters["epochs"] == 5
    assert version.message_ts == "1.1"
    assert deps.compute.launched[0].backend_job_name == version.backend_job_name


def test_retried_request_starts_nothing_new(deps) -> None:  # type: ignore[no-untyped-def]
    first, _ = _start(deps, request_key="T1:trigger")
    again, _ = _start(deps, request_key="T1:trigger")
    assert again.job == first.job and again.number == 1
    assert len(deps.compute.launched) == 1


def test_existing_job_name_is_a_conflict(deps) -> None:  # type: ignore[no-untyped-def]
    _start(deps, job_name="exp1")
    with pytest.raises(Conflict, match="rerun"):
        _start(deps, job_name="exp1")


def test_invalid_job_name_is_refused(deps) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="job name"):
        _start(deps, job_name="bad_name!")


def test_failed_launch_leaves_a_failed_version_with_reason(deps) -> None:  # type: ignore[no-untyped-def]
    deps.compute.fail_with = QuotaExceeded("quota for ml.g5.xlarge is 0")
    with pytest.raises(BackendError, match="failed to launch"):
        _start(deps, job_name="exp1")
    v = deps.store.get_version("exp1", 1)
    assert v.status is Status.FAILED and "quota" in v.failure_reason


def test_rerun_asks_approval_then_approval_launches_with_parent(deps) -> None:  # type: ignore[no-untyped-def]
    from bot.services.approvals import decide

    v1, _ = _start(deps, job_name="exp1")
    v2, approval = rerun(deps, _req(user="U2", params={"lr": "0.5"}), job="exp1", base_number=1)
    assert v2.status is Status.AWAITING_APPROVAL and approval is not None
    assert approval.overrides == {"lr": 0.5} and approval.base_version == 1
    with pytest.raises(NotAllowed, match="Only approvers"):
        decide(deps, approval_id=approval.id, user="U3", approve=True)
    _, launched = decide(deps, approval_id=approval.id, user="UAPPROVER", approve=True)
    assert launched.parent == 1 and launched.approved_by == "UAPPROVER"
    assert launched.backend_job_name
    with pytest.raises(Conflict, match="already approved"):
        decide(deps, approval_id=approval.id, user="UADMIN", approve=True)


def test_self_approval_refused_by_default(deps) -> None:  # type: ignore[no-untyped-def]
    from bot.services.approvals import decide

    _start(deps, job_name="exp1", user="UAPPROVER")
    _, approval = rerun(deps, _req(user="UAPPROVER"), job="exp1")
    with pytest.raises(NotAllowed, match="own request"):
        decide(deps, approval_id=approval.id, user="UAPPROVER", approve=True)


def test_expired_request_is_refused(deps) -> None:  # type: ignore[no-untyped-def]
    from bot.services.approvals import decide

    _start(deps, job_name="exp1")
    v2, approval = rerun(deps, _req(user="U2"), job="exp1")
    deps.clock.advance(days=2)
    with pytest.raises(InvalidInput, match="expired"):
        decide(deps, approval_id=approval.id, user="UAPPROVER", approve=True)
    assert deps.store.get_version("exp1", 2).status is Status.REJECTED


def test_state_changes_are_idempotent_and_order_safe(deps) -> None:  # type: ignore[no-untyped-def]
    v, _ = _start(deps, job_name="exp1")
    name = v.backend_job_name
    done = event(name, "Completed", "Completed",
                 FinalMetricDataList=[{"MetricName": "validation:accuracy", "Value": 0.97}],
                 BillableTimeInSeconds=120)
    record_state_change(deps, event(name, "InProgress", "Training"))
    record_state_change(deps, done)
    after = record_state_change(deps, done)
    late = record_state_change(deps, event(name, "InProgress", "Training"))
    assert late.status is Status.COMPLETED and late.revision == after.revision
    assert late.metrics == {"validation:accuracy": 0.97}
    assert late.evaluation and late.log_tail == ["done"]
    changed = [c for c in deps.chat.calls if c[0] == "changed"]
    assert [c[1][2] for c in changed] == [Status.TRAINING, Status.COMPLETED]


def test_unknown_job_events_are_dropped(deps) -> None:  # type: ignore[no-untyped-def]
    assert record_state_change(deps, event("trainbot-nope-v1-aaaa", "Completed")) is None


def test_stop_only_by_requester_or_approver(deps) -> None:  # type: ignore[no-untyped-def]
    _start(deps, job_name="exp1")
    with pytest.raises(NotAllowed, match="can stop"):
        stop_version(deps, user="U9", job="exp1")
    v = stop_version(deps, user="U1", job="exp1")
    assert v.status is Status.STOPPING and deps.compute.stopped


def test_pool_needing_approval_holds_first_launch(deps) -> None:  # type: ignore[no-untyped-def]
    v, approval = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-4"))
    assert v.status is Status.AWAITING_APPROVAL and approval and not deps.compute.launched


def test_pool_cap_queues_then_dispatches(deps) -> None:  # type: ignore[no-untyped-def]
    from bot.services.approvals import decide

    v1, a1 = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-8", job_name="a"))
    v2, a2 = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-8", job_name="b"))
    _, l1 = decide(deps, approval_id=a1.id, user="UAPPROVER", approve=True)
    _, l2 = decide(deps, approval_id=a2.id, user="UAPPROVER", approve=True)
    assert l1.backend_job_name and not l2.backend_job_name and l2.status is Status.QUEUED
    record_state_change(deps, event(l1.backend_job_name, "Completed", "Completed"))
    assert deps.store.get_version("b", 1).backend_job_name


def test_spot_refused_where_pool_disallows(deps) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="Spot"):
        _start(deps, spot=True)


def _req(**kw):  # type: ignore[no-untyped-def]
    return LaunchRequest(user=kw.pop("user", "U1"), channel="C1", **kw)


def test_huge_evaluations_are_bounded() -> None:
    from bot.services.state_changes import MAX_EVALUATION_BYTES, bounded_evaluation

    ev = {"objective": {"metric": "acc", "value": 0.5}, "task": "classification",
          "classes": [str(i) for i in range(1000)],
          "per_class": [{"class": str(i), "precision": 0.5} for i in range(1000)],
          "confusion_matrix": [[1] * 1000 for _ in range(1000)]}
    out = bounded_evaluation(ev)
    import json

    assert len(json.dumps(out)) <= MAX_EVALUATION_BYTES and out["truncated"]
    assert out["objective"]["value"] == 0.5


def test_a_spec_pydantic_refuses_is_explained_without_pydantic_words(deps: Deps) -> None:
    from bot.services.requests import LaunchRequest as Request

    with pytest.raises(InvalidInput) as err:
        start_job(deps, Request(user="U1", algorithm="toy", pool="local-cpu",
                                max_runtime_s=29 * 86400))
    text = err.value.user_text()
    assert "max_runtime_s" in text and "at most 2419200" in text
    assert "Input should be" not in text


def test_withdrawing_a_request_decides_it_and_clears_its_buttons(deps) -> None:  # type: ignore[no-untyped-def]
    from bot.domain import Decision

    _start(deps, job_name="exp1")
    v2, approval = rerun(deps, _req(user="U2"), job="exp1")

    stopped = stop_version(deps, user="U2", job="exp1", number=2)

    assert stopped.status is Status.REJECTED and stopped.failure_reason == "withdrawn by U2"
    withdrawn = deps.store.get_approval(approval.id)
    assert (withdrawn.decision, withdrawn.decided_by) == (Decision.WITHDRAWN, "U2")
    assert ("decided", (approval.id, Decision.WITHDRAWN)) in deps.chat.calls


def test_a_withdrawn_request_cannot_be_approved(deps) -> None:  # type: ignore[no-untyped-def]
    from bot.services.approvals import decide

    _start(deps, job_name="exp1")
    _, approval = rerun(deps, _req(user="U2"), job="exp1")
    stop_version(deps, user="U2", job="exp1", number=2)

    with pytest.raises(Conflict, match="already withdrawn"):
        decide(deps, approval_id=approval.id, user="UAPPROVER", approve=True)
    v2 = deps.store.get_version("exp1", 2)
    assert v2.status is Status.REJECTED and v2.approved_by is None
    assert len(deps.compute.launched) == 1


def test_a_request_whose_version_left_awaiting_is_refused_and_closed(deps) -> None:  # type: ignore[no-untyped-def]
    from bot.domain import Decision
    from bot.services.approvals import decide
    from bot.services.versions import mutate_version

    _start(deps, job_name="exp1")
    _, approval = rerun(deps, _req(user="U2"), job="exp1")
    # As older trainbots withdrew: the version rejected, the request left pending.
    mutate_version(deps.store, "exp1", 2, lambda v: v.transition(
        Status.REJECTED, at=deps.clock.now(), message="withdrawn by U2"))

    with pytest.raises(InvalidInput, match=r"no longer awaiting approval .*withdrawn by U2"):
        decide(deps, approval_id=approval.id, user="UAPPROVER", approve=True)
    assert deps.store.get_approval(approval.id).decision is Decision.WITHDRAWN
    assert deps.store.get_version("exp1", 2).approved_by is None
