"""SageMaker's "Training Job State Change" and "HyperParameter Tuning Job State Change"
events, as EventBridge delivers them.

The local backend emits the training job's shape, so one service handles both. ``detail``
mirrors DescribeTrainingJob (DescribeHyperParameterTuningJob for a tuning job); times
arrive as epoch milliseconds (EventBridge, sometimes as a string of digits) or datetimes
(boto3). A training job a tuning job launched (a sweep's trial on SageMaker) names its tuning
job in ``TuningJobArn``.
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
    "TUNING_DETAIL_TYPE",
    "FinalMetric",
    "ObjectiveCounters",
    "TrainingJobCounters",
    "TrainingJobDetail",
    "TrainingJobStateChange",
    "TunedTrainingJob",
    "TuningJobDetail",
    "TuningJobStateChange",
    "TuningObjectiveMetric",
    "status_from_sagemaker",
]

DETAIL_TYPE = "SageMaker Training Job State Change"
TUNING_DETAIL_TYPE = "SageMaker HyperParameter Tuning Job State Change"
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
    if isinstance(v, str) and v.strip().replace(".", "", 1).isdigit():
        v = float(v)  # "1583831889050": epoch milliseconds written as a string
    if isinstance(v, int | float) and not isinstance(v, bool):
        # EventBridge sends epoch milliseconds; DescribeTrainingJob JSON sometimes seconds.
        seconds = v / 1000.0 if v > 10_000_000_000 else float(v)
        return datetime.fromtimestamp(seconds, tz=UTC)
    return v


def _tags(v: Any) -> Any:
    # EventBridge sends a map; DescribeTrainingJob/ListTags a list of {Key, Value}.
    if isinstance(v, list):
        return {t["Key"]: t["Value"] for t in v}
    return v or {}


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
    # Set on a training job a tuning job launched (a sweep's trial on SageMaker).
    tuning_job_arn: str | None = Field(default=None, alias="TuningJobArn")
    # As SageMaker passed them: JSON-encoded in script mode (``"adam"``, ``0.1``, ``true``),
    # plain strings for a container image; a trial's also hold ``_tuning_objective_metric``.
    hyperparameters: dict[str, str] = Field(default_factory=dict, alias="HyperParameters")

    _ts = field_validator(
        "creation_time", "start_time", "end_time", "last_modified", mode="before"
    )(_to_datetime)
    _tag_map = field_validator("tags", mode="before")(_tags)

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _hyperparameters(cls, v: Any) -> Any:
        return {} if v is None else v

    @property
    def tuning_job_name(self) -> str | None:
        """The name of the tuning job that launched this training job, or None.

        Taken from ``TuningJobArn``, where SageMaker may write the name in lower case; a
        trial is named ``<tuning job name>-NNN-xxxxxxxx``, so the name is read off the
        trial's own name when that starts with it, in its real case.
        """
        if not self.tuning_job_arn:
            return None
        _, slash, named = self.tuning_job_arn.rpartition("/")
        if not slash or not named:
            return None
        if self.name.lower().startswith(named.lower() + "-"):
            return self.name[: len(named)]
        return named

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


# --- hyperparameter tuning jobs (a sweep on SageMaker) --------------------------------------


class TuningObjectiveMetric(BaseModel):
    """``FinalHyperParameterTuningJobObjectiveMetric``: a trial's final objective value."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="MetricName")
    value: float = Field(alias="Value")
    type: str | None = Field(default=None, alias="Type")  # Maximize | Minimize


