"""The sweep service against the fakes: trials as versions, exactly once, ends told once."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from bot.adapters.optuna_tuner import OptunaTuner
from bot.catalog import Catalog, load_pools
from bot.config import RerunApproval
from bot.domain import (
    Conflict,
    InvalidInput,
    MetricSummary,
    NotAllowed,
    Status,
    TuningJobStateChange,
)
from bot.domain.sweep import Sweep, SweepStatus, Trial
from bot.ports import Results
from bot.services import sweeps, tuning_events
from bot.services.authz import Policy
from bot.services.context import Deps
from bot.services.reconcile import reconcile
from bot.services.state_changes import record_state_change, refresh_progress
from tests.fakes import FakeClock, FakeCompute, MemoryStore, RecordingChat, event
from tests.unit.conftest import ALGO

OBJECTIVE = "validation:accuracy"


def _deps(tuner: Any = None, **policy: Any) -> Deps:
    return Deps(store=MemoryStore(), compute=FakeCompute(),
                catalog=Catalog(algorithms={"toy": ALGO}, pools=load_pools()),
                clock=FakeClock(),
                policy=Policy(approvers=["UAPPROVER"], admins=["UADMIN"],
                              rerun_approval=RerunApproval.NEVER, **policy),
                chat=RecordingChat(), tuner=tuner or OptunaTuner())


def _request(**kw: Any) -> sweeps.SweepRequest:
    base: dict[str, Any] = {"user": "U1", "algorithm": "toy", "channel": "C1",
                            "assignments": {"lr": "0.001..1:log", "optimizer": "adam|sgd",
                                            "epochs": "5"},
                            "trials": 5, "parallel": 2, "name": "sw", "pool": "local-cpu"}
    return sweeps.SweepRequest(**(base | kw))


def _active(deps: Deps) -> list:
    return [v for v in deps.store.list_versions("sw") if not v.status.terminal]


def _finish(deps: Deps, version: Any, value: float, status: str = "Completed") -> None:
    record_state_change(deps, event(version.backend_job_name, status, FinalMetricDataList=[
        {"MetricName": OBJECTIVE, "Value": value}]))


def _calls(deps: Deps, kind: str) -> list:
    return [c for c in deps.chat.calls if c[0] == kind]  # type: ignore[attr-defined]


def test_a_sweep_launches_its_trials_as_versions_and_ends_told_once() -> None:
    deps = _deps()
    sweep = sweeps.start_sweep(deps, _request())
    assert sweep.status is SweepStatus.RUNNING and sweep.message_ts == "5.1"
    assert [v.trial for v in deps.store.list_versions("sw")] == [0, 1]  # parallel 2
    value = 0.5
    while _active(deps):
        version = _active(deps)[0]
        value += 0.05
        _finish(deps, version, value)
    versions = deps.store.list_versions("sw")
    assert sorted(v.trial for v in versions) == [0, 1, 2, 3, 4]
    assert all(v.spec.hyperparameters["epochs"] == 5 for v in versions)  # fixed k=v
    # The sweep's channel (for caps and spend), but no card or announcement of their own.
    assert all(v.channel == "C1" and not v.outbox and not v.message_ts
               and v.request_key == f"sweep:sw:trial:{v.trial}" for v in versions)
    done = deps.store.get_sweep("sw")
    assert done.status is SweepStatus.COMPLETED and done.outbox == []
    assert _calls(deps, "sweep ended") == [("sweep ended", ("sw", SweepStatus.COMPLETED))]
    # Each trial better than the last: each a new best, each told once — but the last one,
    # which ended the sweep: the end's message names the best.
    assert [c[1][1] for c in _calls(deps, "sweep new best")] == [0, 1, 2, 3]
    assert len(deps.compute.launched) == 5  # type: ignore[attr-defined]


def test_concurrent_advances_create_each_trial_once() -> None:
    deps = _deps()
    sweeps.start_sweep(deps, _request(trials=6, parallel=3))
    for version in list(_active(deps)):
        _finish(deps, version, 0.7)
    barrier = threading.Barrier(6)

    def go() -> None:
        barrier.wait()
        sweeps.advance(deps, "sw")

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trials = [v.trial for v in deps.store.list_versions("sw")]
    assert sorted(trials) == sorted(set(trials)) and len(trials) == 6


def test_a_retried_request_starts_nothing_new() -> None:
    deps = _deps()
    first = sweeps.start_sweep(deps, _request(request_key="T1:trig"))
    again = sweeps.start_sweep(deps, _request(request_key="T1:trig"))
    assert again.name == first.name and len(deps.store.list_versions("sw")) == 2
    with pytest.raises(Conflict, match="already exists"):
        sweeps.start_sweep(deps, _request(request_key="T1:other"))


def test_bad_requests_are_refused_before_anything_is_created() -> None:
    deps = _deps()
    with pytest.raises(InvalidInput, match="`lr`"):
        sweeps.start_sweep(deps, _request(assignments={"lr": "0.5..20"}))
    with pytest.raises(InvalidInput, match="nothing to search"):
        sweeps.start_sweep(deps, _request(assignments={"lr": "0.5"}))
    with pytest.raises(NotAllowed):
        sweeps.start_sweep(_deps(channels=["CALLOWED"]), _request())
    assert deps.store.list_jobs() == []


def test_stop_sweep_stops_the_running_trials_and_ends_stopped() -> None:
    deps = _deps()
    sweeps.start_sweep(deps, _request())
    with pytest.raises(NotAllowed, match="can stop it"):
        sweeps.stop_sweep(deps, user="USOMEONE", name="sw")
    stopping = sweeps.stop_sweep(deps, user="U1", name="sw")
    assert stopping.status is SweepStatus.STOPPING
    running = _active(deps)
    assert len(deps.compute.stopped) == 2 and len(running) == 2  # type: ignore[attr-defined]
    for version in running:
        record_state_change(deps, event(version.backend_job_name, "Stopped"))
    ended = deps.store.get_sweep("sw")
    assert ended.status is SweepStatus.STOPPED and ended.stopped_by == "U1"
    assert len(deps.store.list_versions("sw")) == 2  # nothing launched after the stop


def test_an_undelivered_end_is_kept_and_the_reconcile_tells_it_once() -> None:
    deps = _deps()
    sweeps.start_sweep(deps, _request(trials=2))
    deps.chat.refuse_announcements = 1  # type: ignore[attr-defined]
    for version in list(_active(deps)):
        _finish(deps, version, 0.8)
    assert deps.store.get_sweep("sw").outbox == ["ended"]
    assert _calls(deps, "sweep ended") == []
    summary = reconcile(deps)
    assert "sweep sw" in summary.delivered
    reconcile(deps)
    assert len(_calls(deps, "sweep ended")) == 1
    assert deps.store.list_active_sweeps() == []


def test_a_trial_far_below_the_others_is_pruned() -> None:
    deps = _deps()
    sweeps.start_sweep(deps, _request(trials=6, parallel=1))
    good = MetricSummary(first=0.8, last=0.95, min=0.8, max=0.95, count=3,
                         points=[(1, 0.8), (2, 0.9), (3, 0.95)])
    compute: FakeCompute = deps.compute  # type: ignore[assignment]
    compute.results_value = Results(series={OBJECTIVE: good})
    for _ in range(3):
        _finish(deps, _active(deps)[0], 0.95)
    weak = _active(deps)[0]
    compute.results_value = Results(series={OBJECTIVE: MetricSummary(
        first=0.1, last=0.2, min=0.1, max=0.2, count=2, points=[(1, 0.1), (2, 0.2)])})
    sweeps.trial_progressed(deps, deps.store.get_version("sw", weak.number))
    pruned = deps.store.get_version("sw", weak.number)
    assert pruned.pruned and pruned.status is Status.STOPPING
    assert weak.backend_job_name in compute.stopped
    assert "pruned at step 2" in pruned.history[-1].message
    record_state_change(deps, event(weak.backend_job_name, "Stopped"))
    trials = sweeps.sweep_trials(deps, deps.store.get_sweep("sw"))
    assert trials[3].state == "pruned" and len(_active(deps)) == 1  # the next one runs


def test_progress_of_a_trial_feeds_the_pruner() -> None:
    deps = _deps()
    sweeps.start_sweep(deps, _request(trials=2, parallel=1))
    version = _active(deps)[0]
    refresh_progress(deps, version)  # FakeCompute reports no progress: nothing happens
    assert not deps.store.get_version("sw", version.number).pruned


class _BackendTuner:
    """A tuner whose backend runs the trials (as SageMaker's does)."""

    name = "backend"
    launches_trials = True

    def __init__(self) -> None:
        self.begun: list[str] = []
        self.stopped: list[str] = []
        self.trials: list[Any] = []  # what DescribeTrainingJob says of each trial
        self.state: Any = None  # what DescribeHyperParameterTuningJob says

    def describe(self, sweep: Sweep) -> Any:
        return self.state

    def trial_details(self, sweep: Sweep) -> list:
        return list(self.trials)

    def begin(self, sweep: Sweep, algorithm: Any, pool: Any, backend_name: str) -> None:
        assert sweep.backend_name == backend_name  # recorded before the call
        self.begun.append(backend_name)

    def suggest(self, sweep: Sweep, trials: Sequence[Trial]) -> dict:
        raise AssertionError("never asked")

    def should_prune(self, sweep: Sweep, trials: Sequence[Trial], trial: Trial) -> bool:
        raise AssertionError("never asked")

    def stop(self, sweep: Sweep) -> None:
        self.stopped.append(sweep.backend_name or "")


def _tuning(name: str, status: str) -> TuningJobStateChange:
    return TuningJobStateChange.model_validate({
        "detail-type": "SageMaker HyperParameter Tuning Job State Change",
        "source": "aws.sagemaker",
        "detail": {"HyperParameterTuningJobName": name,
                   "HyperParameterTuningJobStatus": status}})


def test_a_backend_search_records_its_trials_from_their_events() -> None:
    tuner = _BackendTuner()
    deps = _deps(tuner)
    sweep = sweeps.start_sweep(deps, _request(trials=3))
    tuning = sweep.backend_name
    assert tuning and tuner.begun == [tuning] and tuning.startswith("trainbot-sw-")
    assert deps.store.list_versions("sw") == []  # the backend launches the trials
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{tuning}"
    trial = f"{tuning}-002-0a1b2c3d"
    params = {"lr": "0.0123", "optimizer": '"sgd"', "epochs": "5",
              "_tuning_objective_metric": OBJECTIVE}
    for status in ("InProgress", "InProgress", "Completed"):
        record_state_change(deps, event(trial, status, "Training", TuningJobArn=arn,
                                        HyperParameters=params, FinalMetricDataList=[
                                            {"MetricName": OBJECTIVE, "Value": 0.9}]))
    versions = deps.store.list_versions("sw")
    assert len(versions) == 1 and versions[0].trial == 1
    assert versions[0].status is Status.COMPLETED
    hyper = versions[0].spec.hyperparameters
    assert hyper["lr"] == 0.0123 and hyper["optimizer"] == "sgd" and hyper["epochs"] == 5
    record_state_change(deps, event("trainbot-other-001-0a1b2c3d", "InProgress",
                                    TuningJobArn=arn.replace(tuning, "trainbot-unknown-1")))
    assert len(deps.store.list_versions("sw")) == 1  # another tuning job's trial: dropped
    sweeps.stop_sweep(deps, user="UAPPROVER", name="sw")
    assert tuner.stopped == [tuning]
    ended = tuning_events.record_tuning_change(deps, _tuning(tuning, "Stopped"))
    assert ended is not None and ended.status is SweepStatus.STOPPED
    assert _calls(deps, "sweep ended") == [("sweep ended", ("sw", SweepStatus.STOPPED))]
    assert tuning_events.record_tuning_change(deps, _tuning("trainbot-nope-1", "Completed")) is None


def test_a_sweep_from_a_version_keeps_what_it_ran() -> None:
    from bot.services.requests import LaunchRequest, start_job

    deps = _deps()
    base, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", channel="C1",
                                            params={"epochs": 7, "optimizer": "sgd"},
                                            job_name="digits", pool="local-cpu"))
    _finish(deps, deps.store.get_version("digits", 1), 0.9)
    sweep = sweeps.start_sweep(deps, _request(algorithm=None, from_job="digits",
                                              assignments={"lr": "0.01..0.1"}))
    assert sweep.origin == "digits v1"
    assert sweep.spec.fixed["epochs"] == 7 and sweep.spec.fixed["optimizer"] == "sgd"
    assert base.spec.pool == sweep.spec.pool


