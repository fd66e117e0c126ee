"""Requests for versions: validate what a user asked for, create the job and version, then
launch it or ask for approval (start a job, rerun a version).

``bot.services.launching`` launches and stops; ``bot.services.approvals`` asks for and
decides approvals. This module uses both and neither uses it, so there is no cycle.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from bot.domain import (
    Approval,
    Conflict,
    InvalidInput,
    JobSpec,
    JobVersion,
    NotFound,
    ResourcePool,
    Status,
    StatusChange,
    TrainingJob,
)
from bot.domain.algorithm import MAX_OPEN_HYPERPARAMETERS, Algorithm
from bot.domain.job import validate_job_name
from bot.domain.spec import DEFAULT_MAX_RUNTIME_S
from bot.services.approvals import request_approval
from bot.services.budgets import OverBudget, check_budgets
from bot.services.context import Deps
from bot.services.launching import launch_then_post

__all__ = ["LaunchRequest", "build_spec", "rerun", "start_job"]

log = logging.getLogger("trainbot")


@dataclass(frozen=True)
class LaunchRequest:
    """What a user asked for, before validation (words from Slack, the CLI or a form)."""

    user: str
    algorithm: str | None = None
    preset: str | None = None
    params: dict[str, object] | None = None
    pool: str | None = None
    data: dict[str, str] | None = None
    job_name: str | None = None
    spot: bool | None = None
    max_runtime_s: int | None = None
    channel: str | None = None
    request_key: str | None = None
    trusted: bool = False  # the OS user at the CLI (any readable local file), not Slack


def build_spec(
    deps: Deps,
    algorithm: Algorithm,
    *,
    params: dict[str, object],
    pool: ResourcePool,
    data: dict[str, str],
    base: JobSpec | None = None,
    spot: bool | None = None,
    max_runtime_s: int | None = None,
    preset: str | None = None,
    trusted: bool = False,
    user: str = "",
    channel: str | None = None,
) -> JobSpec:
    """Validate everything a version will run with; every problem is an InvalidInput.
    Local data is checked against the data folders unless the request is ``trusted``. The
    spec pins a registered algorithm's exact version (its source digest). Chat files named
    as data (a Slack file id or permalink) are fetched for ``user`` in ``channel`` and stored
    content-addressed; the spec keeps where each came from."""
    deps.compute.check_runnable(algorithm)
    if not algorithm.supports_pool(pool.id):
        raise InvalidInput(
            f"{algorithm.id} can't run on pool `{pool.id}`.",
            hint="It supports: " + ", ".join(algorithm.supported_pools) + ".",
        )
    if algorithm.gpu == "required" and not pool.is_gpu:
        raise InvalidInput(f"{algorithm.id} needs a GPU pool; `{pool.id}` has none.")
    hyper = dict(base.hyperparameters) if base else algorithm.defaults()
    hyper.update(algorithm.validate_hyperparameters(params, fill_defaults=False))
    if algorithm.open_hyperparameters and len(hyper) > MAX_OPEN_HYPERPARAMETERS:
        raise InvalidInput(f"{algorithm.id} takes at most {MAX_OPEN_HYPERPARAMETERS} "
                           f"parameters; this version would have {len(hyper)}.")
    channels = dict(base.data) if base else {}
    origin = dict(base.data_origin) if base else {}
    wanted: dict[str, str] = {}  # chat files to fetch, last (once everything else holds)
    files = deps.files
    for name, uri in data.items():
        if algorithm.channel(name) is None:
            known = ", ".join(c.name for c in algorithm.channels) or "none"
            raise InvalidInput(f"{algorithm.id} has no data channel `{name}` (channels: {known}).")
        origin.pop(name, None)
        if files is not None and files.is_file_reference(uri):
            wanted[name] = uri
            channels.pop(name, None)
            continue
        if files is not None and files.owns(uri):
            raise InvalidInput(
                f"`{uri[:200]}` is where trainbot keeps its own files; data for `{name}` can't "
                "come from there.",
                hint="Name a file shared in Slack by its link, or your own data's URI.")
        channels[name] = uri
    missing = [c.name for c in algorithm.channels
               if c.required and c.name not in channels and c.name not in wanted]
    if missing:
        raise InvalidInput(
            f"{algorithm.id} needs data for: {', '.join(missing)}.",
            hint="Add `--data CHANNEL=s3://bucket/prefix` (locally: `file:///path` or a path "
            "under the data folder).",
        )
    if deps.local_data is not None:
        # Only what the user named: a file fetched for them (or for the version rerun) was
        # checked by the fetch, and it sits where no one may name it by path.
        named = deps.local_data.checked({k: v for k, v in channels.items() if k not in origin},
                                        trusted=trusted)
        channels = {**channels, **named}
    runtime = _runtime(pool, max_runtime_s, base)
    want_spot = base.spot if (spot is None and base) else bool(spot)
    if want_spot and not (pool.spot_allowed and algorithm.supports_spot):
        raise InvalidInput(f"Spot training isn't available for {algorithm.id} on `{pool.id}`.")
    if files is not None:
        for name, reference in wanted.items():
            stored = files.fetch(reference, user=user, channel=channel)
            channels[name] = stored.uri
            origin[name] = f"{stored.origin} {stored.name} sha256:{stored.sha256}"
    try:
        return JobSpec(
            algorithm=algorithm.id,
            algorithm_version=algorithm.version,
            algorithm_digest=algorithm.source.digest if algorithm.source else None,
            hyperparameters=hyper,
            data=channels,
            data_origin=origin,
            pool=pool.id,
            max_runtime_s=runtime,
            spot=want_spot,
            preset=preset if preset is not None else (base.preset if base else None),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidInput(_first_error(exc)) from None


def _runtime(pool: ResourcePool, asked: int | None, base: JobSpec | None) -> int:
    """The version's max runtime: what was asked (refused above the pool's ceiling), else
    the base's or the default, brought down to the pool's ceiling."""
    ceiling = pool.max_runtime_s
    if asked is not None:
        if ceiling is not None and asked > ceiling:
            raise InvalidInput(
                f"Pool `{pool.id}` runs a version for at most {_hours(ceiling)}; "
                f"`--max-runtime {_hours(asked)}` is more.",
                hint=f"Ask for {_hours(ceiling)} or less, or another pool (`/train pools`).")
        return asked
    inherited = base.max_runtime_s if base else DEFAULT_MAX_RUNTIME_S
    return min(inherited, ceiling) if ceiling is not None else inherited


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g}h" if seconds % 3600 == 0 or seconds >= 3600 else \
        f"{seconds // 60}m"


def start_job(deps: Deps, req: LaunchRequest) -> tuple[JobVersion, Approval | None]:
    """Create a job and its v1 from an algorithm or a preset, then launch or ask approval."""
    deps.policy.check_channel(req.channel)
    if req.request_key:
        # A retried delivery: answered by what the first did (not checked again, since what
        # it launched now counts against the budgets it passed).
        replayed = deps.store.find_by_request_key(req.request_key)
        if replayed is not None:
            return replayed, _pending_approval(deps, replayed)
    base = None
    if req.preset:
        preset = deps.store.get_preset(deps.scope, req.preset)
        base = preset.spec
        if base.algorithm_digest is not None:
            deps.algorithms.get(base.algorithm)  # a removed algorithm starts nothing new
        # A preset runs the algorithm version it was saved with, as a rerun does.
        algorithm = deps.algorithms.for_spec(base)
    elif req.algorithm:
        algorithm = deps.algorithms.get(req.algorithm)
    else:
        raise InvalidInput("Say which algorithm to train, or a preset with `--preset NAME`.",
                           hint="`/train algorithms` lists them.")
    pool = deps.catalog.pool(req.pool or (base.pool if base else deps.catalog.default_pool))
    deps.policy.check_launch(req.user, pool)
    spec = build_spec(
        deps, algorithm, params=req.params or {}, pool=pool, data=req.data or {}, base=base,
        spot=req.spot, max_runtime_s=req.max_runtime_s, preset=req.preset, trusted=req.trusted,
        user=req.user, channel=req.channel,
    )
    name = validate_job_name(req.job_name) if req.job_name else _new_job_name(algorithm.id)
    now = deps.clock.now()
    job = TrainingJob(name=name, owner=req.user, channel=req.channel, created_at=now)
    over = check_budgets(deps, user=req.user, channel=req.channel,
                         estimate_usd=pool.estimate_cost(spec.max_runtime_s, spot=spec.spot))
    needs_approval = deps.policy.needs_approval(pool, rerun=False) or over is not None
    draft = _draft(deps, name, spec, req, parent=None, awaiting=needs_approval, pool=pool)
    try:
        version, created = deps.store.add_version(draft, new_job=job)
    except Conflict:
        raise Conflict(
            f"A job named `{name}` already exists.",
            hint=f"Rerun it with `/train rerun {name}`, or pick another `--name`.",
        ) from None
    if not created:
        return version, _pending_approval(deps, version)  # a retry: the first did the work
    return _launch_or_request(deps, version, pool, rerun=False, over=over)


def rerun(
    deps: Deps, req: LaunchRequest, *, job: str, base_number: int | None = None
) -> tuple[JobVersion, Approval | None]:
    """A new version of ``job`` from ``base_number`` (default: latest) with overrides."""
    deps.policy.check_channel(req.channel)
    stored_job = deps.store.get_job(job)
    if req.request_key and stored_job.latest_version:
        # A retried delivery of a rerun of the latest version would otherwise take the new
        # version itself as its base.
        latest = deps.store.get_version(job, stored_job.latest_version)
        if latest.request_key == req.request_key:
            return latest, _pending_approval(deps, latest)
    base_number = base_number or stored_job.latest_version
    base = deps.store.get_version(job, base_number)
    if base.status is Status.AWAITING_APPROVAL or base.status is Status.REJECTED:
        raise InvalidInput(f"{base.label} never ran; rerun a version that did.")
    algorithm = deps.algorithms.for_spec(base.spec)  # exactly what the base ran
    pool = deps.catalog.pool(req.pool or base.spec.pool)
    deps.policy.check_launch(req.user, pool)
    spec = build_spec(
        deps, algorithm, params=req.params or {}, pool=pool, data=req.data or {},
        base=base.spec, spot=req.spot, max_runtime_s=req.max_runtime_s, trusted=req.trusted,
        user=req.user, channel=req.channel,
    )
    over = check_budgets(deps, user=req.user, channel=req.channel,
                         estimate_usd=pool.estimate_cost(spec.max_runtime_s, spot=spec.spot))
    needs_approval = deps.policy.needs_approval(pool, rerun=True) or over is not None
    draft = _draft(deps, job, spec, req, parent=base.number, awaiting=needs_approval, pool=pool)
    version, created = deps.store.add_version(draft)
    if not created:
        return version, _pending_approval(deps, version)
    return _launch_or_request(deps, version, pool, rerun=True, over=over)


def _pending_approval(deps: Deps, version: JobVersion) -> Approval | None:
    """The request a retried delivery's version waits on, so its answer names it again."""
    if version.status is not Status.AWAITING_APPROVAL or not version.approval_id:
        return None
    try:
        return deps.store.get_approval(version.approval_id)
    except NotFound:
        return None  # written right after the version; the first delivery is still at it


