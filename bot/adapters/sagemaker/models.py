"""The :class:`bot.ports.ModelRegistry` port over SageMaker Model Registry (boto3, never the SDK).

- A trainbot model group ``G`` is the SageMaker model package group ``<prefix>-G`` (prefix:
  ``TRAINBOT_JOB_PREFIX``, ``trainbot`` by default), created on first use, so that the IAM
  policy names trainbot's groups and packages only (``model-package-group/trainbot-*``,
  ``model-package/trainbot-*/*``). Names past SageMaker's 63 characters are shortened
  (:func:`package_group_name`).
- A model version is a versioned model package in it, ``PendingManualApproval``, whose
  inference container is the training image with the artifact as its model data; the decision
  taken in Slack becomes its ``Approved``/``Rejected`` status (:meth:`~SageMakerModelRegistry.
  decide`).
- Its ``ModelMetrics.ModelQuality.Statistics`` is trainbot's evaluation document (see
  :func:`evaluation_document`), stored at ``s3://BUCKET/trainbot/models/G/N/evaluation.json``.
- Its ``CustomerMetadataProperties`` carry who and what made it (``trainbot-*`` keys) and the
  lineage (``lineage:*`` keys), cut to SageMaker's limits (:func:`customer_metadata`).

https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import unicodedata
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.adapters.sagemaker.errors import error_code, error_message, is_not_found, translate
from bot.domain import ConfigError, InvalidInput, NotFound
from bot.domain.model import ModelStatus, ModelVersion

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = [
    "EVALUATION_SCHEMA",
    "MODELS_PREFIX",
    "SageMakerModelRegistry",
    "approval_description",
    "client_token",
    "create_model_package_request",
    "customer_metadata",
    "evaluation_document",
    "evaluation_key",
    "package_group_name",
]

MODELS_PREFIX = "trainbot/models"
EVALUATION_SCHEMA = "trainbot.model-evaluation/1"
CONTENT_TYPES = ["text/csv", "application/json"]
RESPONSE_TYPES = ["application/json"]
# SageMaker's limits (API_CreateModelPackage, API_UpdateModelPackage).
MAX_GROUP_NAME = 63
MAX_METADATA = 50
MAX_METADATA_KEY = 128
MAX_METADATA_VALUE = 256
MAX_DESCRIPTION = 1024
MAX_APPROVAL_DESCRIPTION = 1000
CLOCK_SKEW = timedelta(hours=1)
# Metadata keys and values may hold letters, separators, numbers and these, nothing else.
_METADATA_PUNCTUATION = frozenset("_.:/=+-@")
_ALREADY_EXISTS_CODES = frozenset({"ValidationException", "ConflictException", "ResourceInUse"})


class SageMakerModelRegistry:
    """Registers model versions in SageMaker Model Registry and records their approval."""

    def __init__(self, sagemaker_client: Any, s3_client: Any, bucket: str, *,
                 kms_key_id: str | None = None, group_prefix: str = "trainbot") -> None:
        self.sagemaker = sagemaker_client
        self.s3 = s3_client
        self.bucket = bucket
        self.kms_key_id = kms_key_id or None
        self.group_prefix = group_prefix
        self._known_groups: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> SageMakerModelRegistry:
        """Wire from :class:`bot.config.Settings` (``TRAINBOT_BUCKET``, ``TRAINBOT_KMS_KEY_ID``,
        ``TRAINBOT_JOB_PREFIX``); clients are created on first use."""
        from bot.aws import LazyClient

        if not settings.bucket:
            raise ConfigError("TRAINBOT_BUCKET is required with TRAINBOT_COMPUTE=sagemaker "
                              "(model evaluations are stored there for the Model Registry).")
        return cls(LazyClient("sagemaker"), LazyClient("s3"), settings.bucket,
                   kms_key_id=settings.kms_key_id, group_prefix=settings.job_prefix)

    def group_name(self, group: str) -> str:
        return package_group_name(self.group_prefix, group)

    def register(self, model: ModelVersion) -> str:
        """Create the model package (and its group when missing), pending manual approval;
        return its ARN. Registering the same model version again returns the package already
        created: ``model.package_arn`` when the store has it, else the group's package whose
        metadata names this model version, else CreateModelPackage with a ClientToken derived
        from the model version (SageMaker answers a retry with the first package)."""
        if model.package_arn:
            return model.package_arn
        _check_deployable(model)
        group = self.group_name(model.group)
        try:
            self._ensure_group(group, model.group)
            existing = self._find_package(group, model)
            if existing:
                return existing
            uri, digest = self._put_evaluation(model)
            response = self.sagemaker.create_model_package(
                **create_model_package_request(model, group, metrics_uri=uri,
                                               metrics_digest=digest))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return str(response["ModelPackageArn"])

    def decide(self, model: ModelVersion) -> None:
        """Set the package's ModelApprovalStatus to the model's decision, with who decided
        and the note as its ApprovalDescription."""
        if not model.package_arn:
            raise NotFound(f"{model.label} has no SageMaker model package to approve or "
                           "reject; register it again.")
        if model.status is ModelStatus.PENDING:
            raise InvalidInput(f"{model.label} is still pending: there is no decision to record.")
        try:
            self.sagemaker.update_model_package(
                ModelPackageArn=model.package_arn,
                ModelApprovalStatus=model.status.value,
                ApprovalDescription=approval_description(model),
                # SageMaker merges these into what the package has (the same values: no
                # change); moto replaces the map, and would drop it if they were left out.
                CustomerMetadataProperties=customer_metadata(model),
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    # -- steps -----------------------------------------------------------------------------

    def _ensure_group(self, group: str, trainbot_group: str) -> None:
        if group in self._known_groups:
            return
        try:
            self.sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        except ClientError as exc:
            if not _missing(exc):
                raise
            try:
                self.sagemaker.create_model_package_group(
                    ModelPackageGroupName=group,
                    ModelPackageGroupDescription=_description(
                        f"trainbot model group {trainbot_group}"))
            except ClientError as create_exc:
                if not _already_exists(create_exc):  # created meanwhile by another request
                    raise
        self._known_groups.add(group)

    def _find_package(self, group: str, model: ModelVersion) -> str | None:
        """The group's package registered for this model version, newest first. Summaries
        carry the description, not the metadata: only matching ones are described. Only
        packages created since the model was registered here are listed (less an hour, for
        clock skew), however long the group's history."""
        description = _description(package_description(model))
        wanted = _identity(customer_metadata(model))
        pages = self.sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending",
            CreationTimeAfter=model.registered_at - CLOCK_SKEW)
        for page in pages:
            for summary in page.get("ModelPackageSummaryList", []):
                if summary.get("ModelPackageDescription") != description:
                    continue
                arn = str(summary["ModelPackageArn"])
                found = self.sagemaker.describe_model_package(ModelPackageName=arn)
                if _identity(found.get("CustomerMetadataProperties") or {}) == wanted:
                    return arn
        return None

    def _put_evaluation(self, model: ModelVersion) -> tuple[str, str]:
        body = evaluation_document(model)
        sha256 = hashlib.sha256(body)
        key = evaluation_key(model.group, model.number)
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
            ChecksumSHA256=base64.b64encode(sha256.digest()).decode(),
            **self._encryption())
        return f"s3://{self.bucket}/{key}", f"sha256:{sha256.hexdigest()}"

    def _encryption(self) -> dict[str, str]:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}


