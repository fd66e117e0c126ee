"""Read-only use cases: status for on-call, versions, show, diff, lineage, eval, logs, links."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.catalog import source_digest
from bot.domain import (
    Algorithm,
    Approval,
    InvalidInput,
    JobVersion,
    Lineage,
    LineageNode,
    NotFound,
    Status,
    TrainbotError,
)
from bot.domain.sweep import Sweep, Trial, trials_of
from bot.ports import Links
from bot.services.context import Deps
from bot.services.stuck import is_stuck

__all__ = [
    "MetricDelta",
    "StatusOverview",
    "VersionDiff",
    "algorithm_digest",
    "diff_versions",
    "get_version",
    "lineage",
    "links",
    "list_versions",
    "logs",
    "status_overview",
]


@dataclass
class StatusOverview:
    now: datetime
    running: list[JobVersion] = field(default_factory=list)
    queued: list[JobVersion] = field(default_factory=list)
    awaiting: list[JobVersion] = field(default_factory=list)
    failed_recent: list[JobVersion] = field(default_factory=list)
    stuck: list[JobVersion] = field(default_factory=list)
    gpus_in_use: int = 0
    gpus_by_pool: dict[str, int] = field(default_factory=dict)
    # Sweeps going on (not ended), each with its trials.
    sweeps: list[tuple[Sweep, list[Trial]]] = field(default_factory=list)


def status_overview(deps: Deps) -> StatusOverview:
    """What on-call asks at 3 a.m.: running, queued, awaiting, failed in 24 h, stuck (by
    :func:`~bot.services.stuck.is_stuck`), GPUs."""
    now = deps.clock.now()
    out = StatusOverview(now=now)
    for v in sorted(deps.store.list_active(), key=lambda v: v.created_at):
        if v.status is Status.AWAITING_APPROVAL:
            out.awaiting.append(v)
        elif v.status is Status.QUEUED and not v.backend_job_name:
            out.queued.append(v)
        else:
            out.running.append(v)
            pool = deps.catalog.pools.get(v.spec.pool)
            if pool is not None and pool.total_gpus:
                out.gpus_in_use += pool.total_gpus
                out.gpus_by_pool[pool.id] = out.gpus_by_pool.get(pool.id, 0) + pool.total_gpus
            if is_stuck(deps, v, now=now):
                out.stuck.append(v)
    out.failed_recent = sorted(
        (v for v in deps.store.list_ended_since(now - timedelta(hours=24))
         if v.status is Status.FAILED),
        key=lambda v: v.ended_at or v.updated_at, reverse=True,
    )
    out.sweeps = [(s, trials_of(s.spec, deps.store.list_versions(s.name)))
                  for s in deps.store.list_active_sweeps() if not s.status.terminal]
    return out


def get_version(deps: Deps, job: str, number: int | None = None) -> JobVersion:
    if number is None:
        number = deps.store.get_job(job).latest_version
        if number == 0:
            raise NotFound(f"Job `{job}` has no versions.")
    return deps.store.get_version(job, number)


def list_versions(deps: Deps, job: str) -> list[JobVersion]:
    return deps.store.list_versions(job)


@dataclass
class MetricDelta:
    name: str
    a: float | None
    b: float | None
    better: bool | None  # by the objective, when this metric is the objective


@dataclass
class VersionDiff:
    a: JobVersion
    b: JobVersion
    changes: dict[str, tuple[object, object]]
    metrics: list[MetricDelta]


def diff_versions(deps: Deps, job: str, a: int, b: int) -> VersionDiff:
    if a == b:
        raise InvalidInput("Give two different versions to compare.")
    va, vb = deps.store.get_version(job, a), deps.store.get_version(job, b)
    algo = deps.algorithms.find(vb.spec)
    objective = algo.objective if algo else None
    deltas = []
    for name in sorted(set(va.metrics) | set(vb.metrics)):
        x, y = va.metrics.get(name), vb.metrics.get(name)
        better = None
        if objective is not None and name == objective.metric and x is not None and y is not None:
            better = objective.better(y, x) if x != y else None
        deltas.append(MetricDelta(name=name, a=x, b=y, better=better))
    return VersionDiff(a=va, b=vb, changes=vb.spec.changes_from(va.spec), metrics=deltas)


def links(deps: Deps, version: JobVersion) -> Links:
    if not version.backend_job_name:
        return Links()
    return deps.compute.links(version)


def logs(deps: Deps, version: JobVersion, *, lines: int = 50) -> list[str]:
    if not version.backend_job_name:
        raise InvalidInput(f"{version.label} hasn't started, so it has no logs yet.")
    return deps.compute.logs(version, lines=lines) or version.log_tail


def lineage(deps: Deps, job: str, number: int | None = None) -> Lineage:
    """data → algorithm (+ digest) → preset → parent versions → this version → its model
    artifact → the model versions registered from it."""
    version = get_version(deps, job, number)
    nodes: list[LineageNode] = []
    algo = deps.algorithms.find(version.spec)
    channels = {c.name: c.default for c in algo.channels} if algo else {}
    for name in sorted(set(channels) | set(version.spec.data)):
        uri = version.spec.data.get(name) or channels.get(name)
        if uri:
            # A file shared in the chat is named by its Slack id, name and sha256: where
            # trainbot keeps it is its own business (and no one may name it by path).
            origin = version.spec.data_origin.get(name)
            nodes.append(LineageNode(
                kind="data", label=name, detail=origin or uri,
                link=None if origin else (uri if uri.startswith(("s3://", "file://")) else None)))
    nodes.append(LineageNode(
        kind="algorithm", label=f"{version.spec.algorithm}@{version.spec.algorithm_version}",
        detail="; ".join(_algorithm_details(deps, version, algo)),
    ))
    if version.spec.preset:
        nodes.append(LineageNode(kind="preset", label=version.spec.preset))
    chain: list[JobVersion] = []
    parent = version.parent
    while parent is not None and len(chain) < 20:
        pv = deps.store.get_version(job, parent)
        chain.append(pv)
        parent = pv.parent
    for pv in reversed(chain):
        nodes.append(LineageNode(kind="version", label=pv.label, detail=pv.status.value))
    if version.approval_id:
        try:
            a: Approval = deps.store.get_approval(version.approval_id)
            who = f"{a.decision or 'pending'} by {a.decided_by}" if a.decided_by else "pending"
            nodes.append(LineageNode(kind="approval", label=a.id,
                                     detail=f"asked by {a.requested_by}; {who}"))
        except NotFound:
            pass
    link = links(deps, version)
    nodes.append(LineageNode(kind="version", label=version.label, detail=version.status.value,
                             link=link.console))
    if version.artifacts.model:
        nodes.append(LineageNode(kind="model", label="model", detail=version.artifacts.model,
                                 link=version.artifacts.model))
    for model in deps.store.models_of(version.job, version.number):
        detail = model.status.value + (f"; {model.package_arn}" if model.package_arn else "")
        nodes.append(LineageNode(kind="model", label=model.label, detail=detail))
    return Lineage(job=job, version=version.number, nodes=nodes)


def algorithm_digest(deps: Deps, version: JobVersion, algo: Algorithm | None) -> str | None:
    """What identifies the code a version ran: a registered algorithm's digest (recorded when
    it was registered, the version's exactly); a preset's source digest, computed from its
    folder (there is no other record of it)."""
    source = algo.source if algo else None
    if source is not None:
        return source.digest
    if deps.catalog.algorithms_root is not None:
        return source_digest(deps.catalog.algorithms_root / version.spec.algorithm)
    return version.spec.algorithm_digest


def _algorithm_details(deps: Deps, version: JobVersion, algo: Algorithm | None) -> list[str]:
    """The source digest, the image and (for a team's own algorithm) its owner. A registered
    algorithm's digest is the one recorded when it was registered, the version's exactly;
    a preset's is computed from its folder (there is no other record of it)."""
    source = algo.source if algo else None
    digest = algorithm_digest(deps, version, algo)
    details = [f"source sha256:{digest[:12]}"] if digest else []
    if source is not None and source.kind == "image":
        # The container is the algorithm, whatever the backend (a digest pin stays in it).
        details.append(f"image {source.image}")
    else:
        details.extend(_backend_image(deps, version, algo))
    if source is not None:
        details.append(f"owner {source.owner}")
    return details


def _backend_image(deps: Deps, version: JobVersion, algo: Algorithm | None) -> list[str]:
    pool = deps.catalog.pools.get(version.spec.pool)
    if pool is None or algo is None:
        return []
    try:
        image = deps.compute.training_image(algo, pool)
    except TrainbotError:
        return ["image: not published"]
    # None: the backend runs no image (local subprocesses).
    return [f"image {image}"] if image is not None else []
