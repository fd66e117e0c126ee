"""Launching versions: launch (the card after the launch), record a failed launch, dispatch
queued versions when a pool has room, stop. Requests (start, rerun) live in
``bot.services.requests``."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from functools import partial

from bot.domain import (
    BackendError,
    Conflict,
    Decision,
    InvalidInput,
    JobVersion,
    NotFound,
    ResourcePool,
    StaleWrite,
    Status,
)
from bot.domain.cost import Full, charge_keys, periods_of
from bot.domain.naming import backend_job_name
from bot.services.budgets import budgets_for, check_budgets, tell_alerts
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
    "charge_for",
    "describe_cap",
    "dispatch_queued",
    "launch_then_post",
    "launch_version",
    "post_card",
    "record_launch_failure",
    "stop_version",
]

log = logging.getLogger("trainbot")




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
    if ref is None:
        _, saved = mutate_version(deps.store, version.job, version.number,
                                  lambda v: v.model_copy(update={"card_error": error}))
        return saved
    channel, ts = ref
    _, saved = mutate_version(
        deps.store, version.job, version.number,
        lambda v: v.model_copy(update={"channel": channel, "message_ts": ts,
                                       "card_error": None}),
    )
    return saved


def launch_version(deps: Deps, version: JobVersion, *,
                   full: set[str] | None = None) -> JobVersion:
    """Launch a QUEUED version on its pool, or leave it queued when a cap is full.

    The backend job name is recorded *before* the backend is called, so an event that
    arrives before ``launch`` returns still finds its version, and a failed launch leaves a
    FAILED version with the reason — nothing half-created goes unrecorded. The same write
    takes a place in every cap the launch counts against — the pool's ``max_concurrent``,
    the user's and the channel's active-version caps (hard caps: of two launches racing for
    the last place, one stays queued; the version's end gives them back) — and charges its
    ceiling estimate to the month's and week's spend counters. A version left waiting says
    why and its place in line (``queue_reason``, on its card); ``full`` collects the caps
    found full (a dispatch skips who waits on them).
    """
    pool = deps.catalog.pool(version.spec.pool)
    algorithm = deps.algorithms.for_spec(version.spec)
    suffix = hashlib.sha256(f"{version.job}/{version.number}/{version.created_at}".encode())
    name = backend_job_name(deps.job_prefix, version.job, version.number, suffix.hexdigest()[:4])
    for _ in range(MAX_ATTEMPTS):
        current = deps.store.get_version(version.job, version.number)
        if current.status is not Status.QUEUED or current.backend_job_name:
            return current  # someone else launched it (a concurrent dispatch) or it was stopped
        held = _over_budget(deps, current, pool)
        if held is not None:
            return held
        try:
            claimed = deps.store.claim_launch(
                current.model_copy(update={"backend_job_name": name,
                                           "backend": deps.compute.name,
                                           "queue_reason": None,
                                           **charge_for(deps, current, pool)}),
                slots=pool.max_concurrent, caps=deps.policy.caps_for(current, pool),
            )
        except StaleWrite:
            continue
        if isinstance(claimed, Full):
            log.info("%s stays queued: %s full", version.label, claimed.cap)
            if full is not None:
                full.add(claimed.cap)
            return _wait_in_line(deps, current, claimed)
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
    _tell_budget_alerts(deps, saved)
    return saved


def _over_budget(deps: Deps, version: JobVersion, pool: ResourcePool) -> JobVersion | None:
    """A version that waited (behind a cap, or in a sweep) is checked against its budgets
    again as it launches — what launched meanwhile may have used them up: over a budget
    that asks an approver it keeps waiting (its card says why), over one that refuses it
    ends FAILED, never having run (the reason says the budget refused it). None when it may
    launch (or an approver already let it run)."""
    if version.approved_by is not None or version.charged_usd is not None:
        return None
    estimate = pool.estimate_cost(version.spec.max_runtime_s, spot=version.spec.spot)
    try:
        over = check_budgets(deps, user=version.requested_by, channel=version.channel,
                             estimate_usd=estimate)
    except InvalidInput as refused:
        why = refused.message
        now = deps.clock.now()
        before, after = mutate_version(
            deps.store, version.job, version.number,
            lambda v: v.transition(Status.FAILED, at=now, message=why)
            .model_copy(update={"failure_reason": why})
            if v.status is Status.QUEUED and not v.backend_job_name else v)
        return tell_change(deps, before, after, "over budget") if after is not before \
            else after
    if over is None:
        return None
    return _hold(deps, version,
                 f"{over.reason} — it waits for room in the budget, or an admin raising it")


def _tell_budget_alerts(deps: Deps, version: JobVersion) -> None:
    """The launch's charge may have taken a budget past 80 % or 100 %: told once each."""
    try:
        tell_alerts(deps, budgets_for(deps, user=version.requested_by, channel=version.channel))
    except Exception:  # an alert never fails a launch; the reconcile tells it later
        log.exception("budget alerts after the launch of %s failed", version.label)


def charge_for(deps: Deps, version: JobVersion, pool: ResourcePool) -> dict[str, object]:
    """What the launch charges to the spend counters: its ceiling (spot-discounted on
    spot), under its month and week, for the totals, its requester, channel, pool,
    algorithm and job."""
    if version.charged_usd is not None:
        return {}
    spec = version.spec
    return {
        "charged_usd": pool.estimate_cost(spec.max_runtime_s, spot=spec.spot),
        "charge_periods": periods_of(deps.clock.now()),
        "charge_keys": charge_keys(user=version.requested_by, channel=version.channel,
                                   pool=pool.id, algorithm=spec.algorithm, job=version.job),
    }


def _wait_in_line(deps: Deps, version: JobVersion, full: Full) -> JobVersion:
    """Record why ``version`` waits and its place among those waiting on the same cap
    (its card shows it); unchanged, nothing is written."""
    waiting = sorted((v for v in deps.store.list_active()
                      if v.status is Status.QUEUED and not v.backend_job_name
                      and v.created_at <= version.created_at
                      and _waits_on(v, full.cap)), key=lambda v: (v.created_at, v.job))
    place = 1 + sum(1 for v in waiting if (v.job, v.number) != (version.job, version.number))
    return _hold(deps, version, f"{describe_cap(full)}; place {place} in line")


def _hold(deps: Deps, version: JobVersion, reason: str) -> JobVersion:
    """Record why a version still waits, for its card (nothing written when unchanged or
    when it left the line meanwhile)."""
    before, after = mutate_version(
        deps.store, version.job, version.number,
        lambda v: v.model_copy(update={"queue_reason": reason})
        if v.status is Status.QUEUED and not v.backend_job_name and v.queue_reason != reason
        else v)
    if after is not before:
        notify("card", lambda: deps.chat.progress(after))
    return after


def _waits_on(version: JobVersion, cap: str) -> bool:
    """Whether ``version`` counts against ``cap`` (so it queues behind the same place)."""
    kind, _, rest = cap.partition(":")
    if kind == "pool":
        return version.spec.pool == rest
    if kind == "user":
        return version.requested_by == rest
    if kind == "channel":
        return version.channel == rest
    pool, _, who = rest.partition(":")
    return version.spec.pool == pool and who in (version.requested_by, version.channel)


def describe_cap(full: Full) -> str:
    """A full cap in words (no ids: the card is public)."""
    kind, _, rest = full.cap.partition(":")
    n = full.limit
    runs = f"{n} version" + ("s" if n != 1 else "")
    if kind == "pool":
        return f"pool `{rest}` runs at most {n} at once"
    if kind == "user":
        return f"its requester already has {runs} active, the most per user"
    if kind == "channel":
        return f"this channel already has {runs} active, the most per channel"
    pool = rest.partition(":")[0]
    whose = "its requester" if kind == "pool-user" else "this channel"
    return f"{whose} already has {runs} active on pool `{pool}`, the most there"


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


def dispatch_queued(deps: Deps, pool_id: str | None = None) -> list[JobVersion]:
    """Launch queued versions that now fit (of one pool, or every pool), oldest first; one
    that still waits keeps its place, and those behind it on other caps go on."""
    launched = []
    queued = sorted(
        (v for v in deps.store.list_active()
         if (pool_id is None or v.spec.pool == pool_id) and v.status is Status.QUEUED
         and not v.backend_job_name),
        key=lambda v: v.created_at,
    )
    full: set[str] = set()
    for version in queued:
        if any(_waits_on(version, cap) for cap in full):
            continue  # behind a cap this pass found full: its turn hasn't come
        try:
            result = launch_version(deps, version, full=full)
        except Exception:  # one version's trouble (a launch failure, a pool gone) is its own
            log.exception("dispatching %s failed", version.label)
            continue
        if result.backend_job_name:
            launched.append(result)
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
    def stopped(v: JobVersion) -> JobVersion:
        # Decided on the version read in the write: a dispatch may have launched it since.
        if not v.backend_job_name:
            return v.transition(Status.STOPPED, at=now,
                                message=f"stopped by {user} before it launched")
        return v.transition(Status.STOPPING, at=now, message=f"stop requested by {user}")

    before, after = mutate_version(deps.store, job, number, stopped)
    if after.backend_job_name and after.status is Status.STOPPING:
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
    attempts = 0
    if version.approval_id:
        try:
            approval = deps.store.get_approval(version.approval_id)
        except NotFound:
            approval = None  # the request is written right after the version
    while approval is not None and approval.pending and attempts < MAX_ATTEMPTS:
        attempts += 1
        current = deps.store.get_version(version.job, version.number)
        if current.status is not Status.AWAITING_APPROVAL:
            return current, current
        try:
            decided, after = deps.store.decide_approval_and_version(
                approval.id, Decision.WITHDRAWN, by=user, at=now,
                version=withdrawn(current))
        except StaleWrite:
            continue
        except Conflict:
            break  # decided first: the version moved with it (or older data left it behind)
        notify("approval decided", partial(deps.chat.approval_decided, decided, after))
        return current, after
    return mutate_version(deps.store, version.job, version.number, withdrawn)
