"""Domain objects as JSON-ready data: what `trainbot --json …` prints.

These shapes are a contract for scripts (documented in the README): fields are added, never
renamed or removed. Values are plain JSON — strings, numbers, booleans, null, lists, objects;
times are ISO 8601 strings. No Slack markup ever appears here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.domain import Approval, JobVersion, ModelVersion
from bot.domain.algorithm import Algorithm
from bot.domain.cost import CostReport, CostRow
from bot.domain.lineage import Lineage
from bot.domain.pool import ResourcePool
from bot.domain.preset import Preset
from bot.domain.sweep import Sweep, Trial, best, counts
from bot.services.algorithms import AlgorithmOf
from bot.services.queries import StatusOverview, VersionDiff

if TYPE_CHECKING:
    from bot.services.budgets import BudgetStanding

__all__ = [
    "algorithm_data",
    "approval_data",
    "budgets_data",
    "cost_report_data",
    "diff_data",
    "lineage_data",
    "model_data",
    "model_groups_data",
    "objective_data",
    "pool_data",
    "preset_data",
    "status_data",
    "sweep_data",
    "version_data",
    "version_row",
]

JSON = dict[str, Any]


def _time(t: Any) -> str | None:
    return t.isoformat() if t is not None else None


def pool_data(pool: ResourcePool) -> JSON:
    return pool.model_dump(mode="json") | {"is_gpu": pool.is_gpu, "total_gpus": pool.total_gpus}


def algorithm_data(algo: Algorithm) -> JSON:
    """The manifest's fields, then what says where it comes from: ``custom`` (false for a
    preset) and, for a team's own algorithm, ``owner``, ``digest`` (sha256 of its source),
    ``kind`` (``script`` or ``image``), ``image`` and ``registered_at`` (null for presets)."""
    out = algo.model_dump(mode="json", exclude={"source"})
    src = algo.source
    out |= {
        "custom": src is not None,
        "owner": src.owner if src else None,
        "digest": src.digest if src else None,
        "kind": src.kind if src else "preset",
        "image": src.image if src else None,
        "registered_at": _time(src.registered_at) if src else None,
    }
    return out


def objective_data(v: JobVersion, algorithm_of: AlgorithmOf) -> JSON | None:
    """The algorithm's objective metric and this version's value of it (None if not reported).
    ``None`` when the algorithm the version ran can't be found any more."""
    algo = algorithm_of(v.spec)
    if algo is None:
        return None
    return {"metric": algo.objective.metric, "goal": algo.objective.goal,
            "value": v.metrics.get(algo.objective.metric)}


def version_row(v: JobVersion, algorithm_of: AlgorithmOf) -> JSON:
    """One line of `trainbot versions`: who, what, how it ended, the objective."""
    return {
        "job": v.job, "number": v.number, "label": v.label, "parent": v.parent,
        "status": v.status.value, "requested_by": v.requested_by,
        "algorithm": v.spec.algorithm, "pool": v.spec.pool, "preset": v.spec.preset,
        "hyperparameters": dict(v.spec.hyperparameters),
        "created_at": _time(v.created_at), "started_at": _time(v.started_at),
        "ended_at": _time(v.ended_at),
        "objective": objective_data(v, algorithm_of), "metrics": dict(v.metrics),
        "failure_reason": v.failure_reason,
        "estimated_cost_usd": v.estimated_cost_usd, "actual_cost_usd": v.actual_cost_usd,
        "trial": v.trial, "pruned": v.pruned,
        "estimated_spot_cost_usd": v.estimated_spot_cost_usd,
        "spot_saving_usd": v.spot_saving_usd, "queue_reason": v.queue_reason,
    }


def version_data(v: JobVersion, algorithm_of: AlgorithmOf, *, links: Any = None,
                 approval: Approval | None = None) -> JSON:
    """The whole version (every stored field) plus its objective, links and approval."""
    out = v.model_dump(mode="json")
    out["label"] = v.label
    out["objective"] = objective_data(v, algorithm_of)
    if links is not None:
        out["links"] = dict(vars(links))
    if approval is not None:
        out["approval"] = approval_data(approval)
    return out


def approval_data(ap: Approval) -> JSON:
    return ap.model_dump(mode="json")


def preset_data(p: Preset) -> JSON:
    return p.model_dump(mode="json")


def status_data(o: StatusOverview, algorithm_of: AlgorithmOf) -> JSON:
    def rows(vs: list[JobVersion]) -> list[JSON]:
        return [version_row(v, algorithm_of) for v in vs]

    return {
        "now": _time(o.now), "running": rows(o.running), "queued": rows(o.queued),
        "awaiting_approval": rows(o.awaiting), "failed_recent": rows(o.failed_recent),
        "stuck": rows(o.stuck), "gpus_in_use": o.gpus_in_use,
        "gpus_by_pool": dict(o.gpus_by_pool),
        "sweeps": [sweep_data(sw, trials) for sw, trials in o.sweeps],
    }