class TunedTrainingJob(BaseModel):
    """``HyperParameterTrainingJobSummary``: a tuning job's (best) trial."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="TrainingJobName")
    arn: str | None = Field(default=None, alias="TrainingJobArn")
    status: str | None = Field(default=None, alias="TrainingJobStatus")
    tuned_hyperparameters: dict[str, str] = Field(default_factory=dict,
                                                  alias="TunedHyperParameters")
    objective: TuningObjectiveMetric | None = Field(
        default=None, alias="FinalHyperParameterTuningJobObjectiveMetric")
    objective_status: str | None = Field(default=None, alias="ObjectiveStatus")
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    creation_time: datetime | None = Field(default=None, alias="CreationTime")
    start_time: datetime | None = Field(default=None, alias="TrainingStartTime")
    end_time: datetime | None = Field(default=None, alias="TrainingEndTime")

    _ts = field_validator("creation_time", "start_time", "end_time", mode="before")(
        _to_datetime)

    @field_validator("tuned_hyperparameters", mode="before")
    @classmethod
    def _tuned(cls, v: Any) -> Any:
        return {} if v is None else v


class TrainingJobCounters(BaseModel):
    """``TrainingJobStatusCounters``: the tuning job's trials by state."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    completed: int = Field(default=0, alias="Completed")
    in_progress: int = Field(default=0, alias="InProgress")
    retryable_error: int = Field(default=0, alias="RetryableError")
    non_retryable_error: int = Field(default=0, alias="NonRetryableError")
    stopped: int = Field(default=0, alias="Stopped")

    @property
    def total(self) -> int:
        return (self.completed + self.in_progress + self.retryable_error
                + self.non_retryable_error + self.stopped)


class ObjectiveCounters(BaseModel):
    """``ObjectiveStatusCounters``: trials whose objective was used, is pending, or failed."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    succeeded: int = Field(default=0, alias="Succeeded")
    pending: int = Field(default=0, alias="Pending")
    failed: int = Field(default=0, alias="Failed")


TUNING_ENDED = frozenset({"Completed", "Failed", "Stopped"})


class TuningJobDetail(BaseModel):
    """The ``detail`` of a tuning job's state change (DescribeHyperParameterTuningJob's
    shape). ``status``: InProgress | Completed | Failed | Stopping | Stopped (and Deleting,
    DeleteFailed). Missing or null counters read as zeros, an empty ``BestTrainingJob`` as
    none."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="HyperParameterTuningJobName")
    arn: str | None = Field(default=None, alias="HyperParameterTuningJobArn")
    status: str = Field(alias="HyperParameterTuningJobStatus")
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    best_training_job: TunedTrainingJob | None = Field(default=None, alias="BestTrainingJob")
    training_job_counters: TrainingJobCounters = Field(
        default_factory=TrainingJobCounters, alias="TrainingJobStatusCounters")
    objective_counters: ObjectiveCounters = Field(
        default_factory=ObjectiveCounters, alias="ObjectiveStatusCounters")
    creation_time: datetime | None = Field(default=None, alias="CreationTime")
    end_time: datetime | None = Field(default=None, alias="HyperParameterTuningEndTime")
    last_modified: datetime | None = Field(default=None, alias="LastModifiedTime")
    tags: dict[str, str] = Field(default_factory=dict, alias="Tags")

    _ts = field_validator("creation_time", "end_time", "last_modified", mode="before")(
        _to_datetime)
    _tag_map = field_validator("tags", mode="before")(_tags)

    @field_validator("best_training_job", mode="before")
    @classmethod
    def _best(cls, v: Any) -> Any:
        return v or None  # EventBridge sends {} before any trial completed

    @field_validator("training_job_counters", "objective_counters", mode="before")
    @classmethod
    def _counters(cls, v: Any) -> Any:
        return {} if v is None else v

    @property
    def ended(self) -> bool:
        return self.status in TUNING_ENDED


class TuningJobStateChange(BaseModel):
    """The EventBridge envelope around :class:`TuningJobDetail`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = None
    source: str = SOURCE
    detail_type: str = Field(default=TUNING_DETAIL_TYPE, alias="detail-type")
    time: datetime | None = None
    resources: list[str] = Field(default_factory=list)
    detail: TuningJobDetail
