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
    StaleWrite,
    Status,
)
from bot.domain.naming import backend_job_name
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


def launch_version(deps: Deps, version: JobVersion) -> JobVersion:
    """Launch a QUEUED version on its pool, or leave it queued when the pool is full.

    The backend job name is recorded *before* the backend is called, so an event that
    arrives before ``launch`` returns still finds its version, and a failed launch leaves a
    FAILED version with the reason — nothing half-created goes unrecorded. On a pool with
    ``max_concurrent`` the same write takes one of the pool's places (a hard cap: of two
    launches racing for the last place, one stays queued); the version's end gives it back.
    """
    pool = deps.catalog.pool(version.spec.pool)
    algorithm = deps.algorithms.for_spec(version.spec)
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
