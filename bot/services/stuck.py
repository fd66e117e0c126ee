"""The one rule for "stuck", shared by `/train status` and the reconciler."""

from __future__ import annotations

from datetime import datetime

from bot.domain import JobVersion, Status
from bot.services.context import Deps

__all__ = ["is_stuck"]


def is_stuck(deps: Deps, version: JobVersion, *, now: datetime) -> bool:
    """A version the backend has taken (it names a backend job) that hasn't ended and has
    shown no sign of life — progress or a status change — for longer than
    ``deps.stuck_after``. A request awaiting approval or a version queued for a free place
    isn't stuck: nothing runs yet."""
    return (
        version.backend_job_name is not None
        and version.status is not Status.AWAITING_APPROVAL
        and not version.status.terminal
        and now - version.last_sign_of_life > deps.stuck_after
    )
