"""SageMakerModelRegistry against moto (SageMaker Model Registry, S3) and botocore's Stubber.

moto implements CreateModelPackageGroup, DescribeModelPackageGroup, CreateModelPackage,
ListModelPackages, DescribeModelPackage and UpdateModelPackage, but it ignores ClientToken
(a retry makes a second package), overwrites an existing group instead of refusing it, and
replaces CustomerMetadataProperties on update. The race on the group and AWS's refusals use a
Stubber, which checks each request against botocore's model as well.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from bot.adapters.sagemaker.models import (
    SageMakerModelRegistry,
    approval_description,
    client_token,
    create_model_package_request,
    customer_metadata,
    evaluation_document,
    package_group_name,
)
from bot.domain import BackendError, ConfigError, InvalidInput, NotFound
from bot.domain.model import ModelStatus, ModelVersion
from bot.ports import ModelRegistry

REGION = "us-east-1"
BUCKET = "team-ml"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = datetime(2025, 1, 3, 9, 0, 0, tzinfo=UTC)
METADATA_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")


def make_model(*, group: str = "digits-clf", number: int = 1, job: str = "digits",
               version: int = 2, **changes: Any) -> ModelVersion:
    fields: dict[str, Any] = {
        "group": group, "number": number, "job": job, "version": version,
        "algorithm": "toy", "algorithm_version": "1.0.0", "algorithm_digest": "cd" * 32,
        "artifact": f"s3://{BUCKET}/trainbot/output/{job}-v{version}/output/model.tar.gz",
        "image": IMAGE,
        "metrics": {"validation:accuracy": 0.93, "train:loss": 0.12},
        "objective_metric": "validation:accuracy", "objective_value": 0.93,
        "lineage": {"data.train": f"s3://{BUCKET}/data/train.csv", "parent": "digits v1"},
        "registered_by": "U1", "registered_at": NOW,
    }
    return ModelVersion(**(fields | changes))


class Calls:
    """The SageMaker operations a client sent, recorded from botocore's own events."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-call.sagemaker.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield boto3.client("sagemaker", region_name=REGION), s3


def registry(aws: tuple[Any, Any], **options: Any) -> SageMakerModelRegistry:
    sagemaker, s3 = aws
    return SageMakerModelRegistry(sagemaker, s3, BUCKET, **options)


def packages(sagemaker: Any, group: str = "trainbot-digits-clf") -> list[dict[str, Any]]:
    return sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]


# -- register ----------------------------------------------------------------------------------

def test_the_adapter_is_a_model_registry(aws: tuple[Any, Any]) -> None:
    port: ModelRegistry = registry(aws)
    arn = port.register(make_model())
    assert arn is not None and arn.startswith("arn:aws:sagemaker:")


