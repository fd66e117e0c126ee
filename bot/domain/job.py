"""Training jobs and their immutable versions."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.errors import InvalidInput
from bot.domain.spec import JobSpec
from bot.domain.status import Status, can_transition

__all__ = [
    "ANNOUNCE",
    "VERSION_FIXED_FIELDS",
    "Artifacts",
    "JobVersion",
    "MetricSummary",
    "Progress",
    "StatusChange",
    "TrainingJob",
    "validate_job_name",
]

# A job name is the stem of a SageMaker TrainingJobName (``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``)
# that still leaves room for the prefix and the ``-vNNN-xxxx`` suffix, hence 40 characters.
# \Z, not $: "$" also matches before a trailing newline.
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}\Z")
MAX_LOG_TAIL = 30
ANNOUNCE = "announce"
MAX_SERIES_POINTS = 200


def validate_job_name(name: str) -> str:
    if not JOB_NAME.match(name or ""):
        raise InvalidInput(
            f"`{name}` is not a valid job name.",
            hint="Use 1-40 letters, digits and single hyphens, starting and ending with a "
            "letter or digit (it becomes part of the training job name on SageMaker).",
        )
    return name


class TrainingJob(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    owner: str
    channel: str | None = None
    created_at: datetime
    latest_version: int = Field(default=0, ge=0)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not JOB_NAME.match(v):
            raise ValueError(f"invalid job name {v!r}")
        return v


class StatusChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Status
    at: datetime
    message: str = ""


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    current: float | None = None
    total: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    updated_at: datetime | None = None

    @property
    def percent(self) -> float | None:
        if self.current is None or not self.total:
            return None
        return max(0.0, min(100.0, 100.0 * self.current / self.total))


class MetricSummary(BaseModel):
    """A bounded summary of one metric's series (enough for a chart and a diff)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first: float
    last: float
    min: float
    max: float
    count: int
    points: list[tuple[int, float]] = Field(default_factory=list)


class Artifacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = None
    output: str | None = None
    logs: str | None = None
    tensorboard: str | None = None
    checkpoints: str | None = None


# Set when a version is created and never rewritten: stores ignore changes to them on save.
VERSION_FIXED_FIELDS = frozenset(
    {"job", "number", "parent", "spec", "requested_by", "created_at", "request_key", "trial"}
)


class JobVersion(BaseModel):
    """One immutable run of a job. The spec never changes; status and results do.

    ``revision`` is the optimistic-concurrency counter the stores check on every write.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    number: int = Field(ge=0, description="0 until the store allocates it")
    parent: int | None = None
    spec: JobSpec
    requested_by: str
    approved_by: str | None = None
    approval_id: str | None = None
    backend: str | None = None
    backend_job_name: str | None = None
    status: Status
    secondary_status: str | None = None
    history: list[StatusChange] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    progress: Progress | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    series: dict[str, MetricSummary] = Field(default_factory=dict)
    evaluation: dict | None = None
    artifacts: Artifacts = Field(default_factory=Artifacts)
    failure_reason: str | None = None
    log_tail: list[str] = Field(default_factory=list)
    compute_note: str | None = None
    billable_seconds: int | None = None
    training_seconds: int | None = None
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    # Why the version card couldn't be posted (a Slack error code), for the hint users get.
    card_error: str | None = None
    # What the channel must still hear (e.g. ``"announce"``): written with the change that
    # calls for it and cleared once the chat took it; the reconcile retries what is left.
    outbox: list[str] = Field(default_factory=list)
    # Managed spot: how many times the backend interrupted the run (it resumes by itself).
    spot_interruptions: int = 0
    request_key: str | None = None
    # Holds one of its pool's ``max_concurrent`` slots: taken by the store in the write that
    # claims the backend name, given back by the store in the write that ends the version.
    pool_slot: bool = False
    # Caps it holds besides its pool's place (per user, per channel, and their per-pool
    # forms; see ``bot.domain.cost.Full``): taken with ``pool_slot`` in the claim's write,
    # given back by the store in the write that ends the version.
    caps: list[str] = Field(default_factory=list)
    # Why a QUEUED version waits (a full cap, its place in line), for its card.
    queue_reason: str | None = None
    # Spend: ``charged_usd`` (its ceiling, spot-discounted when spot) is added to the
    # ``charge_keys`` ledger counters of ``charge_periods`` by the claim's write; the write
    # that ends it takes that back and adds ``actual_cost_usd`` (``charge_settled``).
    estimated_spot_cost_usd: float | None = None
    charged_usd: float | None = None
    charge_periods: list[str] = Field(default_factory=list)
    charge_keys: list[str] = Field(default_factory=list)
    charge_settled: bool = False
    spot_saving_usd: float | None = None
    # Told in its thread that it reached 80 % of its max runtime (once).
    ceiling_warned: bool = False
    # A sweep's trial: its number in the sweep (the sweep is this version's job), and
    # whether the search stopped it early for doing worse than the others at the same step.
    trial: int | None = Field(default=None, ge=0)
    pruned: bool = False
    revision: int = 0

    @property
    def label(self) -> str:
        return f"{self.job} v{self.number}"

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or self.updated_at
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def last_sign_of_life(self) -> datetime:
        """The newest progress report or backend status change: a running version silent
        since longer than the stuck threshold is stuck."""
        reported = self.progress.updated_at if self.progress else None
        return max(reported, self.updated_at) if reported else self.updated_at

    def transition(self, target: Status, *, at: datetime, message: str = "") -> JobVersion:
        """Return the version moved to ``target``, or ``self`` if that would not move it forward."""
        if not can_transition(self.status, target):
            return self
        changes: dict[str, object] = {
            "status": target,
            "history": [*self.history, StatusChange(status=target, at=at, message=message)],
            "updated_at": at,
        }
        if target in (Status.STARTING, Status.TRAINING) and self.started_at is None:
            changes["started_at"] = at
        if target.terminal:
            changes["ended_at"] = at
            changes["progress"] = None if target is not Status.COMPLETED else self.progress
            if self.channel and self.trial is None and ANNOUNCE not in self.outbox:
                # The end of a run is announced in its channel; kept until delivered (a
                # sweep's trial is told on the sweep's card instead).
                changes["outbox"] = [*self.outbox, ANNOUNCE]
        return self.model_copy(update=changes)