# --- approval of a whole sweep -----------------------------------------------------------------


def _awaiting(deps: Deps) -> Sweep:
    sweep = sweeps.start_sweep(deps, _request(pool="gpu-4"))  # gpu-4 requires approval
    assert sweep.status is SweepStatus.AWAITING_APPROVAL and sweep.approval_id
    assert deps.store.list_versions("sw") == []  # nothing launches before the OK
    return sweep


def test_a_sweep_on_an_approval_pool_waits_for_one_decision_for_all_its_trials() -> None:
    deps = _deps()
    sweep = _awaiting(deps)
    approval = deps.store.get_approval(sweep.approval_id or "")
    assert approval.sweep and approval.version == 0 and approval.job == "sw"
    assert "requires approval" in approval.reason and "for 5 trials" in approval.reason
    assert (approval.channel, approval.message_ts) == ("C1", "5.1")  # the sweep's card
    with pytest.raises(NotAllowed, match="Only approvers"):
        sweeps.decide_sweep(deps, approval_id=approval.id, user="U1", approve=True)
    decided, running = sweeps.decide_sweep(deps, approval_id=approval.id, user="UAPPROVER",
                                           approve=True)
    assert decided.decided_by == "UAPPROVER" and running.status is SweepStatus.RUNNING
    assert running.approved_by == "UAPPROVER"
    versions = deps.store.list_versions("sw")
    assert [v.trial for v in versions] == [0, 1]
    assert all(v.status is not Status.AWAITING_APPROVAL and v.approved_by == "UAPPROVER"
               for v in versions)
    with pytest.raises(Conflict, match="already approved"):
        sweeps.decide_sweep(deps, approval_id=approval.id, user="UADMIN", approve=False)


