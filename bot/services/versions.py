"""Small helpers every use case shares: read-modify-write with retry, safe chat calls."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.domain import JobVersion, StaleWrite
from bot.ports import JobStore

__all__ = ["mutate_version", "notify"]

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
    except Exception:
        log.exception("chat notification failed: %s", what)
        return None