# -- requests (pure) -------------------------------------------------------------------------

def package_group_name(prefix: str, group: str) -> str:
    """SageMaker's group for trainbot's ``group``: ``<prefix>-<group>``. SageMaker allows 63
    characters; a longer name keeps its start and ends in 8 hex digits of its SHA-256, so
    every trainbot group name has its own SageMaker group (the package metadata and the
    group's description carry the trainbot name)."""
    name = f"{prefix}-{group}"
    if len(name) <= MAX_GROUP_NAME:
        return name
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]
    return f"{name[: MAX_GROUP_NAME - len(digest) - 1]}-{digest}"


def evaluation_key(group: str, number: int) -> str:
    return f"{MODELS_PREFIX}/{group}/{number}/evaluation.json"


def client_token(model: ModelVersion) -> str:
    """CreateModelPackage's idempotency token (36 characters): the same for every attempt to
    register this model version, different for any other."""
    name = f"trainbot:model:{model.group}:{model.number}:{model.job}:{model.version}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def evaluation_document(model: ModelVersion) -> bytes:
    """The model's evaluation as ``ModelMetrics.ModelQuality.Statistics`` (JSON)::

        {"schema": "trainbot.model-evaluation/1",
         "model": {"group", "number", "job", "version", "algorithm", "algorithm_version"},
         "objective": {"metric": "validation:accuracy", "value": 0.93} | null,
         "metrics": {"validation:accuracy": {"value": 0.93}, ...},
         "lineage": {...}}

    Each metric has SageMaker's model-quality form (``{"value": v}``), under ``metrics``
    rather than a problem-type key (trainbot doesn't know the problem type). Values that
    are not finite are ``null``. The full lineage is here; the package metadata may be cut.
    The same model gives the same bytes (sorted keys), so a retry rewrites the same object.
    """
    objective = None
    if model.objective_metric is not None:
        objective = {"metric": model.objective_metric, "value": _finite(model.objective_value)}
    document = {
        "schema": EVALUATION_SCHEMA,
        "model": {"group": model.group, "number": model.number, "job": model.job,
                  "version": model.version, "algorithm": model.algorithm,
                  "algorithm_version": model.algorithm_version},
        "objective": objective,
        "metrics": {name: {"value": _finite(value)} for name, value in model.metrics.items()},
        "lineage": dict(model.lineage),
    }
    return json.dumps(document, sort_keys=True, indent=2, allow_nan=False).encode()


