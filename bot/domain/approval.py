"""Approvals: a request to launch a version that someone else must decide, once."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    """A request to run something someone else must decide: one version (``version``), or a
    whole sweep (``sweep``: ``job`` is the sweep, ``version`` 0) — every trial it would
    launch, decided at once before any does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9-]{4,64}$")
    job: str
    version: int = Field(ge=0, description="the version awaiting this decision (0: a sweep)")
    sweep: bool = False
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

    @model_validator(mode="after")
    def _what(self) -> Approval:
        if (self.version == 0) != self.sweep:
            raise ValueError("an approval is for a version (v1 or later) or for a sweep (v0)")
        return self

    @property
    def pending(self) -> bool:
        return self.decision is None

    def expired(self, now: datetime) -> bool:
        return self.decision is None and now >= self.expires_at
