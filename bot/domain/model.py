"""Models: a completed training version registered in a model group, then approved once.

The same registry on both backends: the store keeps it (every process reads it), and on AWS
each model version is also a SageMaker Model Registry package whose approval status follows
the decision taken in Slack.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MODEL_GROUP_NAME", "MODEL_MUTABLE_FIELDS", "ModelStatus", "ModelVersion"]

# SageMaker's ModelPackageGroupName: 1-63 of letters, digits and hyphens.
MODEL_GROUP_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


# What may change once a model version is registered (stores write these alone; a decision
# is conditional on the stored status).
MODEL_MUTABLE_FIELDS = frozenset(
    {"status", "decided_by", "decided_at", "note", "package_arn", "channel", "message_ts"})


class ModelStatus(StrEnum):
    """SageMaker's ModelApprovalStatus values."""

    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


class ModelVersion(BaseModel):
    """One registered model: version ``number`` of ``group``, trained by ``job`` v``version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field(pattern=MODEL_GROUP_NAME)
    number: int = Field(ge=1)
    job: str
    version: int = Field(ge=1)
    algorithm: str
    algorithm_version: str
    algorithm_digest: str | None = None
    artifact: str = Field(description="the model artifact (model.tar.gz or the model folder)")
    image: str | None = Field(default=None, description="the training image, when there is one")
    metrics: dict[str, float] = Field(default_factory=dict)
    objective_metric: str | None = None
    objective_value: float | None = None
    # job, version, data channels, algorithm digest, approvals of the training version…
    lineage: dict[str, str] = Field(default_factory=dict)
    status: ModelStatus = ModelStatus.PENDING
    registered_by: str
    registered_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str = Field(default="", max_length=500)
    # The SageMaker model package (AWS), once created.
    package_arn: str | None = None
    # The approval card.
    channel: str | None = None
    message_ts: str | None = None

    @property
    def label(self) -> str:
        return f"{self.group} v{self.number}"

    @property
    def pending(self) -> bool:
        return self.status is ModelStatus.PENDING
