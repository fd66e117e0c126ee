"""Starting versions: start a job, rerun a version, launch, dispatch queued, stop."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain import (
    Approval,
    BackendError,
    Conflict,
    Decision,
    InvalidInput,
    JobSpec,
    JobVersion,
    NotFound,
    ResourcePool,
    StaleWrite,
    Status,
    StatusChange,
    TrainingJob,
)
from bot.domain.algorithm import Algorithm
from bot.domain.job import validate_job_name
from bot.domain.naming import backend_job_name
from bot.domain.spec import DEFAULT_MAX_RUNTIME_S
from bot.services.context import Deps
from bot.services.versions import (
    MAX_ATTEMPTS,
    deliver_outbox,
    mutate_version,
    notify,
    tell_change,
    try_chat,
)

__all__ = [
    "LaunchRequest",
    "approval_deadline",
    "build_spec",
    "dispatch_queued",
    "launch_version",
    "post_card",
    "record_launch_failure",
    "rerun",
    "start_job",
    "stop_version",
]

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
) -> JobSpec:
    """Validate everything a version will run with; every problem is an InvalidInput.
    Local data is checked against the data folders unless the request is ``trusted``."""
    if not algorithm.supports_pool(pool.id):
        raise InvalidInput(
            f"{algorithm.id} can't run on pool `{pool.id}`.",
            hint="It supports: " + ", ".join(algorithm.supported_pools) + ".",
        )
    if algorithm.gpu == "required" and not pool.is_gpu:
        raise InvalidInput(f"{algorithm.id} needs a GPU pool; `{pool.id}` has none.")
    hyper = dict(base.hyperparameters) if base else algorithm.defaults()
    hyper.update(algorithm.validate_hyperparameters(params, fill_defaults=False))
    channels = dict(base.data) if base else {}
    for name, uri in data.items():
        if algorithm.channel(name) is None:
            known = ", ".join(c.name for c in algorithm.channels) or "none"
            raise InvalidInput(f"{algorithm.id} has no data channel `{name}` (channels: {known}).")
        channels[name] = uri
    missing = [c.name for c in algorithm.channels if c.required and c.name not in channels]
    if missing:
        raise InvalidInput(
            f"{algorithm.id} needs data for: {', '.join(missing)}.",
            hint="Add `--data CHANNEL=s3://bucket/prefix` (locally: `file:///path` or a path "
            "under the data folder).",
        )
    if deps.local_data is not None:
        channels = deps.local_data.checked(channels, trusted=trusted)
    want_spot = base.spot if (spot is None and base) else bool(spot)
    if want_spot and not (pool.spot_allowed and algorithm.supports_spot):
        raise InvalidInput(f"Spot training isn't available for {algorithm.id} on `{pool.id}`.")
    try:
        return JobSpec(
            algorithm=algorithm.id,
            algorithm_version=algorithm.version,
            hyperparameters=hyper,
            data=channels,
            pool=pool.id,
            max_runtime_s=max_runtime_s if max_runtime_s is not None else (
                base.max_runtime_s if base else DEFAULT_MAX_RUNTIME_S),
            spot=want_spot,
            preset=preset if preset is not None else (base.preset if base else None),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidInput(_first_error(exc)) from None


def start_job(deps: Deps, req: LaunchRequest) -> tuple[JobVersion, Approval | None]:
    """Create a job and its v1 from an algorithm or a preset, then launch or ask approval."""
    deps.policy.check_channel(req.channel)
    base = None
    algo_id = req.algorithm
    if req.preset:
        preset = deps.store.get_preset(deps.scope, req.preset)
        base = preset.spec
        algo_id = preset.spec.algorithm
    if not algo_id:
        raise InvalidInput("Say which algorithm to train, or a preset with `--preset NAME`.",
                           hint="`/train algorithms` lists them.")
    algorithm = deps.catalog.algorithm(algo_id)
    pool = deps.catalog.pool(req.pool or (base.pool if base else deps.catalog.default_pool))
    deps.policy.check_launch(req.user, pool)
    spec = build_spec(
        deps, algorithm, params=req.params or {}, pool=pool, data=req.data or {}, base=base,
        spot=req.spot, max_runtime_s=req.max_runtime_s, preset=req.preset, trusted=req.trusted,
    )
    name = validate_job_name(req.job_name) if req.job_name else _new_job_name(algorithm.id)
    now = deps.clock.now()
    job = TrainingJob(name=name, owner=req.user, channel=req.channel, created_at=now)
    needs_approval = deps.policy.needs_approval(pool, rerun=False)
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
    return _launch_or_request(deps, version, pool, rerun=False)


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
    algorithm = deps.catalog.algorithm(base.spec.algorithm)
    pool = deps.catalog.pool(req.pool or base.spec.pool)
    deps.policy.check_launch(req.user, pool)
    spec = build_spec(
        deps, algorithm, params=req.params or {}, pool=pool, data=req.data or {},
        base=base.spec, spot=req.spot, max_runtime_s=req.max_runtime_s, trusted=req.trusted,
    )
    needs_approval = deps.policy.needs_approval(pool, rerun=True)
    draft = _draft(deps, job, spec, req, parent=base.number, awaiting=needs_approval, pool=pool)
    version, created = deps.store.add_version(draft)
    if not created:
        return version, _pending_approval(deps, version)
    return _launch_or_request(deps, version, pool, rerun=True)


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
        # Chosen now so the version names its request from the moment it is stored.
        approval_id=secrets.token_hex(4) if awaiting else None,
    )


def _launch_or_request(
    deps: Deps, version: JobVersion, pool: ResourcePool, *, rerun: bool
) -> tuple[JobVersion, Approval | None]:
    if version.status is Status.AWAITING_APPROVAL:
        from bot.services.approvals import request_approval  # import cycle: approvals launches

        return request_approval(deps, version, pool, rerun=rerun)
    return launch_then_post(deps, version), None


def launch_then_post(deps: Deps, version: JobVersion) -> JobVersion:
    """Launch a QUEUED version, then post its card. The launch never waits on the chat: a
    slow or refusing Slack delays the card, never the training job."""
    try:
        with deps.cards_in_flight.posting(version.job, version.number):
            launched = launch_version(deps, version)
            post_card(deps, launched)
    except Exception:
        # A launch that fails raises (the requester hears why); its failure is announced
        # in the channel, which the hold above kept back until now.
        deliver_outbox(deps, deps.store.get_version(version.job, version.number))
        raise
    # What happened while the card was on its way: the card and its thread say it now.
    current = deps.store.get_version(version.job, version.number)
    if current.status is not launched.status and current.message_ts:
        notify("card", lambda: deps.chat.version_changed(current, launched.status))
    return deliver_outbox(deps, current)


def post_card(deps: Deps, version: JobVersion) -> JobVersion:
    """Post the version's card and remember where; a card that couldn't be posted leaves
    its reason (the chat's error code) on the version for the hint users get."""
    ref, error = try_chat("card", lambda: deps.chat.version_created(version))
    if ref is None and error is None:
        return version  # no channel: nothing to post
    if error is not None:
        _, saved = mutate_version(deps.store, version.job, version.number,
                                  lambda v: v.model_copy(update={"card_error": error}))
        return saved
    channel, ts = ref  # type: ignore[misc]
    _, saved = mutate_version(
        deps.store, version.job, version.number,
        lambda v: v.model_copy(update={"channel": channel, "message_ts": ts,
                                       "card_error": None}),
    )
    return saved


def launch_version(deps: Deps, version: JobVersion) -> JobVersion:
    """Launch a QUEUED version on its pool, or leave it queued when the pool is full.

    The backend job name is recorded *before* the backend is called, so an event that
    arrives before ``launch`` returns still finds its version, and a failed launch leaves a
    FAILED version with the reason — nothing half-created goes unrecorded. On a pool with
    ``max_concurrent`` the same write takes one of the pool's places (a hard cap: of two
    launches racing for the last place, one stays queued); the version's end gives it back.
    """
    pool = deps.catalog.pool(version.spec.pool)
    algorithm = deps.catalog.algorithm(version.spec.algorithm)
    suffix = hashlib.sha256(f"{version.job}/{version.number}/{version.created_at}".encode())
    name = backend_job_name(deps.job_prefix, version.job, version.number, suffix.hexdigest()[:4])
    for _ in range(MAX_ATTEMPTS):
        current = deps.store.get_version(version.job, version.number)
        if current.status is not Status.QUEUED or current.backend_job_name:
            return current  # someone else launched it (a concurrent dispatch) or it was stopped
        try:
            claimed = deps.store.claim_launch(
                current.model_copy(update={"backend_job_name": name,
                                           "backend": deps.compute.name}),
                slots=pool.max_concurrent,
            )
        except StaleWrite:
            continue
        if claimed is None:
            log.info("pool %s full; %s stays queued", pool.id, version.label)
            return current
        break
    else:
        raise StaleWrite(f"{version.label} kept changing; try again.")
    try:
        launched = deps.compute.launch(claimed, algorithm, pool)
    except BackendError as exc:
        failed = record_launch_failure(deps, claimed, exc.user_text())
        raise type(exc)(f"{failed.label} failed to launch: {exc.message}", hint=exc.hint) from exc
    except Exception as exc:
        log.exception("launch of %s crashed", claimed.label)
        record_launch_failure(deps, claimed, f"launch error: {type(exc).__name__}")
        raise
    _, saved = mutate_version(
        deps.store, claimed.job, claimed.number,
        lambda v: v.model_copy(update={
            "artifacts": launched.artifacts if v.artifacts.model is None else v.artifacts,
            "compute_note": launched.compute_note,
        }),
    )
    return saved


def record_launch_failure(deps: Deps, version: JobVersion, reason: str) -> JobVersion:
    now = deps.clock.now()
    before, failed = mutate_version(
        deps.store, version.job, version.number,
        lambda v: v.transition(Status.FAILED, at=now, message=reason).model_copy(
            update={"failure_reason": reason}) if not v.status.terminal else v,
    )
    if failed.status is Status.FAILED and before.status is not Status.FAILED:
        failed = tell_change(deps, before, failed, "launch failure")
    return failed


def dispatch_queued(deps: Deps, pool_id: str) -> list[JobVersion]:
    """Launch queued versions of a pool that now has room (oldest first)."""
    launched = []
    queued = sorted(
        (v for v in deps.store.list_active()
         if v.spec.pool == pool_id and v.status is Status.QUEUED and not v.backend_job_name),
        key=lambda v: v.created_at,
    )
    for version in queued:
        try:
            result = launch_version(deps, version)
        except BackendError:
            continue
        if result.backend_job_name:
            launched.append(result)
        elif result.status is Status.QUEUED:
            break  # still full
    return launched


def stop_version(deps: Deps, *, user: str, job: str, number: int | None = None) -> JobVersion:
    number = number or deps.store.get_job(job).latest_version
    version = deps.store.get_version(job, number)
    deps.policy.check_stop(user, version)
    if version.status.terminal:
        raise InvalidInput(f"{version.label} already ended ({version.status.value.lower()}).")
    now = deps.clock.now()
    if version.status is Status.AWAITING_APPROVAL:
        before, after = _withdraw(deps, version, user=user, now=now)
        if after.status is not before.status:
            return tell_change(deps, before, after, "stop")
        if after.status.terminal:
            raise InvalidInput(f"{after.label} already ended ({after.status.value.lower()}).")
        version = after  # approved meanwhile: stop what it became
    if not version.backend_job_name:
        target, msg = Status.STOPPED, f"stopped by {user} before it launched"
    else:
        target, msg = Status.STOPPING, f"stop requested by {user}"
    before, after = mutate_version(
        deps.store, job, number, lambda v: v.transition(target, at=now, message=msg)
    )
    if after.backend_job_name and target is Status.STOPPING:
        try:
            deps.compute.stop(after)
        except BackendError as exc:
            raise BackendError(f"Couldn't stop {after.label}: {exc.message}") from exc
    if after.status is not before.status:
        after = tell_change(deps, before, after, "stop")
    return after


def _withdraw(
    deps: Deps, version: JobVersion, *, user: str, now: datetime
) -> tuple[JobVersion, JobVersion]:
    """The requester takes a request back: the version REJECTED and its approval decided
    ``withdrawn`` in one write, so nobody can approve it afterwards; the approval card
    loses its buttons. Returns ``(before, after)``; a request decided first stands."""
    message = f"withdrawn by {user}"

    def withdrawn(v: JobVersion) -> JobVersion:
        if v.status is not Status.AWAITING_APPROVAL:
            return v
        return v.transition(Status.REJECTED, at=now, message=message).model_copy(
            update={"failure_reason": message})

    approval = None
    if version.approval_id:
        try:
            approval = deps.store.get_approval(version.approval_id)
        except NotFound:
            approval = None  # the request is written right after the version
    for _ in range(MAX_ATTEMPTS if approval is not None and approval.pending else 0):
        current = deps.store.get_version(version.job, version.number)
        if current.status is not Status.AWAITING_APPROVAL:
            return current, current
        try:
            decided, after = deps.store.decide_approval_and_version(
                approval.id, Decision.WITHDRAWN, by=user, at=now,  # type: ignore[union-attr]
                version=withdrawn(current))
        except StaleWrite:
            continue
        except Conflict:
            break  # decided first: the version moved with it (or older data left it behind)
        notify("approval decided",
               lambda d=decided, a=after: deps.chat.approval_decided(d, a))  # type: ignore[misc]
        return current, after
    return mutate_version(deps.store, version.job, version.number, withdrawn)


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


def approval_deadline(deps: Deps) -> datetime:
    return deps.clock.now() + timedelta(minutes=deps.policy.approval_ttl_minutes)