def customer_metadata(model: ModelVersion) -> dict[str, str]:
    """``trainbot-*`` keys naming the model version and who registered/decided it, then the
    lineage as ``lineage:<key>``, within SageMaker's limits: at most 50 entries, keys of 128
    and values of 256 characters (longer ones end in ``...``), characters outside letters,
    numbers, spaces and ``_.:/=+-@`` replaced by ``_``, empty values left out. Lineage
    entries past the limit are left out (counted in ``trainbot-lineage-omitted``)."""
    own: dict[str, str | None] = {
        "trainbot-group": model.group,
        "trainbot-model-number": str(model.number),
        "trainbot-job": model.job,
        "trainbot-version": str(model.version),
        "trainbot-algorithm": model.algorithm,
        "trainbot-algorithm-version": model.algorithm_version,
        "trainbot-algorithm-digest": model.algorithm_digest,
        "trainbot-objective-metric": model.objective_metric,
        "trainbot-objective-value": (None if model.objective_value is None
                                     else repr(model.objective_value)),
        "trainbot-registered-by": model.registered_by,
        "trainbot-registered-at": model.registered_at.isoformat(),
        "trainbot-decided-by": model.decided_by,
        "trainbot-decided-at": model.decided_at.isoformat() if model.decided_at else None,
    }
    metadata: dict[str, str] = {}
    for key, value in own.items():
        _put(metadata, key, value)
    lineage = [(f"lineage:{k}", v) for k, v in sorted(model.lineage.items()) if v]
    room = MAX_METADATA - len(metadata)
    if len(lineage) > room:
        lineage, omitted = lineage[: room - 1], len(lineage) - (room - 1)
        _put(metadata, "trainbot-lineage-omitted", str(omitted))
    for key, value in lineage:
        _put(metadata, key, value)
    return metadata


