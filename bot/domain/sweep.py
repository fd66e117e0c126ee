"""A sweep's record and its trials (no I/O).

A sweep is a job whose versions are its trials: trial ``n`` is the version created for the
``n``-th point the search tried (``JobVersion.trial``), so versions, diff, lineage, eval and
TensorBoard work per trial. The sweep record holds what is the sweep's own — its spec, its
status, its card, the backend's tuning job — and never a copy of a trial: :func:`trials_of`
reads the trials off the versions, so the two can't disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.algorithm import HPValue
from bot.domain.job import JOB_NAME, JobVersion
from bot.domain.status import Status
from bot.domain.sweep_space import SweepSpec

__all__ = [
    "SWEEP_FIXED_FIELDS",
    "Sweep",
    "SweepStatus",
    "Trial",
    "TrialCounts",
    "TrialState",
    "best",
    "counts",
    "ranked",
    "trial_request_key",
    "trials_of",
]

# Outbox entries of a sweep: what the channel must still hear.
ENDED = "ended"


class SweepStatus(StrEnum):
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"

    @property
    def terminal(self) -> bool:
        return self in (SweepStatus.COMPLETED, SweepStatus.STOPPED, SweepStatus.FAILED,
                        SweepStatus.REJECTED)


TrialState = Literal["running", "completed", "pruned", "failed"]


class Trial(BaseModel):
    """One point tried, as its version says: parameters, state, objective (the objective
    metric's last value) and the objective's values as training went (for pruning)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=0)
    version: int = Field(ge=1)
    params: dict[str, HPValue]
    state: TrialState = "running"
    objective: float | None = Field(default=None, allow_inf_nan=False)
    intermediate: list[tuple[int, float]] = Field(default_factory=list)
    model: bool = False  # its version left a model artifact (it can be registered)

    @property
    def finished(self) -> bool:
        return self.state != "running"


class TrialCounts(NamedTuple):
    done: int
    running: int
    pruned: int
    failed: int

    @property
    def total(self) -> int:
        return self.done + self.running + self.pruned + self.failed


# Set when the sweep is created and never rewritten: stores ignore changes to them on save.
SWEEP_FIXED_FIELDS = frozenset({"name", "spec", "requested_by", "created_at", "origin",
                                "request_key", "backend"})


class Sweep(BaseModel):
    """A sweep: what it searches (``spec``), where its backend runs it, where its card is.

    ``backend`` is the tuner that drives it (``optuna`` locally, ``sagemaker`` on AWS) and
    ``backend_name`` the backend's own name for it (SageMaker's tuning job), recorded before
    the backend is called so its events always find the sweep. ``best_told`` is the trial
    whose "new best" the thread heard last (each new best is told once); ``outbox`` what the
    channel must still hear (the end), kept until the chat took it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    spec: SweepSpec
    status: SweepStatus = SweepStatus.RUNNING
    requested_by: str
    created_at: datetime
    updated_at: datetime | None = None
    ended_at: datetime | None = None
    origin: str = Field(default="", max_length=300)  # "preset fast", "digits v3", ""
    backend: str = "optuna"
    backend_name: str | None = None
    request_key: str | None = None
    approval_id: str | None = None
    approved_by: str | None = None
    estimated_cost_usd: float | None = None
    channel: str | None = None
    message_ts: str | None = None
    card_error: str | None = None
    best_told: int | None = Field(default=None, ge=0)
    # Trials reserved so far: trial n is created only after this moved past n in a write
    # that required the sweep RUNNING, so a stop can't miss a trial being created.
    next_trial: int = Field(default=0, ge=0)
    stopped_by: str | None = None
    failure_reason: str | None = Field(default=None, max_length=1000)
    outbox: list[str] = Field(default_factory=list)
    revision: int = 0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not JOB_NAME.match(v):
            raise ValueError(f"invalid job name {v!r}")
        return v

    @property
    def label(self) -> str:
        return f"sweep {self.name}"

    def is_done(self) -> bool:
        return self.status.terminal

    def transition(self, target: SweepStatus, *, at: datetime) -> Sweep:
        """The sweep moved to ``target``, or ``self`` when that wouldn't move it forward:
        terminal states are final, RUNNING is only left, STOPPING only leads to an end. An
        end puts the end's announcement in the outbox in the same write."""
        if self.status.terminal or target == self.status:
            return self
        if target is SweepStatus.RUNNING and self.status is not SweepStatus.AWAITING_APPROVAL:
            return self
        if target is SweepStatus.AWAITING_APPROVAL:
            return self
        update: dict[str, object] = {"status": target, "updated_at": at}
        if target.terminal:
            update["ended_at"] = at
            if ENDED not in self.outbox:
                update["outbox"] = [*self.outbox, ENDED]
        return self.model_copy(update=update)


def trial_request_key(sweep: str, number: int) -> str:
    """The request key of trial ``number``'s version: creating it twice creates one."""
    return f"sweep:{sweep}:trial:{number}"


def _trial_state(version: JobVersion) -> TrialState:
    if not version.status.terminal:
        return "running"
    if version.status is Status.COMPLETED:
        return "completed"  # it finished before the stop that pruned it took effect
    if version.pruned:
        return "pruned"
    return "failed"


def trials_of(spec: SweepSpec, versions: Iterable[JobVersion]) -> list[Trial]:
    """The sweep's trials, read off its job's versions (by trial number): the swept
    parameters' values, the state, the objective (a completed trial without one counts as
    failed: the search can't rank it) and the objective's intermediate values."""
    names = [r.name for r in spec.ranges]
    out: dict[int, Trial] = {}
    for v in versions:
        if v.trial is None or v.trial in out:
            continue
        params = {n: v.spec.hyperparameters[n] for n in names if n in v.spec.hyperparameters}
        state = _trial_state(v)
        objective = v.metrics.get(spec.objective_metric)
        series = v.series.get(spec.objective_metric)
        if state == "completed" and objective is None:
            state = "failed"
        out[v.trial] = Trial(number=v.trial, version=v.number, params=params, state=state,
                             objective=objective if state == "completed" else None,
                             intermediate=list(series.points) if series else [],
                             model=bool(v.artifacts.model))
    return [out[n] for n in sorted(out)]


def ranked(spec: SweepSpec, trials: Iterable[Trial]) -> list[Trial]:
    """Completed trials with an objective, best first (ties: the earlier trial)."""
    sign = -1.0 if spec.objective_goal == "maximize" else 1.0
    scored = [(sign * t.objective, t.number, t) for t in trials
              if t.state == "completed" and t.objective is not None]
    return [t for _, _, t in sorted(scored, key=lambda p: (p[0], p[1]))]


def best(spec: SweepSpec, trials: Iterable[Trial]) -> Trial | None:
    top = ranked(spec, trials)
    return top[0] if top else None


def counts(trials: Iterable[Trial]) -> TrialCounts:
    states = [t.state for t in trials]
    return TrialCounts(done=states.count("completed"), running=states.count("running"),
                       pruned=states.count("pruned"), failed=states.count("failed"))
