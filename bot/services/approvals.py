"""Approval of launches: request, decide exactly once, expire."""

from __future__ import annotations

import secrets

from bot.domain import (
    Approval,
    Conflict,
    Decision,
    InvalidInput,
    JobVersion,
    ResourcePool,
    StaleWrite,
    Status,
)
from bot.services.context import Deps
from bot.services.launching import launch_then_post
from bot.services.versions import MAX_ATTEMPTS, mutate_version, notify, tell_change, try_chat

__all__ = ["check_can_decide", "decide", "expire", "finish_decided", "request_approval"]


def request_approval(
    deps: Deps, version: JobVersion, pool: ResourcePool, *, rerun: bool,
    over_budget: str | None = None,
) -> tuple[JobVersion, Approval]:
    """Record an approval request for a version AWAITING_APPROVAL and post its card
    (``over_budget``: why a budget asks for it, said on the card)."""
    base = version.parent
    overrides: dict = {}
    if base is not None:
        parent = deps.store.get_version(version.job, base)
        overrides = {k: new for k, (_old, new) in version.spec.changes_from(parent.spec).items()
                     if new is not None}
    why = f"pool `{pool.id}` requires approval" if pool.requires_approval else (
        "reruns need approval" if rerun and deps.policy.needs_approval(pool, rerun=True)
        else "launch needs approval")
    if over_budget:
        why = over_budget if not (pool.requires_approval or (
            rerun and deps.policy.needs_approval(pool, rerun=True))) else f"{why}; {over_budget}"
    approval = deps.store.create_approval(Approval(
        id=version.approval_id or secrets.token_hex(4),
        job=version.job,
        version=version.number,
        base_version=base,
        overrides=overrides,
        pool=pool.id,
        reason=why,
        requested_by=version.requested_by,
        requested_at=deps.clock.now(),
        expires_at=deps.policy.approval_deadline(deps.clock.now()),
        channel=version.channel,
    ))
    ref, error = try_chat("approval card", lambda: deps.chat.approval_requested(approval, version))
    if ref:
        channel, ts = ref
        approval = deps.store.set_approval_message(approval.id, channel=channel, ts=ts)
    elif error is not None:
        # Approvers were told directly; the requester's answer names the request either way.
        _, version = mutate_version(deps.store, version.job, version.number,
                                    lambda v: v.model_copy(update={"card_error": error}))
    return version, approval


def decide(
    deps: Deps, *, approval_id: str, user: str, approve: bool, note: str = ""
) -> tuple[Approval, JobVersion]:
    """Approve or reject, once. A second decision — concurrent or a retry — is a Conflict;
    a version that is no longer awaiting approval (withdrawn) is an InvalidInput."""
    approval = check_can_decide(deps, approval_id=approval_id, user=user)
    version = deps.store.get_version(approval.job, approval.version)
    if version.status is not Status.AWAITING_APPROVAL:
        raise _no_longer_awaiting(deps, approval, version)
    now = deps.clock.now()
    if approval.expired(now):
        expired = expire(deps, approval)
        raise InvalidInput(
            f"Request `{approval.id}` expired at {approval.expires_at:%Y-%m-%d %H:%M} UTC.",
            # A rerun's request names the version it reruns; a first start's request has no
            # version that ran, so it is asked again by starting anew.
            hint=(f"Ask again with `/train rerun {expired.job} v{approval.base_version}`."
                  if approval.base_version else
                  f"Ask again by starting it anew (`/train start …`, pool `{approval.pool}`)."),
        )
    decision = Decision.APPROVED if approve else Decision.REJECTED
    approval, version = _record(deps, approval, decision, by=user, note=note)
    if approve and version.status is Status.QUEUED:
        version = launch_then_post(deps, version)
    return approval, version


def check_can_decide(deps: Deps, *, approval_id: str, user: str) -> Approval:
    """The pending request ``user`` may decide; ``Conflict`` or ``NotAllowed`` otherwise."""
    approval = deps.store.get_approval(approval_id)
    if not approval.pending:
        raise _already(approval)
    deps.policy.check_decide(user, approval)
    return approval