def _draft(
    deps: Deps, job: str, spec: JobSpec, req: LaunchRequest, *, parent: int | None,
    awaiting: bool, pool: ResourcePool,
) -> JobVersion:
    now = deps.clock.now()
    status = Status.AWAITING_APPROVAL if awaiting else Status.QUEUED
    return JobVersion(
        job=job, number=0, parent=parent, spec=spec, requested_by=req.user, status=status,
        history=[StatusChange(status=status, at=now, message=f"requested by {req.user}")],
        created_at=now, updated_at=now, channel=req.channel, request_key=req.request_key,
        estimated_cost_usd=pool.estimate_cost(spec.max_runtime_s),
        estimated_spot_cost_usd=(pool.estimate_cost(spec.max_runtime_s, spot=True)
                                 if spec.spot else None),
        # Chosen now so the version names its request from the moment it is stored.
        approval_id=secrets.token_hex(4) if awaiting else None,
    )


def _launch_or_request(
    deps: Deps, version: JobVersion, pool: ResourcePool, *, rerun: bool,
    over: OverBudget | None = None,
) -> tuple[JobVersion, Approval | None]:
    if version.status is Status.AWAITING_APPROVAL:
        return request_approval(deps, version, pool, rerun=rerun,
                                over_budget=over.reason if over else None)
    return launch_then_post(deps, version), None


def _new_job_name(algorithm_id: str) -> str:
    stem = algorithm_id[:30].rstrip("-")
    return f"{stem}-{secrets.token_hex(3)}"


def _first_error(exc: Exception) -> str:
    """A spec that pydantic refused, in words for people: our own validators' messages as
    they are; a bound pydantic checks named with the field and its limit, never raw."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return "That request isn't valid."
    first = errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or "value"
    ctx = first.get("ctx") or {}
    if first.get("type") == "value_error":
        return str(first.get("msg", "")).removeprefix("Value error, ")
    limits = {"greater_than_equal": "at least", "less_than_equal": "at most",
              "greater_than": "more than", "less_than": "less than"}
    for kind, words in limits.items():
        if first.get("type") == kind:
            bound = next(iter(ctx.values()), "?")
            return f"`{field}` must be {words} {bound}."
    return f"`{field}` isn't valid here."
