"""The SageMaker "Training Job State Change" event, as EventBridge delivers it.

The local backend emits the same shape, so one service handles both. ``detail`` mirrors
DescribeTrainingJob; times arrive as epoch milliseconds (EventBridge) or datetimes (boto3).
https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.status import Status

__all__ = [
    "DETAIL_TYPE",
    "INTERRUPTED",
    "FinalMetric",
    "TrainingJobDetail",
    "TrainingJobStateChange",
    "status_from_sagemaker",
]

DETAIL_TYPE = "SageMaker Training Job State Change"
INTERRUPTED = "Interrupted"  # SecondaryStatus of a managed-spot job that lost its instance
SOURCE = "aws.sagemaker"

_STARTING_SECONDARY = {
    "Starting",
    "Pending",
    "LaunchingMLInstances",
    "PreparingTrainingStack",
    "Downloading",
    "DownloadingTrainingImage",
    "Restarting",
}


def _to_datetime(v: Any) -> Any:
    if isinstance(v, int | float) and not isinstance(v, bool):
        # EventBridge sends epoch milliseconds; DescribeTrainingJob JSON sometimes seconds.
        seconds = v / 1000.0 if v > 10_000_000_000 else float(v)
        return datetime.fromtimestamp(seconds, tz=UTC)
    return v


class FinalMetric(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="MetricName")
    value: float = Field(alias="Value")
    timestamp: datetime | None = Field(default=None, alias="Timestamp")

    _ts = field_validator("timestamp", mode="before")(_to_datetime)


class SecondaryTransition(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: str = Field(alias="Status")
    start_time: datetime | None = Field(default=None, alias="StartTime")
    end_time: datetime | None = Field(default=None, alias="EndTime")
    message: str = Field(default="", alias="StatusMessage")

    _ts = field_validator("start_time", "end_time", mode="before")(_to_datetime)


class TrainingJobDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="TrainingJobName")
    arn: str | None = Field(default=None, alias="TrainingJobArn")
    status: str = Field(alias="TrainingJobStatus")
    secondary_status: str | None = Field(default=None, alias="SecondaryStatus")
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    final_metrics: list[FinalMetric] = Field(default_factory=list, alias="FinalMetricDataList")
    model_artifacts: dict[str, str] | None = Field(default=None, alias="ModelArtifacts")
    transitions: list[SecondaryTransition] = Field(
        default_factory=list, alias="SecondaryStatusTransitions"
    )
    billable_seconds: int | None = Field(default=None, alias="BillableTimeInSeconds")
    training_seconds: int | None = Field(default=None, alias="TrainingTimeInSeconds")
    creation_time: datetime | None = Field(default=None, alias="CreationTime")
    start_time: datetime | None = Field(default=None, alias="TrainingStartTime")
    end_time: datetime | None = Field(default=None, alias="TrainingEndTime")
    last_modified: datetime | None = Field(default=None, alias="LastModifiedTime")
    tags: dict[str, str] = Field(default_factory=dict, alias="Tags")

    _ts = field_validator(
        "creation_time", "start_time", "end_time", "last_modified", mode="before"
    )(_to_datetime)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> Any:
        # EventBridge sends a map; DescribeTrainingJob/ListTags a list of {Key, Value}.
        if isinstance(v, list):
            return {t["Key"]: t["Value"] for t in v}
        return v or {}

    @property
    def spot_interruptions(self) -> int:
        """How many spot interruptions the transitions list (0 when it isn't sent)."""
        return sum(1 for t in self.transitions if t.status == INTERRUPTED)

    @property
    def model_uri(self) -> str | None:
        return (self.model_artifacts or {}).get("S3ModelArtifacts")

    @property
    def domain_status(self) -> Status:
        return status_from_sagemaker(self.status, self.secondary_status)


class TrainingJobStateChange(BaseModel):
    """The EventBridge envelope around :class:`TrainingJobDetail`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = None
    source: str = SOURCE
    detail_type: str = Field(default=DETAIL_TYPE, alias="detail-type")
    time: datetime | None = None
    resources: list[str] = Field(default_factory=list)
    detail: TrainingJobDetail


def status_from_sagemaker(status: str, secondary: str | None) -> Status:
    """Map TrainingJobStatus + SecondaryStatus onto trainbot's states."""
    if status == "Completed":
        return Status.COMPLETED
    if status == "Failed":
        return Status.FAILED
    if status == "Stopped":
        return Status.STOPPED
    if status == "Stopping":
        return Status.STOPPING
    if secondary == "Training":
        return Status.TRAINING
    if secondary == "Uploading":
        return Status.UPLOADING
    if secondary == "Stopping":
        return Status.STOPPING
    # Managed spot: Training → Interrupted → Starting → … → Training, resumed from the
    # checkpoint. "Interrupted" is not a stop; STARTING ranks below TRAINING, so a running
    # version stays TRAINING through the cycle (the secondary status tells the story).
    # https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html
    return Status.STARTING