def test_a_rejected_sweep_ends_without_a_trial_and_says_why() -> None:
    deps = _deps()
    sweep = _awaiting(deps)
    _, ended = sweeps.decide_sweep(deps, approval_id=sweep.approval_id or "",
                                   user="UAPPROVER", approve=False, note="too big")
    assert ended.status is SweepStatus.REJECTED
    assert ended.failure_reason == "rejected by UAPPROVER: too big"
    assert _calls(deps, "sweep ended") == [("sweep ended", ("sw", SweepStatus.REJECTED))]
    assert deps.store.list_versions("sw") == []


def test_stopping_a_sweep_that_awaits_approval_withdraws_the_request() -> None:
    deps = _deps()
    sweep = _awaiting(deps)
    withdrawn = sweeps.stop_sweep(deps, user="U1", name="sw")
    assert withdrawn.status is SweepStatus.REJECTED and "withdrawn by U1" in (
        withdrawn.failure_reason or "")
    with pytest.raises(Conflict, match="already withdrawn"):
        sweeps.decide_sweep(deps, approval_id=sweep.approval_id or "", user="UAPPROVER",
                            approve=True)


def test_the_reconcile_expires_a_sweeps_request_and_finishes_a_half_made_decision() -> None:
    from datetime import timedelta

    from bot.domain import Decision

    deps = _deps()
    _awaiting(deps)
    deps.clock.advance(days=3)  # type: ignore[attr-defined]
    reconcile(deps)
    expired = deps.store.get_sweep("sw")
    assert expired.status is SweepStatus.REJECTED
    assert expired.failure_reason == "the approval request expired"

    other = _deps()
    sweep = _awaiting(other)
    # A crash between the two writes: the request decided, the sweep still waiting.
    other.store.decide_approval(sweep.approval_id or "", Decision.APPROVED, by="UAPPROVER",
                                at=other.clock.now() + timedelta(seconds=1))
    reconcile(other)
    assert other.store.get_sweep("sw").status is SweepStatus.RUNNING
    assert len(other.store.list_versions("sw")) == 2


