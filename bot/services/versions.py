"""Small helpers every use case shares: read-modify-write with retry, safe chat calls, and
the outbox that keeps what the channel must hear until the chat took it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.domain import ChatUndelivered, JobVersion, StaleWrite
from bot.domain.job import ANNOUNCE
from bot.ports import JobStore
from bot.services.context import Deps

__all__ = ["deliver_outbox", "mutate_version", "notify", "tell_change", "try_chat"]

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


def try_chat(what: str, call: Callable[[], object]) -> tuple[object | None, str | None]:
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


def deliver_outbox(deps: Deps, version: JobVersion) -> JobVersion:
    """Deliver the version's outbox; clear what was delivered. Safe to call again."""
    store, chat = deps.store, deps.chat
    if not version.outbox:
        return version
    delivered = []
    for notice in version.outbox:
        if notice == ANNOUNCE and version.status.terminal:
            _, error = try_chat(f"announcement of {version.label}", lambda: chat.announce(version))
            if error is not None:
                break  # kept; the next reconcile tries again
        delivered.append(notice)
    if not delivered:
        return version
    _, after = mutate_version(store, version.job, version.number, lambda v: v.model_copy(
        update={"outbox": [n for n in v.outbox if n not in delivered]}))
    return after