def diff_data(d: VersionDiff) -> JSON:
    return {
        "job": d.b.job, "a": d.a.number, "b": d.b.number,
        "changes": [{"field": k, "a": a, "b": b} for k, (a, b) in d.changes.items()],
        "metrics": [{"name": m.name, "a": m.a, "b": m.b, "better": m.better}
                    for m in d.metrics],
    }


def lineage_data(lineage: Lineage) -> JSON:
    return lineage.model_dump(mode="json")


def model_data(m: ModelVersion) -> JSON:
    """One model version: what was registered, where it came from, its approval."""
    return {
        "group": m.group, "number": m.number, "label": m.label, "job": m.job,
        "version": m.version, "status": m.status.value,
        "objective": {"metric": m.objective_metric, "value": m.objective_value},
        "metrics": dict(m.metrics), "artifact": m.artifact, "image": m.image,
        "algorithm": m.algorithm, "algorithm_version": m.algorithm_version,
        "algorithm_digest": m.algorithm_digest, "lineage": dict(m.lineage),
        "registered_by": m.registered_by, "registered_at": _time(m.registered_at),
        "decided_by": m.decided_by, "decided_at": _time(m.decided_at), "note": m.note,
        "package_arn": m.package_arn,
    }


def model_groups_data(groups: dict[str, list[ModelVersion]]) -> list[JSON]:
    return [{"group": g, "versions": [model_data(m) for m in versions]}
            for g, versions in groups.items()]


def sweep_data(sweep: Sweep, trials: list[Trial]) -> JSON:
    """A sweep: its spec, status and backend, every trial (number, version, parameters,
    state, objective) and the best one."""
    top = best(sweep.spec, trials)
    c = counts(trials)
    return {
        "name": sweep.name, "status": sweep.status.value, "backend": sweep.backend,
        "backend_name": sweep.backend_name, "requested_by": sweep.requested_by,
        "approval_id": sweep.approval_id, "approved_by": sweep.approved_by,
        "origin": sweep.origin, "created_at": _time(sweep.created_at),
        "ended_at": _time(sweep.ended_at), "failure_reason": sweep.failure_reason,
        "estimated_cost_usd": sweep.estimated_cost_usd,
        "spec": sweep.spec.model_dump(mode="json"),
        "objective": {"metric": sweep.spec.objective_metric, "goal": sweep.spec.objective_goal},
        "counts": {"completed": c.done, "running": c.running, "pruned": c.pruned,
                   "failed": c.failed, "requested": sweep.spec.trials},
        "trials": [{"number": t.number, "version": t.version, "params": dict(t.params),
                    "state": t.state, "objective": t.objective} for t in trials],
        "best": None if top is None else {"number": top.number, "version": top.version,
                                          "params": dict(top.params),
                                          "objective": top.objective},
    }


def _cost_row(r: CostRow) -> JSON:
    return {"subject": r.subject, "spent_usd": r.spent_usd, "committed_usd": r.committed_usd,
            "versions": r.versions, "spot_saving_usd": r.spot_saving_usd}


def cost_report_data(report: CostReport) -> JSON:
    """`trainbot --json cost`: the period, the totals, one row per ``by`` subject (most
    first), the top jobs. ``committed_usd``: the ceiling of what still runs (a month's
    report); ``versions``: ended versions counted in ``spent_usd``; ``channel``: the
    channel of a digest (null otherwise)."""
    total = _cost_row(report.total)
    del total["subject"]
    return {
        "period": report.period, "since": _time(report.since), "until": _time(report.until),
        "by": report.by, "total": total, "rows": [_cost_row(r) for r in report.rows],
        "top_jobs": [_cost_row(r) for r in report.top_jobs], "channel": report.channel,
    }


def budgets_data(standings: Sequence[BudgetStanding]) -> list[JSON]:
    """`trainbot --json budget`: each budget with its month so far (``used_usd`` = spent +
    the ceiling of what still runs; ``percent`` of ``limit_usd``)."""
    return [{
        "scope": s.budget.scope.value, "subject": s.budget.subject,
        "limit_usd": s.budget.limit_usd, "policy": s.budget.policy.value, "month": s.month,
        "used_usd": round(s.used_usd, 4), "percent": round(s.percent, 2),
        "source": s.budget.source, "spent_usd": round(s.entry.spent_usd, 4),
        "committed_usd": round(max(0.0, s.entry.committed_usd), 4),
        "set_by": s.budget.set_by or None, "set_at": _time(s.budget.set_at),
    } for s in standings]
