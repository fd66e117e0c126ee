"""SageMaker automatic model tuning, followed: the tuning job's state changes end the sweep,
and a sweep whose events were missed or came out of order is repaired from what SageMaker
says (the reconcile's pass).

Before a sweep ends its trials are brought up to date from SageMaker (each trial's
DescribeTrainingJob applied as its state-change event would be), so the end's message never
names a best that a late trial event would have changed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.domain import BackendError, TrainingJobStateChange, TuningJobStateChange
from bot.domain.events import TuningJobDetail
from bot.domain.sweep import Sweep, SweepStatus
from bot.ports import Tuner
from bot.services.context import Deps
from bot.services.state_changes import record_state_change
from bot.services.sweep_records import end_sweep, mutate_sweep
from bot.services.sweeps import advance

__all__ = ["record_tuning_change", "repair_backend_sweep"]

log = logging.getLogger("trainbot")

_TUNING_STATUS = {"Completed": SweepStatus.COMPLETED, "Stopped": SweepStatus.STOPPED,
                  "Failed": SweepStatus.FAILED, "Stopping": SweepStatus.STOPPING}
# How long a sweep's tuning job may be unknown to SageMaker before the sweep is failed (its
# creation follows the recording of its name at once; SageMaker's reads are consistent).
BEGIN_GRACE = timedelta(minutes=5)


def record_tuning_change(deps: Deps, change: TuningJobStateChange) -> Sweep | None:
    """A SageMaker tuning job changed state: the sweep follows. Idempotent: a duplicate or
    late event can't move an ended sweep. ``BackendError`` when the trials couldn't be read
    before the end (the event is retried; the reconcile repairs it otherwise)."""
    sweep = deps.store.find_sweep_by_backend_name(change.detail.name)
    if sweep is None:
        log.warning("state change for unknown tuning job %s dropped", change.detail.name)
        return None
    return _follow(deps, sweep, change.detail)


def _follow(deps: Deps, sweep: Sweep, detail: TuningJobDetail) -> Sweep:
    target = _TUNING_STATUS.get(detail.status)
    if target is None:
        return advance(deps, sweep.name)
    if target is SweepStatus.STOPPING:
        now = deps.clock.now()
        mutate_sweep(deps, sweep.name, lambda s: s.transition(SweepStatus.STOPPING, at=now))
        return advance(deps, sweep.name)
    if sweep.status.terminal:
        return advance(deps, sweep.name)  # a late or duplicate event: the card, nothing else
    tuner = deps.tuner
    if tuner is not None:
        _sync_trials(deps, tuner, sweep)
    reason = detail.failure_reason if target is SweepStatus.FAILED else None
    return end_sweep(deps, sweep.name, target, reason=reason)


def _sync_trials(deps: Deps, tuner: Tuner, sweep: Sweep) -> None:
    """Apply every trial's current state as its event would (new trials adopted, late ends
    recorded); duplicates change nothing."""
    for detail in tuner.trial_details(sweep):
        record_state_change(deps, TrainingJobStateChange(detail=detail))


def repair_backend_sweep(deps: Deps, sweep: Sweep) -> Sweep:
    """A sweep SageMaker runs, checked against SageMaker: a tuning job that never started
    (a crash between recording its name and creating it) fails the sweep, saying so; an
    ended one ends the sweep; trials whose events were missed are recorded; a stop is asked
    again."""
    tuner = deps.tuner
    if tuner is None or not tuner.launches_trials or sweep.status.terminal or \
            sweep.status is SweepStatus.AWAITING_APPROVAL:
        return advance(deps, sweep.name)
    try:
        detail = tuner.describe(sweep)
        if detail is None:
            if deps.clock.now() - (sweep.updated_at or sweep.created_at) < BEGIN_GRACE:
                return advance(deps, sweep.name)
            if sweep.status is SweepStatus.STOPPING:
                return end_sweep(deps, sweep.name, SweepStatus.STOPPED)
            return end_sweep(deps, sweep.name, SweepStatus.FAILED, reason=(
                "its SageMaker tuning job never started (trainbot stopped between naming and "
                "creating it); start the sweep again"))
        if detail.status in _TUNING_STATUS and detail.status != "Stopping":
            return _follow(deps, sweep, detail)
        if sweep.status is SweepStatus.STOPPING:
            tuner.stop(sweep)  # asked again: idempotent
        counted = detail.training_job_counters
        seen = len([v for v in deps.store.list_versions(sweep.name) if v.trial is not None])
        if counted is not None and counted.total > seen:
            _sync_trials(deps, tuner, sweep)
    except BackendError as exc:
        log.warning("could not check %s against SageMaker: %s", sweep.label, exc.message)
    return advance(deps, sweep.name)
