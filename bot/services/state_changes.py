"""Backend state changes (SageMaker events, local runner events) applied to versions.

Idempotent and order-safe: a duplicate event changes nothing, a late event that would move a
version backwards is ignored, and a chat failure never loses the stored change.
"""

from __future__ import annotations

import json
import logging

from bot.domain import JobVersion, Status, TrainingJobStateChange
from bot.domain.events import INTERRUPTED
from bot.ports import Results
from bot.services.context import Deps
from bot.services.costs import note_job_spend
from bot.services.launching import dispatch_queued
from bot.services.sweep_events import adopt_trial
from bot.services.sweeps import trial_changed, trial_progressed
from bot.services.versions import mutate_version, notify, tell_change

__all__ = ["ServiceEvents", "record_state_change", "refresh_progress"]

log = logging.getLogger("trainbot")


def record_state_change(deps: Deps, event: TrainingJobStateChange) -> JobVersion | None:
    """Apply one event; return the stored version, or None for a job trainbot doesn't know."""
    detail = event.detail
    found = deps.store.find_by_backend_name(detail.name)
    if found is None and detail.tuning_job_name:
        found = adopt_trial(deps, detail)  # a trial SageMaker's tuning job launched
    if found is None:
        log.warning("state change for unknown training job %s dropped", detail.name)
        return None
    target = detail.domain_status
    at = detail.last_modified or event.time or deps.clock.now()
    results = None
    if target.terminal and not found.status.terminal:
        # Fetched before the write so the stored terminal version is complete in one step.
        try:
            results = deps.compute.results(found, deps.algorithms.for_spec(found.spec))
        except Exception:
            log.exception("could not fetch results of %s", found.label)

    def apply(v: JobVersion) -> JobVersion:
        if v.status.terminal:
            return v  # final: late or duplicate events change nothing
        message = detail.failure_reason or detail.secondary_status or ""
        moved = v.transition(target, at=at, message=message)
        updates: dict[str, object] = {}
        # A newer event that doesn't move the state still says what the backend is doing
        # (a spot job's Interrupted → Starting → Training while it stays TRAINING); an
        # older one says nothing new.
        current = moved is not v or target == v.status or at >= v.updated_at
        if detail.secondary_status and moved.secondary_status != detail.secondary_status and (
            current
        ):
            updates["secondary_status"] = detail.secondary_status
            if moved is v:
                updates["updated_at"] = max(at, v.updated_at)  # a sign of life, not a stall
        interruptions = max(detail.spot_interruptions, v.spot_interruptions)
        if "secondary_status" in updates and detail.secondary_status == INTERRUPTED:
            interruptions = max(interruptions, v.spot_interruptions + 1)
        if interruptions != v.spot_interruptions:
            updates["spot_interruptions"] = interruptions
        if moved.status.terminal:
            updates.update(_terminal_fields(deps, moved, event, results))
        elif detail.final_metrics and moved.status == target:
            metrics = {m.name: m.value for m in detail.final_metrics}
            if metrics != v.metrics:
                updates["metrics"] = metrics
        return moved.model_copy(update=updates) if updates else moved

    before, after = mutate_version(deps.store, found.job, found.number, apply)
    if after.secondary_status != before.secondary_status and after.status is before.status:
        notify("card", lambda: deps.chat.progress(after))
    if after.status is not before.status:
        after = tell_change(deps, before, after, "state change")
        if after.status.terminal and after.charged_usd is not None:
            try:
                note_job_spend(deps, after)
            except Exception:  # the report's top jobs only; never the event
                log.exception("noting the spend of %s failed", after.label)
        if after.status.terminal and (before.pool_slot or before.caps):
            dispatch_queued(deps)  # its places are free: who waits for them goes
    if after.trial is not None and (after.status is not before.status or
                                    after.metrics != before.metrics):
        trial_changed(deps, after)
    return after


