"""The reconciler over fakes: repairs, progress, stuck versions, expiry, lost launches."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain import (
    Algorithm,
    BackendError,
    Decision,
    JobSpec,
    JobVersion,
    Progress,
    Status,
    StatusChange,
    TrainingJob,
    TrainingJobDetail,
)
from bot.services.context import Deps
from bot.services.reconcile import reconcile
from bot.services.requests import LaunchRequest, start_job
from bot.services.state_changes import record_state_change
from tests.fakes import FakeCompute, event

STUCK = timedelta(minutes=30)


class DescribingCompute(FakeCompute):
    """A FakeCompute whose backend view (describe) and live progress the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.details: dict[str, TrainingJobDetail] = {}
        self.live: Progress | None = None
        self.broken: set[str] = set()

    def describe(self, version: JobVersion) -> TrainingJobDetail | None:
        if version.backend_job_name in self.broken:
            raise BackendError("SageMaker is having a day")
        return self.details.get(version.backend_job_name or "")

    def progress(self, version: JobVersion, algorithm: Algorithm) -> Progress | None:
        return self.live

    def report(self, version: JobVersion, status: str, secondary: str, **extra: object) -> None:
        name = version.backend_job_name or ""
        self.details[name] = TrainingJobDetail.model_validate({
            "TrainingJobName": name, "TrainingJobStatus": status,
            "SecondaryStatus": secondary, **extra})


@pytest.fixture
def compute(deps: Deps) -> DescribingCompute:
    deps.compute = DescribingCompute()
    return deps.compute  # type: ignore[return-value]


def _start(deps: Deps, name: str, *, pool: str = "local-cpu") -> JobVersion:
    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool=pool,
                                               channel="C1", job_name=name))
    return version


def _changes(deps: Deps) -> list[tuple[str, Status]]:
    return [(c[1][0], c[1][2]) for c in deps.chat.calls if c[0] == "changed"]  # type: ignore[attr-defined, index]


def test_a_missed_completion_is_applied_like_the_event(deps: Deps,
                                                        compute: DescribingCompute) -> None:
    v = _start(deps, "exp1")
    compute.report(v, "Completed", "Completed", BillableTimeInSeconds=90,
                   FinalMetricDataList=[{"MetricName": "validation:accuracy", "Value": 0.9}])
    summary = reconcile(deps)
    assert summary.repaired == ["exp1 v1: QUEUED → COMPLETED"]
    done = deps.store.get_version("exp1", 1)
    assert done.status is Status.COMPLETED and done.billable_seconds == 90
    assert done.metrics == {"validation:accuracy": 0.9}
    assert _changes(deps) == [("exp1 v1", Status.COMPLETED)]
    assert reconcile(deps).checked == 0


def test_a_backend_that_is_not_ahead_changes_nothing(deps: Deps,
                                                     compute: DescribingCompute) -> None:
    v = _start(deps, "exp1")
    record_state_change(deps, event(v.backend_job_name or "", "InProgress", "Training"))
    compute.report(v, "InProgress", "Downloading")  # a stale view must not move it back
    before = deps.store.get_version("exp1", 1)
    summary = reconcile(deps)
    assert summary.repaired == [] and summary.checked == 1
    assert deps.store.get_version("exp1", 1).revision == before.revision


def test_training_versions_get_live_progress(deps: Deps, compute: DescribingCompute) -> None:
    v = _start(deps, "exp1")
    record_state_change(deps, event(v.backend_job_name or "", "InProgress", "Training"))
    compute.report(v, "InProgress", "Training")
    compute.live = Progress(current=3, total=10, metrics={"train:loss": 0.4},
                            updated_at=deps.clock.now())
    summary = reconcile(deps)
    assert summary.refreshed == ["exp1 v1"]
    assert deps.store.get_version("exp1", 1).progress == compute.live
    assert ("progress", "exp1 v1") in deps.chat.calls  # type: ignore[attr-defined]
    assert reconcile(deps).refreshed == []  # same progress: no edit


def test_silent_versions_are_flagged_stuck(deps: Deps, compute: DescribingCompute) -> None:
    deps.stuck_after = STUCK
    v = _start(deps, "exp1")
    record_state_change(deps, event(v.backend_job_name or "", "InProgress", "Training"))
    compute.report(v, "InProgress", "Training")
    assert reconcile(deps).stuck == []
    deps.clock.advance(minutes=31)  # type: ignore[attr-defined]
    assert reconcile(deps).stuck == ["exp1 v1: TRAINING"]