def _trial_detail(tuning: str, n: int, status: str, value: float, lr: str) -> Any:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{tuning}"
    return event(f"{tuning}-{n:03d}-0a1b2c3d", status, TuningJobArn=arn,
                 HyperParameters={"lr": lr, "optimizer": '"adam"', "epochs": "5"},
                 FinalMetricDataList=[{"MetricName": OBJECTIVE, "Value": value}]).detail


def test_a_tuning_job_that_ends_before_its_last_trials_event_is_read_first() -> None:
    """EventBridge doesn't order events: the channel hears the best SageMaker found, not the
    best of the trial events that happened to arrive first."""
    tuner = _BackendTuner()
    deps = _deps(tuner)
    tuning = sweeps.start_sweep(deps, _request(trials=2)).backend_name or ""
    first = _trial_detail(tuning, 1, "Completed", 0.80, "0.01")
    record_state_change(deps, event(first.name, "Completed", TuningJobArn=first.tuning_job_arn,
                                    HyperParameters=first.hyperparameters,
                                    FinalMetricDataList=[{"MetricName": OBJECTIVE,
                                                          "Value": 0.80}]))
    tuner.trials = [first, _trial_detail(tuning, 2, "Completed", 0.95, "0.2")]
    ended = tuning_events.record_tuning_change(deps, _tuning(tuning, "Completed"))
    assert ended is not None and ended.status is SweepStatus.COMPLETED
    trials = sweeps.sweep_trials(deps, ended)
    assert [(t.number, t.state, t.objective) for t in trials] == [
        (0, "completed", 0.80), (1, "completed", 0.95)]
    assert _calls(deps, "sweep ended") == [("sweep ended", ("sw", SweepStatus.COMPLETED))]
    # The late event of the second trial changes nothing now.
    late = tuner.trials[1]
    record_state_change(deps, event(late.name, "Completed", TuningJobArn=late.tuning_job_arn,
                                    HyperParameters=late.hyperparameters))
    assert len(deps.store.list_versions("sw")) == 2
    assert len(_calls(deps, "sweep ended")) == 1