def _terminal_fields(deps: Deps, v: JobVersion, event: TrainingJobStateChange,
                     results: Results | None) -> dict[str, object]:
    detail = event.detail
    out: dict[str, object] = {}
    if detail.final_metrics:
        out["metrics"] = {m.name: m.value for m in detail.final_metrics}
    if detail.failure_reason and v.status is not Status.COMPLETED:
        out["failure_reason"] = detail.failure_reason
    if detail.model_uri:
        out["artifacts"] = v.artifacts.model_copy(update={"model": detail.model_uri})
    pool = deps.catalog.pools.get(v.spec.pool)
    if detail.billable_seconds is not None:
        out["billable_seconds"] = detail.billable_seconds
        if pool is not None:
            # Billable seconds are already what managed spot charges for.
            out["actual_cost_usd"] = pool.estimate_cost(detail.billable_seconds)
            trained = detail.training_seconds
            if v.spec.spot and trained is not None and trained > detail.billable_seconds:
                out["spot_saving_usd"] = pool.estimate_cost(trained - detail.billable_seconds)
    elif pool is not None and v.backend != "sagemaker":
        # Locally the machine is held from the run's start to its end: wall time.
        started = detail.start_time or v.started_at
        ended = v.ended_at or deps.clock.now()
        seconds = max(0.0, (ended - started).total_seconds()) if started else 0.0
        out["actual_cost_usd"] = pool.estimate_cost(seconds)
    if detail.training_seconds is not None:
        out["training_seconds"] = detail.training_seconds
    if detail.start_time and v.started_at is None:
        out["started_at"] = detail.start_time
    if results is not None:
        out["evaluation"] = bounded_evaluation(results.evaluation)
        out["series"] = results.series
        out["log_tail"] = results.log_tail[-30:]
        if results.series and not detail.final_metrics:
            out["metrics"] = {k: s.last for k, s in results.series.items()}
    return out


MAX_EVALUATION_BYTES = 64_000


def bounded_evaluation(ev: dict | None) -> dict | None:
    """Keep a version record well under DynamoDB's 400 KB item limit.

    Many-class evaluations lose the confusion matrix first, then per-class rows beyond 100;
    the full file stays with the run's output artifacts.
    """
    if ev is None or len(json.dumps(ev, default=str)) <= MAX_EVALUATION_BYTES:
        return ev
    trimmed = {k: v for k, v in ev.items() if k != "confusion_matrix"}
    if len(json.dumps(trimmed, default=str)) > MAX_EVALUATION_BYTES:
        trimmed["per_class"] = list(trimmed.get("per_class") or [])[:100]
        trimmed["classes"] = list(trimmed.get("classes") or [])[:100]
    if len(json.dumps(trimmed, default=str)) > MAX_EVALUATION_BYTES:
        trimmed = {k: trimmed[k] for k in ("objective", "task") if k in trimmed}
    trimmed["truncated"] = True
    return trimmed


def refresh_progress(deps: Deps, version: JobVersion) -> JobVersion:
    """Pull live progress from the backend and tell the chat (which coalesces updates)."""
    if version.status.terminal:
        return version
    algorithm = deps.algorithms.find(version.spec)
    if algorithm is None:
        return version
    progress = deps.compute.progress(version, algorithm)
    if progress is None:
        return version

    def apply(v: JobVersion) -> JobVersion:
        if v.status.terminal or v.progress == progress:
            return v
        return v.model_copy(update={"progress": progress})

    before, after = mutate_version(deps.store, version.job, version.number, apply)
    if after is not before:
        notify("progress", lambda: deps.chat.progress(after))
        if after.trial is not None:
            trial_progressed(deps, after)
    return after


class ServiceEvents:
    """The :class:`~bot.ports.EventReport` a self-supervising compute (local) reports to:
    the same service SageMaker's EventBridge events reach."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def state_changed(self, event: TrainingJobStateChange) -> None:
        record_state_change(self._deps, event)

    def progressed(self, backend_job_name: str) -> None:
        version = self._deps.store.find_by_backend_name(backend_job_name)
        if version is not None:
            refresh_progress(self._deps, version)