def expire(deps: Deps, approval: Approval) -> Approval:
    """Record that a request ran out of time: the version is REJECTED, both cards updated.

    ``Conflict`` if someone decided it first (their decision stands).
    """
    decided, _ = _record(deps, approval, Decision.EXPIRED, by="trainbot", note="expired")
    return decided


def finish_decided(deps: Deps, approval: Approval) -> JobVersion:
    """Apply a recorded decision to a version still AWAITING_APPROVAL — what a crash between
    the two writes of older trainbots left behind: the version moves as the decision says
    (and launches if approved), the card loses its buttons. A no-op on any other version."""
    assert approval.decision is not None, "only a decided request"
    target, message, extra = _outcome(approval.decision, by=approval.decided_by or "trainbot",
                                      note=approval.decision_note)
    at = approval.decided_at or deps.clock.now()
    before, version = mutate_version(
        deps.store, approval.job, approval.version,
        lambda v: v.transition(target, at=at, message=message).model_copy(update=extra)
        if v.status is Status.AWAITING_APPROVAL else v,
    )
    if version.status is before.status:
        return version
    notify("approval decided", lambda: deps.chat.approval_decided(approval, version))
    if version.status is Status.QUEUED:
        return launch_then_post(deps, version)
    return tell_change(deps, before, version, "rejected")


def _outcome(decision: Decision, *, by: str, note: str) -> tuple[Status, str, dict]:
    """Where a decision moves its version: (status, history message, fields to set)."""
    if decision is Decision.APPROVED:
        return Status.QUEUED, f"approved by {by}", {"approved_by": by}
    if decision is Decision.EXPIRED:
        message = "request expired"
    elif decision is Decision.WITHDRAWN:
        message = f"withdrawn by {by}"
    else:
        message = f"rejected by {by}" + (f": {note}" if note else "")
    return Status.REJECTED, message, {"failure_reason": message}


def _record(
    deps: Deps, approval: Approval, decision: Decision, *, by: str, note: str
) -> tuple[Approval, JobVersion]:
    """Decide and move the version in one store write, so that no crash can leave a decided
    request whose version still awaits it."""
    now = deps.clock.now()
    target, message, extra = _outcome(decision, by=by, note=note)
    for _ in range(MAX_ATTEMPTS):
        before = deps.store.get_version(approval.job, approval.version)
        if before.status is not Status.AWAITING_APPROVAL:
            raise _no_longer_awaiting(deps, approval, before)
        moved = before.transition(target, at=now, message=message).model_copy(update=extra)
        try:
            decided, version = deps.store.decide_approval_and_version(
                approval.id, decision, by=by, at=now, note=note, version=moved)
        except StaleWrite:
            continue  # the version changed (its card was posted): read it again
        except Conflict:
            raise _already(deps.store.get_approval(approval.id)) from None
        break
    else:
        raise StaleWrite(f"{approval.job} v{approval.version} kept changing; try again.")
    notify("approval decided", lambda: deps.chat.approval_decided(decided, version))
    if target is Status.REJECTED:
        version = tell_change(deps, before, version, "rejected")
    return decided, version


def _no_longer_awaiting(
    deps: Deps, approval: Approval, version: JobVersion
) -> Conflict | InvalidInput:
    """The answer for a request whose version moved on: decided meanwhile (a Conflict naming
    who), or moved without it (withdrawn before withdrawing decided the request too), when
    the request is closed so its buttons go."""
    current = deps.store.get_approval(approval.id)
    if not current.pending:
        return _already(current)
    if version.status.terminal:
        try:
            closed = deps.store.decide_approval(
                approval.id, Decision.WITHDRAWN, by=version.requested_by,
                at=deps.clock.now())
        except Conflict:
            pass
        else:
            notify("approval decided", lambda: deps.chat.approval_decided(closed, version))
    why = version.failure_reason or (version.history[-1].message if version.history else "")
    return InvalidInput(
        f"Request `{approval.id}` can't be decided: {version.label} is no longer awaiting "
        f"approval (it is {version.status.value.lower()}" + (f": {why})." if why else ").")
    )


def _already(approval: Approval) -> Conflict:
    who = "trainbot (it expired)" if approval.decision is Decision.EXPIRED else (
        f"<@{approval.decided_by}>")
    return Conflict(f"Request `{approval.id}` was already {approval.decision} by {who}.")
