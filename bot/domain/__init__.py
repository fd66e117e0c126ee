"""The domain: pydantic models and rules, no I/O, no framework imports."""

from bot.domain.algorithm import Algorithm, ChannelSpec, HyperParameter, MetricDefinition, Objective
from bot.domain.approval import Approval, Decision
from bot.domain.errors import (
    BackendError,
    BackendRejected,
    ConfigError,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    QuotaExceeded,
    StaleWrite,
    TrainbotError,
)
from bot.domain.events import TrainingJobDetail, TrainingJobStateChange
from bot.domain.job import Artifacts, JobVersion, MetricSummary, Progress, StatusChange, TrainingJob
from bot.domain.lineage import Lineage, LineageNode
from bot.domain.pool import ResourcePool
from bot.domain.preset import Preset
from bot.domain.spec import JobSpec
from bot.domain.status import Status

__all__ = [
    "Algorithm",
    "Approval",
    "Artifacts",
    "BackendError",
    "BackendRejected",
    "ChannelSpec",
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
    "TrainbotError",
    "TrainingJob",
    "TrainingJobDetail",
    "TrainingJobStateChange",
]