def test_overdue_approvals_are_expired_and_the_version_rejected(
        deps: Deps, compute: DescribingCompute) -> None:
    v = _start(deps, "big", pool="gpu-4")
    assert v.status is Status.AWAITING_APPROVAL
    assert reconcile(deps).expired == []
    deps.clock.advance(minutes=deps.policy.approval_ttl_minutes + 1)  # type: ignore[attr-defined]
    summary = reconcile(deps)
    assert summary.expired == [f"big v1 ({v.approval_id})"]
    assert deps.store.get_version("big", 1).status is Status.REJECTED
    assert deps.store.get_approval(v.approval_id or "").decision is Decision.EXPIRED
    assert ("decided", (v.approval_id, Decision.EXPIRED)) in deps.chat.calls  # type: ignore[attr-defined]
    assert not compute.launched


def test_a_launch_the_backend_never_received_fails_after_the_grace(
        deps: Deps, compute: DescribingCompute) -> None:
    _start(deps, "ghost")  # describe() knows nothing of it
    assert reconcile(deps).lost == []  # maybe still in flight
    deps.clock.advance(minutes=6)  # type: ignore[attr-defined]
    assert reconcile(deps).lost == ["ghost v1: FAILED"]
    lost = deps.store.get_version("ghost", 1)
    assert lost.status is Status.FAILED and "lost" in (lost.failure_reason or "")


def test_a_queued_version_nobody_launched_is_dispatched(deps: Deps,
                                                        compute: DescribingCompute) -> None:
    now = deps.clock.now()
    spec = JobSpec(algorithm="toy", algorithm_version="1.0.0", pool="local-cpu")
    draft = JobVersion(job="orphan", number=0, spec=spec, requested_by="U1",
                       status=Status.QUEUED, created_at=now, updated_at=now, channel="C1",
                       history=[StatusChange(status=Status.QUEUED, at=now)])
    deps.store.add_version(draft, new_job=TrainingJob(name="orphan", owner="U1", created_at=now))
    assert reconcile(deps).dispatched == []
    deps.clock.advance(minutes=6)  # type: ignore[attr-defined]
    assert reconcile(deps).dispatched == ["orphan v1"]
    assert [v.job for v in compute.launched] == ["orphan"]


def test_one_failing_version_does_not_stop_the_others(deps: Deps,
                                                       compute: DescribingCompute) -> None:
    bad, good = _start(deps, "bad"), _start(deps, "good")
    compute.broken.add(bad.backend_job_name or "")
    compute.report(good, "Failed", "Failed", FailureReason="OOM")
    summary = reconcile(deps)
    assert summary.errors == ["bad v1"]
    assert summary.repaired == ["good v1: QUEUED → FAILED"]
    assert deps.store.get_version("good", 1).failure_reason == "OOM"


@pytest.mark.parametrize(("decision", "status"), [
    (Decision.APPROVED, Status.QUEUED), (Decision.REJECTED, Status.REJECTED)])
def test_a_decided_request_whose_version_still_awaits_it_is_applied(
        deps: Deps, compute: DescribingCompute, decision: Decision, status: Status) -> None:
    v = _start(deps, "stranded", pool="gpu-4")
    # What a crash between the two writes of older trainbots left: decided, never applied.
    deps.store.decide_approval(v.approval_id or "", decision, by="UAPPROVER",
                               at=deps.clock.now())
    summary = reconcile(deps)
    after = deps.store.get_version("stranded", 1)
    assert summary.repaired == [
        f"stranded v1: AWAITING_APPROVAL → {after.status.value} ({decision} by UAPPROVER)"]
    assert after.status is status
    if decision is Decision.APPROVED:
        assert after.approved_by == "UAPPROVER" and after.backend_job_name
        assert [x.job for x in compute.launched] == ["stranded"]
    else:
        assert after.failure_reason == "rejected by UAPPROVER" and not compute.launched
    assert ("decided", (v.approval_id, decision)) in deps.chat.calls  # type: ignore[attr-defined]
    assert reconcile(deps).repaired == []  # once