def package_description(model: ModelVersion) -> str:
    return (f"trainbot {model.label}: job {model.job} v{model.version} "
            f"({model.algorithm} {model.algorithm_version})")


def create_model_package_request(model: ModelVersion, group: str, *, metrics_uri: str,
                                 metrics_digest: str | None = None) -> dict[str, Any]:
    """CreateModelPackage's request for ``model`` in the SageMaker group ``group`` (no I/O)."""
    _check_deployable(model)
    statistics = {"ContentType": "application/json", "S3Uri": metrics_uri}
    if metrics_digest:
        statistics["ContentDigest"] = metrics_digest
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": _description(package_description(model)),
        "InferenceSpecification": {
            "Containers": [{"Image": model.image, "ModelDataUrl": model.artifact}],
            "SupportedContentTypes": list(CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
        },
        "ModelMetrics": {"ModelQuality": {"Statistics": statistics}},
        "CustomerMetadataProperties": customer_metadata(model),
        "ModelApprovalStatus": ModelStatus.PENDING.value,
        "ClientToken": client_token(model),
    }


def approval_description(model: ModelVersion) -> str:
    """``approved by U123: note`` (or ``rejected by …``) on one line, at most 1000 characters."""
    verb = "approved" if model.status is ModelStatus.APPROVED else "rejected"
    text = f"{verb} by {model.decided_by or 'unknown'}"
    if model.note.strip():
        text += f": {model.note}"
    # The field's pattern is ".*": no line breaks.
    return _cut(" ".join(text.split()), MAX_APPROVAL_DESCRIPTION)


# -- helpers ---------------------------------------------------------------------------------

def _check_deployable(model: ModelVersion) -> None:
    if not model.image:
        raise ConfigError(
            f"{model.label} can't be registered in SageMaker Model Registry: its training "
            "version has no container image (a local run). Register a version trained on "
            "SageMaker.")
    if not model.artifact.startswith(("s3://", "https://")):
        raise ConfigError(
            f"{model.label} can't be registered in SageMaker Model Registry: its artifact "
            f"{model.artifact!r} is not in S3.")


def _identity(metadata: dict[str, str]) -> tuple[str | None, ...]:
    keys = ("trainbot-group", "trainbot-model-number", "trainbot-job", "trainbot-version")
    return tuple(metadata.get(k) for k in keys)


def _put(metadata: dict[str, str], key: str, value: str | None) -> None:
    if not value:
        return
    key = _metadata_text(key, MAX_METADATA_KEY)
    if key and key not in metadata and len(metadata) < MAX_METADATA:
        metadata[key] = _metadata_text(value, MAX_METADATA_VALUE)


def _metadata_text(text: str, limit: int) -> str:
    # SageMaker's pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]
    cleaned = "".join(
        ch if ch in _METADATA_PUNCTUATION or unicodedata.category(ch)[0] in "LZN" else "_"
        for ch in text)
    return _cut(cleaned, limit, ellipsis="...")


def _description(text: str) -> str:
    # SageMaker's pattern: [\p{L}\p{M}\p{Z}\p{S}\p{N}\p{P}]: no control characters.
    cleaned = "".join(ch if unicodedata.category(ch)[0] in "LMZSNP" else " " for ch in text)
    return _cut(cleaned, MAX_DESCRIPTION)


def _cut(text: str, limit: int, *, ellipsis: str = "…") -> str:
    return text if len(text) <= limit else text[: limit - len(ellipsis)] + ellipsis


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _missing(exc: ClientError) -> bool:
    # SageMaker: ValidationException "ModelPackageGroup arn:… does not exist."
    return is_not_found(exc) or (error_code(exc) == "ValidationException"
                                 and "does not exist" in error_message(exc).lower())


def _already_exists(exc: ClientError) -> bool:
    return (error_code(exc) in _ALREADY_EXISTS_CODES
            and "already exist" in error_message(exc).lower())
