"""The domain: pydantic models and rules, no I/O, no framework imports.

Names load on first use (PEP 562): ``from bot.domain import InvalidInput`` imports only the
exception tree, so the Slack ack path — which needs the errors but none of the models —
doesn't pay for pydantic and the model classes (~0.1 s on a Lambda cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.domain.algorithm import (
        Algorithm,
        AlgorithmSource,
        ChannelSpec,
        HyperParameter,
        MetricDefinition,
        Objective,
    )
    from bot.domain.approval import Approval, Decision
    from bot.domain.errors import (
        BackendError,
        BackendRejected,
        ChatUndelivered,
        ConfigError,
        Conflict,
        InvalidInput,
        NotAllowed,
        NotFound,
        QuotaExceeded,
        StaleWrite,
        TrainbotError,
    )
    from bot.domain.events import (
        TrainingJobDetail,
        TrainingJobStateChange,
        TuningJobDetail,
        TuningJobStateChange,
    )
    from bot.domain.job import (
        Artifacts,
        JobVersion,
        MetricSummary,
        Progress,
        StatusChange,
        TrainingJob,
    )
    from bot.domain.lineage import Lineage, LineageNode
    from bot.domain.model import ModelStatus, ModelVersion
    from bot.domain.pool import ResourcePool
    from bot.domain.preset import Preset
    from bot.domain.spec import JobSpec
    from bot.domain.status import Status
    from bot.domain.sweep import Sweep, SweepStatus, Trial

# public name → the submodule that defines it
_HOME = {
    **dict.fromkeys(("Algorithm", "AlgorithmSource", "ChannelSpec", "HyperParameter",
                     "MetricDefinition", "Objective"), "algorithm"),
    **dict.fromkeys(("Approval", "Decision"), "approval"),
    **dict.fromkeys(("ModelStatus", "ModelVersion"), "model"),
    **dict.fromkeys(("BackendError", "BackendRejected", "ChatUndelivered", "ConfigError",
                     "Conflict",
                     "InvalidInput", "NotAllowed", "NotFound", "QuotaExceeded", "StaleWrite",
                     "TrainbotError"), "errors"),
    **dict.fromkeys(("TrainingJobDetail", "TrainingJobStateChange", "TuningJobDetail",
                     "TuningJobStateChange"), "events"),
    **dict.fromkeys(("Sweep", "SweepStatus", "Trial"), "sweep"),
    **dict.fromkeys(("Artifacts", "JobVersion", "MetricSummary", "Progress", "StatusChange",
                     "TrainingJob"), "job"),
    **dict.fromkeys(("Lineage", "LineageNode"), "lineage"),
    "ResourcePool": "pool",
    "Preset": "preset",
    "JobSpec": "spec",
    "Status": "status",
}

__all__ = [
    "Algorithm",
    "AlgorithmSource",
    "Approval",
    "Artifacts",
    "BackendError",
    "BackendRejected",
    "ChannelSpec",
    "ChatUndelivered",
    "ConfigError",
    "Conflict",
    "Decision",
    "HyperParameter",
    "InvalidInput",
    "JobSpec",
    "JobVersion",
    "Lineage",
    "LineageNode",
    "MetricDefinition",
    "MetricSummary",
    "ModelStatus",
    "ModelVersion",
    "NotAllowed",
    "NotFound",
    "Objective",
    "Preset",
    "Progress",
    "QuotaExceeded",
    "ResourcePool",
    "StaleWrite",
    "Status",
    "StatusChange",
    "Sweep",
    "SweepStatus",
    "TrainbotError",
    "TrainingJob",
    "TrainingJobDetail",
    "TrainingJobStateChange",
    "Trial",
    "TuningJobDetail",
    "TuningJobStateChange",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.domain' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bot.domain.{module}"), name)
    globals()[name] = value  # the next lookup is an ordinary module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
