"""The version state machine.

States only move forward. SageMaker delivers state-change events at least once and in no
guaranteed order, so applying an event that would move a version backwards (a late
``TRAINING`` after ``COMPLETED``) is a no-op rather than an error.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ACTIVE", "TERMINAL", "Status", "can_transition"]


class Status(StrEnum):
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    TRAINING = "TRAINING"
    UPLOADING = "UPLOADING"
    STOPPING = "STOPPING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    REJECTED = "REJECTED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def emoji(self) -> str:
        return _EMOJI[self]


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED, Status.REJECTED})
ACTIVE = frozenset(set(Status) - TERMINAL)

_RANK = {
    Status.AWAITING_APPROVAL: 0,
    Status.QUEUED: 10,
    Status.STARTING: 20,
    Status.TRAINING: 30,
    Status.UPLOADING: 40,
    Status.STOPPING: 50,
    Status.COMPLETED: 100,
    Status.FAILED: 100,
    Status.STOPPED: 100,
    Status.REJECTED: 100,
}

_EMOJI = {
    Status.AWAITING_APPROVAL: ":hourglass_flowing_sand:",
    Status.QUEUED: ":inbox_tray:",
    Status.STARTING: ":rocket:",
    Status.TRAINING: ":gear:",
    Status.UPLOADING: ":outbox_tray:",
    Status.STOPPING: ":octagonal_sign:",
    Status.COMPLETED: ":white_check_mark:",
    Status.FAILED: ":x:",
    Status.STOPPED: ":black_square_for_stop:",
    Status.REJECTED: ":no_entry_sign:",
}


def can_transition(current: Status, target: Status) -> bool:
    """True when ``current → target`` moves the version forward.

    - terminal states are final;
    - ``REJECTED`` only ends a request awaiting approval, and such a request only
      leaves that state by approval (``QUEUED``) or rejection;
    - otherwise a state may be skipped (a missed event) but never revisited.
    """
    if current.terminal or current == target:
        return False
    if current is Status.AWAITING_APPROVAL:
        return target in (Status.QUEUED, Status.REJECTED)
    if target is Status.REJECTED:
        return False
    return _RANK[target] > _RANK[current]
