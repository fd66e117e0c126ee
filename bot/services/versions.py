"""Small helpers every use case shares: read-modify-write with retry, safe chat calls, and
the outbox that keeps what the channel must hear until the chat took it."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from bot.domain import ChatUndelivered, JobVersion, StaleWrite
from bot.domain.job import ANNOUNCE
from bot.ports import JobStore
from bot.services.context import Deps

T = TypeVar("T")

__all__ = [
    "ANNOUNCE_LEASE",
    "claimed",
    "deliver_outbox",
    "lease_end",
    "mutate_version",
    "new_lease",
    "notify",
    "settled",
    "tell_change",
    "try_chat",
]

log = logging.getLogger("trainbot")
MAX_ATTEMPTS = 20


def mutate_version(
    store: JobStore, job: str, number: int, change: Callable[[JobVersion], JobVersion]
) -> tuple[JobVersion, JobVersion]:
    """Apply ``change`` to the stored version with compare-and-set, retrying lost races.

    Returns ``(before, after)``; when ``change`` returns its argument unchanged nothing is
    written (so a duplicate event is a no-op).
    """
    for _ in range(MAX_ATTEMPTS):
        current = store.get_version(job, number)
        updated = change(current)
        if updated == current:
            return current, current
        try:
            return current, store.save_version(updated)
        except StaleWrite:
            continue
    raise StaleWrite(f"{job} v{number} kept changing; try again.")


def notify(what: str, call: Callable[[], object]) -> object | None:
    """Run a chat call; a chat failure must never undo or block a stored change."""
    try:
        return call()
    except ChatUndelivered as exc:
        log.warning("chat didn't take the %s: %s", what, exc.code)
        return None
    except Exception:
        log.exception("chat notification failed: %s", what)
        return None


def try_chat(what: str, call: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run a chat call; return ``(result, None)``, or ``(None, code)`` when the chat didn't
    take it (``code`` is the chat's error code, ``internal_error`` for a crash)."""
    try:
        return call(), None
    except ChatUndelivered as exc:
        log.warning("chat didn't take the %s: %s", what, exc.code)
        return None, exc.code
    except Exception:
        log.exception("chat notification failed: %s", what)
        return None, "internal_error"


def tell_change(deps: Deps, before: JobVersion, after: JobVersion, what: str) -> JobVersion:
    """Tell the chat about a stored change: the card and its thread (best effort), then
    whatever the change put in the outbox (kept, for the reconcile, if undelivered)."""
    if after.status is not before.status:
        notify(what, lambda: deps.chat.version_changed(after, before.status))
    if (after.job, after.number) in deps.cards_in_flight:
        return after  # the card's poster delivers it, into the card's thread
    return deliver_outbox(deps, after)


# How long a claim on an announcement holds: longer than Slack's bounded retries take.
ANNOUNCE_LEASE = timedelta(minutes=2)


def lease_end(notice: str) -> datetime | None:
    _, _, claim = notice.partition("@")
    until, _, _nonce = claim.partition("#")
    try:
        return datetime.fromisoformat(until) if until else None
    except ValueError:
        return None


def new_lease(notice: str, now: datetime) -> str:
    """A claim on ``notice`` until the lease ends; the nonce makes each caller's its own,
    even at the same instant."""
    return f"{notice}@{(now + ANNOUNCE_LEASE).isoformat()}#{secrets.token_hex(4)}"


def claimed(outbox: list[str], notice: str, lease: str, now: datetime) -> list[str]:
    """``outbox`` with ``notice`` (or a claim on it whose lease ended) replaced by ``lease``;
    unchanged when there is nothing to claim (another caller holds a live claim)."""
    for entry in outbox:
        end = lease_end(entry)
        if entry == notice or (end is not None and end <= now and entry.startswith(notice)):
            return [lease if e == entry else e for e in outbox]
    return outbox


def settled(outbox: list[str], lease: str, notice: str, *, told: bool) -> list[str]:
    """After a claim: the lease removed when the chat took it, else ``notice`` handed back
    for the reconcile."""
    return [m for e in outbox for m in (([] if told else [notice]) if e == lease else [e])]


def deliver_outbox(deps: Deps, version: JobVersion) -> JobVersion:
    """Deliver the version's announcement once; safe to call again and from several places
    at once (the event handler, the launch, the reconcile).

    The announcement is claimed first — ``announce`` becomes ``announce@<lease end>#<nonce>``
    with a
    compare-and-set — so only the caller that won the claim posts it; it is removed once Slack
    took it, or handed back when Slack didn't. A claim left by a crash expires with its lease.
    """
    if not version.outbox or not version.status.terminal:
        return version
    now = deps.clock.now()
    lease = new_lease(ANNOUNCE, now)
    _, held = mutate_version(deps.store, version.job, version.number, lambda v: v.model_copy(
        update={"outbox": claimed(v.outbox, ANNOUNCE, lease, now)}))
    if lease not in held.outbox:
        return held  # nothing to announce, or another caller holds a live claim
    _, error = try_chat(f"announcement of {held.label}", lambda: deps.chat.announce(held))
    _, after = mutate_version(deps.store, held.job, held.number, lambda v: v.model_copy(
        update={"outbox": settled(v.outbox, lease, ANNOUNCE, told=error is None)}))
    return after

