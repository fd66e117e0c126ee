"""The reconciler: the scheduled safety net behind the backend's state-change events.

For every active version it compares what trainbot stored with what the backend reports:

- a backend ahead of the store (a missed or failed event) is applied through
  :func:`record_state_change`, exactly as if the event had arrived — same state machine,
  same idempotency, same card update, thread reply and announcement;
- ``TRAINING`` versions get their live progress refreshed (the chat coalesces edits);
- running versions silent for longer than ``deps.stuck_after`` are reported as stuck
  (:func:`~bot.services.stuck.is_stuck`, the rule ``/train status`` uses);
- approval requests past their deadline are expired, so their cards say so without anyone
  clicking; a request decided while its version still awaits it (a crash between the two
  writes of older trainbots) has its decision applied — an approved version launches;
- what the channel must hear but Slack didn't take (a version's outbox: the end-of-run
  announcement) is delivered again, until Slack takes it;
- launches that were lost (a version claimed a backend name the backend never heard of, or a
  queued version nobody launched) are failed or dispatched once ``grace`` has passed — the
  grace keeps the reconciler out of launches still in flight.

One version's failure never stops the others: it is logged and listed in ``errors``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from bot.domain import (
    Conflict,
    JobVersion,
    NotFound,
    Status,
    TrainingJobStateChange,
)
from bot.domain.status import can_transition
from bot.services import approvals
from bot.services.budgets import list_budgets, tell_alerts
from bot.services.context import Deps
from bot.services.costs import send_weekly_digests, warn_near_ceiling
from bot.services.launching import dispatch_queued, record_launch_failure
from bot.services.state_changes import record_state_change, refresh_progress
from bot.services.stuck import is_stuck
from bot.services.sweeps import advance
from bot.services.tuning_events import repair_backend_sweep
from bot.services.versions import deliver_outbox

__all__ = ["ReconcileSummary", "reconcile"]

log = logging.getLogger("trainbot")

DEFAULT_GRACE = timedelta(minutes=5)


@dataclass
class ReconcileSummary:
    """What one pass did; each list holds version labels (``job vN``) with a short note."""

    checked: int = 0
    repaired: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reconcile(deps: Deps, *, grace: timedelta = DEFAULT_GRACE) -> ReconcileSummary:
    """One pass over the active versions (an index query, never a scan)."""
    summary = ReconcileSummary()
    now = deps.clock.now()
    pools_with_waiting: set[str] = set()
    for version in deps.store.list_active():
        summary.checked += 1
        if (version.status is Status.QUEUED and not version.backend_job_name
                and now - version.created_at >= grace):
            pools_with_waiting.add(version.spec.pool)
        try:
            _reconcile_version(deps, version, now=now, grace=grace, summary=summary)
            warn_near_ceiling(deps, deps.store.get_version(version.job, version.number))
        except Exception:
            log.exception("reconciling %s failed", version.label)
            summary.errors.append(version.label)
    for pool in sorted(pools_with_waiting):
        try:
            summary.dispatched += [v.label for v in dispatch_queued(deps, pool)]
        except Exception:
            log.exception("dispatching queued versions of pool %s failed", pool)
            summary.errors.append(f"pool {pool}")
    for version in deps.store.list_undelivered():
        try:
            after = deliver_outbox(deps, version)
        except Exception:
            log.exception("delivering the outbox of %s failed", version.label)
            summary.errors.append(version.label)
            continue
        if not after.outbox:
            summary.delivered.append(version.label)
    try:
        summary.delivered += tell_alerts(deps, [s.budget for s in list_budgets(deps)])
        summary.delivered += [f"digest {c}" for c in send_weekly_digests(deps)]
    except Exception:
        log.exception("budget alerts or digests failed")
        summary.errors.append("spend notices")
    for sweep in deps.store.list_active_sweeps():
        try:
            after_sweep = (repair_backend_sweep(deps, sweep) if deps.tuner is not None and
                           deps.tuner.launches_trials else advance(deps, sweep.name, repair=True))
        except Exception:
            log.exception("advancing %s failed", sweep.label)
            summary.errors.append(sweep.label)
            continue
        if sweep.outbox and not after_sweep.outbox:
            summary.delivered.append(sweep.label)
    return summary


def _reconcile_version(
    deps: Deps, version: JobVersion, *, now: datetime, grace: timedelta,
    summary: ReconcileSummary,
) -> None:
    if version.status is Status.AWAITING_APPROVAL:
        _settle_request(deps, version, now=now, summary=summary)
        return
    if not version.backend_job_name or version.backend != deps.compute.name:
        return  # not launched yet (dispatch handles it), or another backend's version
    detail = deps.compute.describe(version)
    if detail is None:
        if version.status is Status.QUEUED and now - version.updated_at >= grace:
            failed = record_launch_failure(
                deps, version, "the launch was lost: the backend never received the job")
            summary.lost.append(f"{failed.label}: {failed.status.value}")
        return
    current = version
    if can_transition(version.status, detail.domain_status):
        change = TrainingJobStateChange(time=detail.last_modified, detail=detail,
                                        resources=[detail.arn] if detail.arn else [])
        current = record_state_change(deps, change) or version
        if current.status is not version.status:
            summary.repaired.append(
                f"{current.label}: {version.status.value} → {current.status.value}")
    if current.status is Status.TRAINING:
        refreshed = refresh_progress(deps, current)
        if refreshed is not current:
            summary.refreshed.append(current.label)
        current = refreshed
    if is_stuck(deps, current, now=now):
        summary.stuck.append(f"{current.label}: {current.status.value}")


def _settle_request(
    deps: Deps, version: JobVersion, *, now: datetime, summary: ReconcileSummary
) -> None:
    if not version.approval_id:
        return
    try:
        approval = deps.store.get_approval(version.approval_id)
    except NotFound:
        return  # the request is written right after the version; the next pass sees it
    if approval.decision is not None:
        after = approvals.finish_decided(deps, approval)
        if after.status is not version.status:
            summary.repaired.append(
                f"{after.label}: {version.status.value} → {after.status.value} "
                f"({approval.decision} by {approval.decided_by})")
        return
    if not approval.expired(now):
        return
    try:
        approvals.expire(deps, approval)
    except Conflict:
        return  # someone decided in the meantime: their decision stands
    summary.expired.append(f"{version.label} ({approval.id})")