def test_the_reconcile_repairs_a_sweep_whose_events_were_missed() -> None:

    from bot.domain import TuningJobDetail

    tuner = _BackendTuner()
    deps = _deps(tuner)
    tuning = sweeps.start_sweep(deps, _request(trials=2)).backend_name or ""
    tuner.state = TuningJobDetail.model_validate({
        "HyperParameterTuningJobName": tuning, "HyperParameterTuningJobStatus": "InProgress",
        "TrainingJobStatusCounters": {"Completed": 1, "InProgress": 1}})
    tuner.trials = [_trial_detail(tuning, 1, "Completed", 0.7, "0.01")]
    reconcile(deps)
    assert [v.trial for v in deps.store.list_versions("sw")] == [0]  # the missed trial
    tuner.state = tuner.state.model_copy(update={"status": "Completed"})
    reconcile(deps)
    assert deps.store.get_sweep("sw").status is SweepStatus.COMPLETED

    lost = _BackendTuner()
    other = _deps(lost)
    sweeps.start_sweep(other, _request(trials=2))  # the tuning job's creation never happened
    reconcile(other)
    assert other.store.get_sweep("sw").status is SweepStatus.RUNNING  # within the grace
    other.clock.advance(minutes=10)  # type: ignore[attr-defined]
    reconcile(other)
    failed = other.store.get_sweep("sw")
    assert failed.status is SweepStatus.FAILED and "never started" in (
        failed.failure_reason or "")


def test_a_trial_sagemaker_stopped_early_counts_as_pruned() -> None:
    tuner = _BackendTuner()
    deps = _deps(tuner)
    tuning = sweeps.start_sweep(deps, _request(trials=2)).backend_name or ""
    detail = _trial_detail(tuning, 1, "Stopped", 0.4, "0.01")
    record_state_change(deps, event(detail.name, "Stopped", TuningJobArn=detail.tuning_job_arn,
                                    HyperParameters=detail.hyperparameters))
    [trial] = sweeps.sweep_trials(deps, deps.store.get_sweep("sw"))
    assert trial.state == "pruned"


def test_hyperparameters_sagemaker_json_encodes_are_read_back() -> None:
    tuner = _BackendTuner()
    deps = _deps(tuner)
    tuning = sweeps.start_sweep(deps, _request(
        trials=2, assignments={"lr": "0.01..0.1", "optimizer": "adam|sgd"})).backend_name or ""
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{tuning}"
    record_state_change(deps, event(f"{tuning}-001-0a1b2c3d", "InProgress", TuningJobArn=arn,
                                    HyperParameters={"lr": "0.05", "optimizer": '"sgd"'}))
    record_state_change(deps, event(f"{tuning}-002-0a1b2c3d", "InProgress", TuningJobArn=arn,
                                    HyperParameters={"lr": "7", "optimizer": '"sgd"'}))
    versions = deps.store.list_versions("sw")  # the second is out of range: dropped, logged
    assert [(v.trial, v.spec.hyperparameters["optimizer"]) for v in versions] == [(0, "sgd")]
