"""Spend: what a version is charged under, the ledger of spend per period, budgets (no I/O).

Every launched version is charged to a few ledger *keys* in two *periods* — its calendar
month (``2026-11``) and its ISO week (``2026-W48``, for the weekly digest): ``total``,
``channel:C…``, ``user:U…``, ``pool:gpu-1``, ``algorithm:…`` and ``job:…``. The launch adds
its ceiling estimate to each key's ``committed_usd``; its end takes the estimate back and adds
what it really cost to ``spent_usd`` — both in the store's write of the version itself, so a
budget check reads a constant number of counters and never sums versions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ALERT_THRESHOLDS",
    "DIMENSIONS",
    "Budget",
    "BudgetPolicy",
    "BudgetScope",
    "CostReport",
    "CostRow",
    "Full",
    "LedgerEntry",
    "charge_keys",
    "month_of",
    "month_start",
    "periods_of",
    "previous_week",
    "week_of",
    "week_start",
]

# What the report can group by, and the prefix of each dimension's ledger keys.
DIMENSIONS = ("user", "channel", "pool", "algorithm", "job")
ALERT_THRESHOLDS = (80, 100)  # percent of a budget: each told once per month


def month_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def week_of(at: datetime) -> str:
    year, week, _ = at.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def periods_of(at: datetime) -> list[str]:
    """The ledger periods a version launched at ``at`` is charged to: its month and week."""
    return [month_of(at), week_of(at)]


def month_start(month: str) -> datetime:
    return datetime.strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=UTC)


def week_start(week: str) -> datetime:
    """Monday 00:00 UTC of ISO week ``2026-W48``."""
    return datetime.strptime(week + "-1", "%G-W%V-%u").replace(tzinfo=UTC)


def previous_week(at: datetime) -> str:
    return week_of(at - timedelta(days=7))


def charge_keys(*, user: str, channel: str | None, pool: str, algorithm: str,
                job: str) -> list[str]:
    keys = ["total", f"user:{user}", f"pool:{pool}", f"algorithm:{algorithm}", f"job:{job}"]
    if channel:
        keys.insert(2, f"channel:{channel}")
    return keys


class LedgerEntry(BaseModel):
    """One key's spend in one period. ``committed_usd``: the ceilings of what runs now;
    ``spent_usd``: what ended versions cost; ``spot_saving_usd``: what managed spot saved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: str
    key: str
    spent_usd: float = 0.0
    committed_usd: float = 0.0
    versions: int = 0  # ended versions counted in spent_usd
    spot_saving_usd: float = 0.0

    @property
    def used_usd(self) -> float:
        """What a budget counts: spent plus what is committed (never below zero)."""
        return max(0.0, self.spent_usd + max(0.0, self.committed_usd))

    @property
    def dimension(self) -> str:
        return self.key.partition(":")[0]

    @property
    def subject(self) -> str:
        return self.key.partition(":")[2]


class BudgetScope(StrEnum):
    CHANNEL = "channel"
    USER = "user"


class BudgetPolicy(StrEnum):
    """Over its limit, a launch needs an approver's OK (``approve``) or is refused."""

    APPROVE = "approve"
    REFUSE = "refuse"


class Budget(BaseModel):
    """A monthly limit in USD on a channel's or a user's spend (spent + committed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: BudgetScope
    subject: str = Field(min_length=1, max_length=64)  # channel id or user id
    limit_usd: float = Field(gt=0, le=10_000_000, allow_inf_nan=False)
    policy: BudgetPolicy = BudgetPolicy.APPROVE
    set_by: str = ""
    set_at: datetime | None = None
    source: Literal["config", "command"] = "command"

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        if not v.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"invalid budget subject {v!r}")
        return v

    @property
    def key(self) -> str:
        """The ledger key it limits."""
        return f"{self.scope.value}:{self.subject}"


class Full(BaseModel):
    """A launch that found a cap full: the cap (``pool:…``, ``user:…``, ``channel:…`` and
    their per-pool forms ``pool-user:POOL:U…``, ``pool-channel:POOL:C…``) and its limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cap: str
    limit: int


class CostRow(BaseModel):
    """One line of a cost report: a user, channel, pool, algorithm or job, or the total."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    spent_usd: float = 0.0
    committed_usd: float = 0.0
    versions: int = 0
    spot_saving_usd: float = 0.0


class CostReport(BaseModel):
    """Spend over a period: the total, one row per ``by`` subject (most spent first), the
    top jobs. ``committed_usd`` is the ceiling of what still runs (a month's report only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: str  # "2026-11", "2026-W47", "last 7 days"
    since: datetime
    until: datetime
    by: str
    total: CostRow
    rows: list[CostRow] = Field(default_factory=list)
    top_jobs: list[CostRow] = Field(default_factory=list)
    channel: str | None = None  # a channel's digest