def test_register_creates_the_group_once(aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    calls = Calls(sagemaker)
    registry(aws).register(make_model(number=1))
    # A new process (no memory of the group): it finds the group and creates none.
    registry(aws).register(make_model(number=2, version=3))
    assert calls.names.count("CreateModelPackageGroup") == 1
    assert calls.names.count("DescribeModelPackageGroup") == 2
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["trainbot-digits-clf"]
    assert len(packages(sagemaker)) == 2


def test_one_process_describes_a_group_once(aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    calls = Calls(sagemaker)
    models = registry(aws)
    models.register(make_model(number=1))
    models.register(make_model(number=2, version=3))
    assert calls.names.count("DescribeModelPackageGroup") == 1


def test_the_package_is_pending_with_the_training_image_and_artifact(
        aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    model = make_model()
    arn = registry(aws).register(model)
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelPackageGroupName"] == "trainbot-digits-clf"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelPackageDescription"] == (
        "trainbot digits-clf v1: job digits v2 (toy 1.0.0)")
    spec = package["InferenceSpecification"]
    assert spec["Containers"] == [{"Image": IMAGE, "ModelDataUrl": model.artifact}]
    assert spec["SupportedContentTypes"] == ["text/csv", "application/json"]
    assert spec["SupportedResponseMIMETypes"] == ["application/json"]


def test_the_evaluation_is_in_s3_and_is_the_packages_model_quality(
        aws: tuple[Any, Any]) -> None:
    sagemaker, s3 = aws
    arn = registry(aws).register(make_model())
    statistics = sagemaker.describe_model_package(
        ModelPackageName=arn)["ModelMetrics"]["ModelQuality"]["Statistics"]
    key = "trainbot/models/digits-clf/1/evaluation.json"
    assert statistics["S3Uri"] == f"s3://{BUCKET}/{key}"
    assert statistics["ContentType"] == "application/json"
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    body = stored["Body"].read()
    assert statistics["ContentDigest"] == f"sha256:{hashlib.sha256(body).hexdigest()}"
    assert stored["ServerSideEncryption"] == "AES256"
    assert stored["ContentType"] == "application/json"
    assert json.loads(body) == {
        "schema": "trainbot.model-evaluation/1",
        "model": {"group": "digits-clf", "number": 1, "job": "digits", "version": 2,
                  "algorithm": "toy", "algorithm_version": "1.0.0"},
        "objective": {"metric": "validation:accuracy", "value": 0.93},
        "metrics": {"validation:accuracy": {"value": 0.93}, "train:loss": {"value": 0.12}},
        "lineage": {"data.train": f"s3://{BUCKET}/data/train.csv", "parent": "digits v1"},
    }


def test_the_evaluation_is_encrypted_with_the_kms_key_when_one_is_set(
        aws: tuple[Any, Any]) -> None:
    _, s3 = aws
    registry(aws, kms_key_id="alias/trainbot").register(make_model())
    stored = s3.head_object(Bucket=BUCKET, Key="trainbot/models/digits-clf/1/evaluation.json")
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"].endswith("alias/trainbot")


def test_the_package_metadata_names_the_model_version_and_its_lineage(
        aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    arn = registry(aws).register(make_model())
    metadata = sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert metadata == {
        "trainbot-group": "digits-clf", "trainbot-model-number": "1",
        "trainbot-job": "digits", "trainbot-version": "2",
        "trainbot-algorithm": "toy", "trainbot-algorithm-version": "1.0.0",
        "trainbot-algorithm-digest": "cd" * 32,
        "trainbot-objective-metric": "validation:accuracy", "trainbot-objective-value": "0.93",
        "trainbot-registered-by": "U1", "trainbot-registered-at": "2025-01-02T03:04:05+00:00",
        "lineage:data.train": f"s3://{BUCKET}/data/train.csv", "lineage:parent": "digits v1",
    }


def test_registering_the_same_model_version_again_returns_the_same_package(
        aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    model = make_model()
    first = registry(aws).register(model)
    # A retry in another process, before the store kept the ARN: found by its metadata.
    again = registry(aws).register(model)
    assert again == first
    assert [p["ModelPackageArn"] for p in packages(sagemaker)] == [first]


def test_a_model_that_knows_its_package_is_not_registered_again(aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    arn = registry(aws).register(make_model())
    calls = Calls(sagemaker)
    assert registry(aws).register(make_model(package_arn=arn)) == arn
    assert calls.names == []


def test_another_version_of_the_same_job_is_another_package(aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    models = registry(aws)
    first = models.register(make_model(number=1, version=2))
    second = models.register(make_model(number=2, version=3))
    assert first != second
    assert len(packages(sagemaker)) == 2


def test_a_local_model_without_an_image_cannot_be_registered(aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    calls = Calls(sagemaker)
    with pytest.raises(ConfigError, match="no container image"):
        registry(aws).register(make_model(image=None))
    assert calls.names == []


def test_an_artifact_outside_s3_cannot_be_registered(aws: tuple[Any, Any]) -> None:
    with pytest.raises(ConfigError, match="not in S3"):
        registry(aws).register(make_model(artifact="/home/me/.trainbot/runs/model.tar.gz"))


def test_a_group_name_too_long_for_sagemaker_is_shortened_one_to_one(
        aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    assert package_group_name("trainbot", "g" * 54) == "trainbot-" + "g" * 54
    long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
    name_a, name_b = package_group_name("trainbot", long_a), package_group_name("trainbot", long_b)
    assert len(name_a) == len(name_b) == 63 and name_a != name_b
    assert re.fullmatch(r"trainbot-a+-[0-9a-f]{8}", name_a)
    arn = registry(aws).register(make_model(group=long_a))
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelPackageGroupName"] == name_a
    assert package["CustomerMetadataProperties"]["trainbot-group"] == long_a
    assert sagemaker.describe_model_package_group(
        ModelPackageGroupName=name_a)["ModelPackageGroupDescription"].endswith(long_a)


def test_the_group_prefix_follows_the_job_prefix(aws: tuple[Any, Any]) -> None:
    sagemaker, _ = aws
    arn = registry(aws, group_prefix="ml").register(make_model())
    assert sagemaker.describe_model_package(
        ModelPackageName=arn)["ModelPackageGroupName"] == "ml-digits-clf"


# -- decide ------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [ModelStatus.APPROVED, ModelStatus.REJECTED])
def test_decide_sets_the_approval_status_with_who_and_why(
        aws: tuple[Any, Any], status: ModelStatus) -> None:
    sagemaker, _ = aws
    models = registry(aws)
    model = make_model()
    arn = models.register(model)
    decided = model.model_copy(update={"package_arn": arn, "status": status,
                                       "decided_by": "U2", "decided_at": LATER,
                                       "note": "beats v1\non the holdout"})
    models.decide(decided)
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == status.value
    verb = "approved" if status is ModelStatus.APPROVED else "rejected"
    assert package["ApprovalDescription"] == f"{verb} by U2: beats v1 on the holdout"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["trainbot-decided-by"] == "U2"
    assert metadata["trainbot-job"] == "digits"
    # Still the same model version's package: registering again finds it.
    assert registry(aws).register(model) == arn
    assert len(packages(sagemaker)) == 1


def test_decide_needs_the_package(aws: tuple[Any, Any]) -> None:
    model = make_model(status=ModelStatus.APPROVED, decided_by="U2", decided_at=LATER)
    with pytest.raises(NotFound, match="no SageMaker model package"):
        registry(aws).decide(model)


def test_decide_needs_a_decision(aws: tuple[Any, Any]) -> None:
    models = registry(aws)
    arn = models.register(make_model())
    with pytest.raises(InvalidInput, match="still pending"):
        models.decide(make_model(package_arn=arn))


def test_the_approval_description_fits_sagemaker() -> None:
    model = make_model(status=ModelStatus.REJECTED, decided_by="U2", decided_at=LATER,
                       note="x" * 500)
    assert approval_description(model) == "rejected by U2: " + "x" * 500
    long_user = model.model_copy(update={"decided_by": "U" * 2000})
    assert len(approval_description(long_user)) == 1000
    assert approval_description(model.model_copy(update={"note": ""})) == "rejected by U2"


# -- races and refusals (Stubber) --------------------------------------------------------------

def _stubbed(aws: tuple[Any, Any]) -> tuple[SageMakerModelRegistry, Stubber]:
    _, s3 = aws
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    return SageMakerModelRegistry(sagemaker, s3, BUCKET), Stubber(sagemaker)


def test_a_group_created_meanwhile_by_another_request_is_used(aws: tuple[Any, Any]) -> None:
    models, stub = _stubbed(aws)
    model = make_model()
    group = "trainbot-digits-clf"
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{group}/1"
    stub.add_client_error(
        "describe_model_package_group", "ValidationException",
        f"ModelPackageGroup arn:aws:sagemaker:{REGION}:123456789012:model-package-group/"
        f"{group} does not exist.", expected_params={"ModelPackageGroupName": group})
    stub.add_client_error(
        "create_model_package_group", "ValidationException",
        f"Model Package Group already exists: arn:aws:sagemaker:{REGION}:123456789012:"
        f"model-package-group/{group}",
        expected_params={"ModelPackageGroupName": group,
                         "ModelPackageGroupDescription": "trainbot model group digits-clf"})
    stub.add_response("list_model_packages", {"ModelPackageSummaryList": []},
                      {"ModelPackageGroupName": group, "SortBy": "CreationTime",
                       "SortOrder": "Descending",
                       "CreationTimeAfter": datetime(2025, 1, 2, 2, 4, 5, tzinfo=UTC)})
    body = evaluation_document(model)
    request = create_model_package_request(
        model, group, metrics_uri=f"s3://{BUCKET}/trainbot/models/digits-clf/1/evaluation.json",
        metrics_digest=f"sha256:{hashlib.sha256(body).hexdigest()}")
    stub.add_response("create_model_package", {"ModelPackageArn": arn}, request)
    with stub:
        assert models.register(model) == arn
        stub.assert_no_pending_responses()


def test_the_client_token_is_the_model_versions(aws: tuple[Any, Any]) -> None:
    token = client_token(make_model())
    assert token == client_token(make_model(metrics={"other": 1.0}))
    assert token != client_token(make_model(number=2))
    assert token != client_token(make_model(version=3))
    assert re.fullmatch(r"[a-zA-Z0-9-]{1,36}", token)


@pytest.mark.parametrize(("code", "message", "error"), [
    ("AccessDeniedException", "User: arn:aws:sts::1:assumed-role/r is not authorized to "
     "perform: sagemaker:CreateModelPackageGroup on resource", "sagemaker:CreateModelPackageGroup"),
    ("ResourceLimitExceeded", "model package groups per account", "quota"),
    ("ThrottlingException", "Rate exceeded", "try again"),
])
def test_refusals_become_backend_errors(aws: tuple[Any, Any], code: str, message: str,
                                        error: str) -> None:
    models, stub = _stubbed(aws)
    stub.add_client_error("describe_model_package_group", "ValidationException",
                          "ModelPackageGroup arn:… does not exist.")
    stub.add_client_error("create_model_package_group", code, message)
    with stub, pytest.raises(BackendError, match=error) as caught:
        models.register(make_model())
    assert caught.value.__cause__ is not None


def test_a_failed_update_becomes_a_backend_error(aws: tuple[Any, Any]) -> None:
    models, stub = _stubbed(aws)
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/trainbot-digits-clf/1"
    stub.add_client_error("update_model_package", "ValidationException",
                          f"Model package {arn} not found")
    model = make_model(package_arn=arn, status=ModelStatus.APPROVED, decided_by="U2",
                       decided_at=LATER)
    with stub, pytest.raises(BackendError, match="not found"):
        models.decide(model)


# -- metadata limits ---------------------------------------------------------------------------

def _valid_metadata_text(text: str, limit: int) -> bool:
    return 1 <= len(text) <= limit and all(
        ch in "_.:/=+-@" or unicodedata.category(ch)[0] in "LZN" for ch in text)


def test_metadata_fits_sagemakers_limits(aws: tuple[Any, Any]) -> None:
    lineage = {f"data.channel-{i:03d}" + "k" * (i % 3) * 100: f"s3://b/{i}?v=1&x=(y)" + "v" * 300
               for i in range(80)}
    lineage["empty"] = ""
    model = make_model(lineage=lineage, registered_by="U1 <Bob>, ops\n")
    metadata = customer_metadata(model)
    assert len(metadata) == 50
    assert all(_valid_metadata_text(k, 128) for k in metadata)
    assert all(_valid_metadata_text(v, 256) for v in metadata.values())
    assert metadata["trainbot-registered-by"] == "U1 _Bob__ ops_"
    assert metadata["trainbot-lineage-omitted"] == str(80 - (50 - 11 - 1))  # 11 trainbot-* keys
    assert "lineage:empty" not in metadata
    assert metadata["lineage:data.channel-000"].endswith("v...")
    # SageMaker (moto here) takes it as it is.
    sagemaker, _ = aws
    arn = registry(aws).register(model)
    assert sagemaker.describe_model_package(
        ModelPackageName=arn)["CustomerMetadataProperties"] == metadata


def test_metrics_that_are_not_finite_are_null() -> None:
    model = make_model(metrics={"loss": float("nan"), "auc": float("inf")},
                       objective_metric="loss", objective_value=float("nan"))
    document = json.loads(evaluation_document(model))
    assert document["metrics"] == {"loss": {"value": None}, "auc": {"value": None}}
    assert document["objective"] == {"metric": "loss", "value": None}
    assert evaluation_document(model) == evaluation_document(model)  # a retry: same bytes
