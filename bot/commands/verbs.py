"""The commands: one small frozen class per verb, holding only what that verb takes.

:func:`bot.commands.parse` builds them from `/train …` or `trainbot …` words; Slack's buttons
and forms build them from a button's value or a form's fields; :func:`bot.dispatch.execute`
runs any of them. ``verb`` is the word the command is typed with (``USAGE``'s key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

__all__ = [
    "Algorithms",
    "Approve",
    "BudgetList",
    "BudgetRemove",
    "BudgetSet",
    "Command",
    "Cost",
    "Diff",
    "Eval",
    "Help",
    "Lineage",
    "Logs",
    "ModelApprove",
    "ModelRegister",
    "ModelReject",
    "Models",
    "Pools",
    "PresetDelete",
    "PresetList",
    "PresetSave",
    "PresetShow",
    "Reject",
    "Rerun",
    "Show",
    "Start",
    "StartForm",
    "StatusQuery",
    "Stop",
    "Sweep",
    "Tb",
    "Versions",
]


@dataclass(frozen=True)
class Help:
    verb: ClassVar[str] = "help"
    topic: str | None = None


@dataclass(frozen=True)
class Algorithms:
    verb: ClassVar[str] = "algorithms"
    algorithm: str | None = None  # one algorithm's details; all of them when None


@dataclass(frozen=True)
class Pools:
    verb: ClassVar[str] = "pools"


@dataclass(frozen=True)
class Start:
    """Start a job from an algorithm or a preset (exactly one of them is set)."""

    verb: ClassVar[str] = "start"
    algorithm: str | None = None
    preset: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    pool: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    job_name: str | None = None
    spot: bool | None = None
    max_runtime_s: int | None = None
    wait: bool = False


@dataclass(frozen=True)
class Sweep:
    """Search hyperparameters: trials of an algorithm, a preset or a version (one of them)."""

    verb: ClassVar[str] = "sweep"
    algorithm: str | None = None
    preset: str | None = None
    from_job: str | None = None
    from_version: int | None = None
    assignments: dict[str, str] = field(default_factory=dict)
    trials: int = 10
    parallel: int = 1
    objective: str | None = None
    strategy: str = "bayesian"
    name: str | None = None
    pool: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    spot: bool | None = None
    max_runtime_s: int | None = None
    wait: bool = False


@dataclass(frozen=True)
class BudgetList:
    verb: ClassVar[str] = "budget"


@dataclass(frozen=True)
class BudgetSet:
    """An admin sets a channel's or a user's monthly budget (USD)."""

    verb: ClassVar[str] = "budget"
    scope: str  # "channel" | "user"
    subject: str
    limit_usd: float
    policy: str = "approve"


@dataclass(frozen=True)
class BudgetRemove:
    verb: ClassVar[str] = "budget"
    scope: str
    subject: str


@dataclass(frozen=True)
class Cost:
    """Spend of a month (default: this one) or of the last N days, grouped."""

    verb: ClassVar[str] = "cost"
    month: str | None = None
    since: str | None = None
    by: str = "pool"


@dataclass(frozen=True)
class StartForm:
    """`/train start` alone: Slack opens the start form; the CLI explains the usage."""

    verb: ClassVar[str] = "start"


@dataclass(frozen=True)
class Rerun:
    verb: ClassVar[str] = "rerun"
    job: str
    version: int | None = None  # the base version; the latest when None
    params: dict[str, str] = field(default_factory=dict)
    pool: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    spot: bool | None = None
    max_runtime_s: int | None = None
    wait: bool = False


@dataclass(frozen=True)
class _OfVersion:
    """A verb about one version of a job: ``JOB [vN]``, the latest when no ``vN``."""

    job: str
    version: int | None = None


@dataclass(frozen=True)
class Stop(_OfVersion):
    verb: ClassVar[str] = "stop"
    wait: bool = False


@dataclass(frozen=True)
class Show(_OfVersion):
    verb: ClassVar[str] = "show"


@dataclass(frozen=True)
class Lineage(_OfVersion):
    verb: ClassVar[str] = "lineage"


@dataclass(frozen=True)
class Eval(_OfVersion):
    verb: ClassVar[str] = "eval"


@dataclass(frozen=True)
class Logs(_OfVersion):
    verb: ClassVar[str] = "logs"


@dataclass(frozen=True)
class Tb(_OfVersion):
    verb: ClassVar[str] = "tb"


@dataclass(frozen=True)
class StatusQuery:
    """`/train status [JOB]` (named apart from the domain's ``Status`` of a version)."""

    verb: ClassVar[str] = "status"
    job: str | None = None  # one job's latest version; the on-call overview when None


@dataclass(frozen=True)
class Versions:
    verb: ClassVar[str] = "versions"
    job: str


@dataclass(frozen=True)
class Diff:
    verb: ClassVar[str] = "diff"
    job: str
    a: int
    b: int


@dataclass(frozen=True)
class PresetList:
    verb: ClassVar[str] = "preset"


@dataclass(frozen=True)
class PresetShow:
    verb: ClassVar[str] = "preset"
    name: str


@dataclass(frozen=True)
class PresetDelete:
    verb: ClassVar[str] = "preset"
    name: str
    # Slack's own confirm dialog was answered (the Delete button): no confirm step here.
    confirmed: bool = False


@dataclass(frozen=True)
class PresetSave:
    """Save a preset from a version (``from_job``) or from an algorithm and arguments."""

    verb: ClassVar[str] = "preset"
    name: str
    description: str | None = None
    from_job: str | None = None
    from_version: int | None = None
    algorithm: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    pool: str | None = None
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Approve:
    verb: ClassVar[str] = "approve"
    request_id: str
    wait: bool = False  # the CLI: until the approved run ends


@dataclass(frozen=True)
class Reject:
    verb: ClassVar[str] = "reject"
    request_id: str
    reason: str | None = None


@dataclass(frozen=True)
class ModelRegister:
    """Register a completed version as the next version of a model group."""

    verb: ClassVar[str] = "model"
    job: str
    version: int | None = None  # the job's best completed version when None
    group: str | None = None  # the job's name when None


@dataclass(frozen=True)
class ModelApprove:
    verb: ClassVar[str] = "model"
    group: str
    number: int
    note: str | None = None


@dataclass(frozen=True)
class ModelReject:
    verb: ClassVar[str] = "model"
    group: str
    number: int
    reason: str | None = None


@dataclass(frozen=True)
class Models:
    verb: ClassVar[str] = "models"
    group: str | None = None  # one group's versions; every group when None


Command: TypeAlias = (
    Help | Algorithms | Pools | Start | StartForm | Rerun | Stop | StatusQuery | Versions | Show
    | Diff | Lineage | Eval | Logs | Tb | PresetList | PresetShow | PresetDelete | PresetSave
    | Approve | Reject | ModelRegister | ModelApprove | ModelReject | Models | Sweep
    | BudgetList | BudgetSet | BudgetRemove | Cost
)
