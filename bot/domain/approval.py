"""Approvals: a request to launch a version that someone else must decide, once."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.algorithm import HPValue

__all__ = ["APPROVAL_MUTABLE_FIELDS", "Approval", "Decision"]


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    # The requester stopped the version before anyone decided: nobody may approve it now.
    WITHDRAWN = "withdrawn"


# Fields that change after a request is created; stores write each on its own so that
# deciding and recording the card's message never overwrite each other.
APPROVAL_MUTABLE_FIELDS = (
    "decision", "decided_by", "decided_at", "decision_note", "channel", "message_ts",
)


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9-]{4,64}$")
    job: str
    version: int = Field(ge=1, description="the version awaiting this decision")
    base_version: int | None = Field(default=None, description="the version being rerun")
    overrides: dict[str, HPValue] = Field(default_factory=dict)
    pool: str
    reason: str = Field(default="", description="why approval is needed")
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    decision: Decision | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str = Field(default="", max_length=500)
    channel: str | None = None
    message_ts: str | None = None

    @property
    def pending(self) -> bool:
        return self.decision is None

    def expired(self, now: datetime) -> bool:
        return self.decision is None and now >= self.expires_at
