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
    Status,
)
from bot.services.context import Deps
from bot.services.launching import approval_deadline, launch_then_post
from bot.services.versions import mutate_version, notify, tell_change, try_chat

__all__ = ["check_can_decide", "decide", "expire", "request_approval"]


def request_approval(
    deps: Deps, version: JobVersion, pool: ResourcePool, *, rerun: bool
) -> tuple[JobVersion, Approval]:
    """Record an approval request for a version AWAITING_APPROVAL and post its card."""
    base = version.parent
    overrides: dict = {}
    if base is not None:
        parent = deps.store.get_version(version.job, base)
        overrides = {k: new for k, (_old, new) in version.spec.changes_from(parent.spec).items()
                     if new is not None}
    why = f"pool `{pool.id}` requires approval" if pool.requires_approval else (
        "reruns need approval" if rerun else "launch needs approval")
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
        expires_at=approval_deadline(deps),
        channel=version.channel,
    ))
    ref, error = try_chat("approval card", lambda: deps.chat.approval_requested(approval, version))
    if ref:
        channel, ts = ref  # type: ignore[misc]
        approval = deps.store.set_approval_message(approval.id, channel=channel, ts=ts)
    elif error is not None:
        # Approvers were told directly; the requester's answer names the request either way.
        _, version = mutate_version(deps.store, version.job, version.number,
                                    lambda v: v.model_copy(update={"card_error": error}))
    return version, approval


def decide(
    deps: Deps, *, approval_id: str, user: str, approve: bool, note: str = ""
) -> tuple[Approval, JobVersion]:
    """Approve or reject, once. A second decision — concurrent or a retry — is a Conflict."""
    approval = check_can_decide(deps, approval_id=approval_id, user=user)
    now = deps.clock.now()
    if approval.expired(now):
        expired = expire(deps, approval)
        raise InvalidInput(
            f"Request `{approval.id}` expired at {approval.expires_at:%Y-%m-%d %H:%M} UTC.",
            hint=f"Ask again with `/train rerun {expired.job} v{approval.base_version or 1}`.",
        )
    decision = Decision.APPROVED if approve else Decision.REJECTED
    approval = _record(deps, approval, decision, by=user, note=note)
    version = deps.store.get_version(approval.job, approval.version)
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
    return _record(deps, approval, Decision.EXPIRED, by="trainbot", note="expired")


def _record(deps: Deps, approval: Approval, decision: Decision, *, by: str, note: str) -> Approval:
    now = deps.clock.now()
    try:
        decided = deps.store.decide_approval(approval.id, decision, by=by, at=now, note=note)
    except Conflict:
        raise _already(deps.store.get_approval(approval.id)) from None
    # Only the one caller that won the decision moves the version on.
    if decision is Decision.APPROVED:
        target, message = Status.QUEUED, f"approved by {by}"
        extra = {"approved_by": by}
    else:
        target, message = Status.REJECTED, (
            "request expired" if decision is Decision.EXPIRED else f"rejected by {by}"
            + (f": {note}" if note else ""))
        extra = {"failure_reason": message}
    before, version = mutate_version(
        deps.store, approval.job, approval.version,
        lambda v: v.transition(target, at=now, message=message).model_copy(update=extra)
        if v.status is Status.AWAITING_APPROVAL else v,
    )
    notify("approval decided", lambda: deps.chat.approval_decided(decided, version))
    if version.status is not before.status and target is Status.REJECTED:
        tell_change(deps, before, version, "rejected")
    return decided


def _already(approval: Approval) -> Conflict:
    who = "trainbot (it expired)" if approval.decision is Decision.EXPIRED else (
        f"<@{approval.decided_by}>")
    return Conflict(f"Request `{approval.id}` was already {approval.decision} by {who}.")
