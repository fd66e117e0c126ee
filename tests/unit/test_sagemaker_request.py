"""The CreateTrainingJob request, built without AWS: botocore's own validation + our rules."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator

from bot.adapters.algorithm_catalog import PublishedAlgorithm, PublishedCatalog
from bot.adapters.sagemaker.request import (
    SageMakerSetup,
    build_create_training_job_request,
    plan_launch,
    sanitize_tag_value,
    spot_savings,
)
from bot.domain import (
    Algorithm,
    BackendRejected,
    JobSpec,
    JobVersion,
    ResourcePool,
    Status,
    TrainingJobStateChange,
)
from bot.domain.naming import TRAINING_JOB_NAME, backend_job_name

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SETUP = SageMakerSetup(role_arn="arn:aws:iam::123456789012:role/trainbot-training",
                       bucket="team-ml", region="us-east-1")
PUBLISHED = PublishedAlgorithm(
    version="1.0.0", digest="ab" * 32, entry_point="train.py",
    source_uri="s3://team-ml/trainbot/algorithms/toy/1.0.0/abababababababab/sourcedir.tar.gz",
    images={"cpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311",
            "gpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311"},
)
CPU = ResourcePool(id="cpu", instance_type="ml.m5.xlarge", spot_allowed=True)
GPU1 = ResourcePool(id="gpu-1", instance_type="ml.g5.xlarge", gpu_count=1, spot_allowed=True)
GPU4 = ResourcePool(id="gpu-4", instance_type="ml.g5.12xlarge", gpu_count=4)
CPU2 = ResourcePool(id="cpu-2", instance_type="ml.c5.2xlarge", instance_count=2)
VALIDATOR = ParamValidator()
SHAPE = boto3.client("sagemaker", region_name="us-east-1").meta.service_model.operation_model(
    "CreateTrainingJob").input_shape


def algorithm(**overrides: Any) -> Algorithm:
    manifest = {
        "id": "toy", "title": "Toy", "version": "1.0.0", "framework": "pytorch",
        "framework_version": "2.5", "entry_point": "train.py",
        "hyperparameters": [
            {"name": "epochs", "type": "int", "default": 3, "min": 1, "max": 100},
            {"name": "lr", "type": "float", "default": 0.1},
            {"name": "amp", "type": "bool", "default": True},
            {"name": "optimizer", "type": "choice", "choices": ["adam", "sgd"], "default": "adam"},
        ],
        "channels": [{"name": "train", "default": "builtin:digits"}],
        "metrics": [{"name": "validation:accuracy", "regex": "val_acc=([0-9.]+)"},
                    {"name": "train:loss", "regex": "loss=([0-9.]+)"}],
        "objective": {"metric": "validation:accuracy"},
        "supports_spot": True, "supports_checkpoints": True, "supports_distributed": True,
    }
    return Algorithm.model_validate({**manifest, **overrides})


def version(*, spot: bool = False, data: dict[str, str] | None = None, pool: str = "cpu",
            job: str = "digits", number: int = 2, **extra: Any) -> JobVersion:
    spec = JobSpec(algorithm="toy", algorithm_version="1.0.0", pool=pool, spot=spot,
                   hyperparameters={"epochs": 5, "lr": 0.05, "amp": False, "optimizer": "sgd"},
                   data=data or {}, max_runtime_s=3600)
    return JobVersion(job=job, number=number, spec=spec, requested_by="U123ABC",
                      status=Status.QUEUED, created_at=NOW, updated_at=NOW, channel="C999",
                      backend="sagemaker",
                      backend_job_name=backend_job_name("trainbot", job, number, "1a2b"),
                      **extra)


def request(v: JobVersion | None = None, algo: Algorithm | None = None,
            pool: ResourcePool = CPU, setup: SageMakerSetup = SETUP) -> dict[str, Any]:
    return build_create_training_job_request(v or version(), algo or algorithm(), pool,
                                             PUBLISHED, setup)


def assert_valid(req: dict[str, Any]) -> None:
    report = VALIDATOR.validate(req, SHAPE)
    assert not report.has_errors(), report.generate_report()


def test_request_passes_botocore_validation() -> None:
    assert_valid(request())


def test_full_featured_request_passes_botocore_validation() -> None:
    setup = SageMakerSetup(
        role_arn=SETUP.role_arn, bucket="team-ml", region="us-east-1",
        allowed_buckets=("data-lake",), kms_key_id="alias/trainbot", subnets=("subnet-1",),
        security_groups=("sg-1",), keep_alive_seconds=600)
    req = request(version(spot=True, data={"train": "s3://data-lake/digits/"}, pool="gpu-4"),
                  pool=GPU4.model_copy(update={"spot_allowed": True}), setup=setup)
    assert_valid(req)
    assert req["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    assert req["OutputDataConfig"]["KmsKeyId"] == "alias/trainbot"
    assert req["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600


def test_request_fields() -> None:
    v = version()
    req = request(v)
    name = v.backend_job_name
    assert req["TrainingJobName"] == name
    assert req["RoleArn"] == SETUP.role_arn
    assert req["AlgorithmSpecification"] == {
        "TrainingImage": PUBLISHED.images.cpu,
        "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": "validation:accuracy", "Regex": "val_acc=([0-9.]+)"},
                              {"Name": "train:loss", "Regex": "loss=([0-9.]+)"}],
        "EnableSageMakerMetricsTimeSeries": True,
    }
    assert req["OutputDataConfig"] == {"S3OutputPath": "s3://team-ml/trainbot/output/digits/"}
    assert req["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                     "VolumeSizeInGB": 30}
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert req["TensorBoardOutputConfig"] == {
        "S3OutputPath": "s3://team-ml/trainbot/tensorboard/digits/v2/",
        "LocalPath": "/opt/ml/output/tensorboard"}
    assert req["EnableNetworkIsolation"] is False
    assert "Environment" not in req and "VpcConfig" not in req
    assert "InputDataConfig" not in req  # builtin: data only


def test_hyperparameters_are_json_encoded_strings_with_script_mode_keys() -> None:
    hps = request()["HyperParameters"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in hps.items())
    assert {k: json.loads(v) for k, v in hps.items()} == {
        "epochs": 5, "lr": 0.05, "amp": False, "optimizer": "sgd",
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": PUBLISHED.source_uri,
        "sagemaker_region": "us-east-1",
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": version().backend_job_name,
    }
    assert hps["optimizer"] == '"sgd"' and hps["amp"] == "false"


def test_gpu_pool_gets_the_gpu_image() -> None:
    req = request(version(pool="gpu-1"), pool=GPU1)
    assert req["AlgorithmSpecification"]["TrainingImage"] == PUBLISHED.images.gpu


def test_gpu_pool_falls_back_to_the_cpu_image_but_not_the_reverse() -> None:
    cpu_only = PUBLISHED.model_copy(update={"images": PUBLISHED.images.model_copy(
        update={"gpu": None})})
    req = build_create_training_job_request(version(pool="gpu-1"), algorithm(), GPU1, cpu_only,
                                            SETUP)
    assert req["AlgorithmSpecification"]["TrainingImage"] == PUBLISHED.images.cpu
    gpu_only = PUBLISHED.model_copy(update={"images": PUBLISHED.images.model_copy(
        update={"cpu": None})})
    with pytest.raises(BackendRejected, match="No CPU training image"):
        build_create_training_job_request(version(), algorithm(), CPU, gpu_only, SETUP)


@pytest.mark.parametrize("spec_spot", [True, False])
@pytest.mark.parametrize("pool_allows", [True, False])
@pytest.mark.parametrize("algo_spot", [True, False])
@pytest.mark.parametrize("algo_checkpoints", [True, False])
def test_spot_and_checkpoint_fields_appear_exactly_when_allowed(
    spec_spot: bool, pool_allows: bool, algo_spot: bool, algo_checkpoints: bool
) -> None:
    pool = CPU.model_copy(update={"spot_allowed": pool_allows})
    algo = algorithm(supports_spot=algo_spot, supports_checkpoints=algo_checkpoints)
    v = version(spot=spec_spot)
    plan = plan_launch(v, algo, pool, PUBLISHED, SETUP)
    req = plan.request
    assert_valid(req)
    spot = spec_spot and pool_allows and algo_spot
    assert plan.spot is spot
    assert req.get("EnableManagedSpotTraining", False) is spot
    assert ("MaxWaitTimeInSeconds" in req["StoppingCondition"]) is spot
    if spot:
        stop = req["StoppingCondition"]
        assert stop["MaxWaitTimeInSeconds"] >= stop["MaxRuntimeInSeconds"]
        assert "managed spot" in plan.note
    checkpoints = spot and algo_checkpoints
    assert ("CheckpointConfig" in req) is checkpoints
    if checkpoints:
        assert req["CheckpointConfig"] == {
            "S3Uri": "s3://team-ml/trainbot/checkpoints/digits/v2/",
            "LocalPath": "/opt/ml/checkpoints"}
        assert plan.artifacts.checkpoints == req["CheckpointConfig"]["S3Uri"]
    else:
        assert plan.artifacts.checkpoints is None
    assert "TensorBoardOutputConfig" in req  # always
    if spec_spot and not spot:
        assert "on-demand" in plan.note


def test_max_wait_stays_within_sagemaker_ceiling() -> None:
    v = version(spot=True).model_copy(update={"spec": version(spot=True).spec.model_copy(
        update={"max_runtime_s": 28 * 24 * 3600})})
    stop = request(v)["StoppingCondition"]
    assert stop["MaxWaitTimeInSeconds"] == stop["MaxRuntimeInSeconds"] == 28 * 24 * 3600


def test_job_name_is_valid_and_at_most_63_chars() -> None:
    long_job = "a" * 40
    v = version(job=long_job, number=123456)
    name = request(v)["TrainingJobName"]
    assert len(name) <= 63 and TRAINING_JOB_NAME.match(name)


@pytest.mark.parametrize("bad", [None, "has_underscore", "-starts-with-hyphen", "x" * 64])
def test_invalid_backend_name_is_rejected(bad: str | None) -> None:
    v = version().model_copy(update={"backend_job_name": bad})
    with pytest.raises(BackendRejected, match="not a valid SageMaker training job name"):
        request(v)


def test_s3_channels_become_input_data_config() -> None:
    req = request(version(data={"train": "s3://team-ml/data/digits/"}))
    assert_valid(req)
    assert req["InputDataConfig"] == [{
        "ChannelName": "train",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                        "S3Uri": "s3://team-ml/data/digits/",
                                        "S3DataDistributionType": "FullyReplicated"}},
    }]


def test_manifest_s3_default_is_used_and_spec_data_overrides_it() -> None:
    algo = algorithm(channels=[{"name": "train", "default": "s3://public-data/digits/"},
                               {"name": "extra", "default": "file:///local/only"}])
    assert [c["DataSource"]["S3DataSource"]["S3Uri"]
            for c in request(algo=algo)["InputDataConfig"]] == ["s3://public-data/digits/"]
    over = request(version(data={"train": "s3://team-ml/mine/"}), algo=algo)
    assert over["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == \
        "s3://team-ml/mine/"


def test_file_data_is_rejected_with_a_pointer_to_the_local_backend() -> None:
    with pytest.raises(BackendRejected, match="local data needs the local backend"):
        request(version(data={"train": "file:///home/me/data"}))


def test_bucket_outside_allowed_buckets_is_rejected_naming_them() -> None:
    setup = SageMakerSetup(role_arn=SETUP.role_arn, bucket="team-ml", region="us-east-1",
                           allowed_buckets=("data-lake", "team-ml"))
    assert_valid(request(version(data={"train": "s3://data-lake/x/"}), setup=setup))
    with pytest.raises(BackendRejected) as info:
        request(version(data={"train": "s3://someone-elses/x/"}), setup=setup)
    assert "someone-elses" in info.value.message
    assert "`data-lake`" in info.value.user_text() and "`team-ml`" in info.value.user_text()


def test_local_pool_is_rejected() -> None:
    local = ResourcePool(id="local-cpu", instance_type="local")
    with pytest.raises(BackendRejected, match="local backend"):
        request(pool=local)


@pytest.mark.parametrize(("pool", "supports", "expected"), [
    (CPU, True, False),
    (GPU1, True, False),
    (GPU4, True, True),
    (CPU2, True, True),
    (GPU4, False, False),
])
def test_distributed_key_only_for_multi_gpu_or_multi_host_pools(
    pool: ResourcePool, supports: bool, expected: bool
) -> None:
    hps = request(version(pool=pool.id), algo=algorithm(supports_distributed=supports),
                  pool=pool)["HyperParameters"]
    assert ("sagemaker_torch_distributed_enabled" in hps) is expected
    if expected:
        assert hps["sagemaker_torch_distributed_enabled"] == "true"
        assert json.loads(hps["sagemaker_instance_type"]) == pool.instance_type
    assert not any("dataparallel" in k for k in hps)


def test_tags_carry_job_version_channel_and_requester() -> None:
    tags = {t["Key"]: t["Value"] for t in request()["Tags"]}
    assert tags == {"trainbot:job": "digits", "trainbot:version": "2",
                    "trainbot:channel": "C999", "trainbot:requested-by": "U123ABC"}


def test_tag_values_are_sanitized() -> None:
    allowed = re.compile(r"^[\w\s.:/=+\-@]*$")  # \w covers letters/digits/_ in Unicode
    v = version().model_copy(update={"requested_by": "<@U1|élodie>; rm -rf *", "channel": None})
    tags = {t["Key"]: t["Value"] for t in request(v)["Tags"]}
    assert "trainbot:channel" not in tags
    assert tags["trainbot:requested-by"] == "_@U1_élodie__ rm -rf _"
    assert allowed.match(tags["trainbot:requested-by"])
    assert sanitize_tag_value("x" * 300) == "x" * 256


def test_kms_key_goes_to_output_and_to_ebs_volumes_only() -> None:
    setup = SageMakerSetup(role_arn=SETUP.role_arn, bucket="team-ml", region="us-east-1",
                           kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abc")
    assert request(setup=setup)["ResourceConfig"]["VolumeKmsKeyId"] == setup.kms_key_id
    # g5 has local NVMe storage: SageMaker rejects a VolumeKmsKeyId there.
    gpu = request(version(pool="gpu-1"), pool=GPU1, setup=setup)
    assert "VolumeKmsKeyId" not in gpu["ResourceConfig"]
    assert gpu["OutputDataConfig"]["KmsKeyId"] == setup.kms_key_id


def test_launch_plan_artifacts_and_note() -> None:
    v = version()
    plan = plan_launch(v, algorithm(), CPU, PUBLISHED, SETUP)
    assert plan.artifacts.output == (
        f"s3://team-ml/trainbot/output/digits/{v.backend_job_name}/output/")
    assert plan.artifacts.tensorboard == "s3://team-ml/trainbot/tensorboard/digits/v2/"
    assert plan.artifacts.model is None  # the completion event brings ModelArtifacts
    assert plan.note == "1× ml.m5.xlarge"


@pytest.mark.parametrize(("billable", "training", "expected"), [
    (300, 1000, 0.7), (1000, 1000, 0.0), (None, 1000, None), (100, 0, None), (100, None, None),
    (1200, 1000, 0.0),
])
def test_spot_savings(billable: int | None, training: int | None, expected: float | None) -> None:
    assert spot_savings(billable, training) == expected


def test_catalog_entry_for_a_missing_algorithm_is_rejected() -> None:
    catalog = PublishedCatalog(region="us-east-1", bucket="team-ml", algorithms={"toy": PUBLISHED})
    assert catalog.entry("toy") is PUBLISHED
    with pytest.raises(BackendRejected, match=r"isn't published.*trainbot algorithms publish"):
        catalog.entry("nope")


# -- the EventBridge events a launched job sends back (captured shapes in tests/events) -------

EVENTS = Path(__file__).parents[1] / "events"


@pytest.mark.parametrize(("file", "status"), [
    ("sagemaker_training_job_state_change.json", Status.COMPLETED),
    ("sagemaker_training_job_state_change_in_progress.json", Status.TRAINING),
    ("sagemaker_training_job_state_change_failed.json", Status.FAILED),
])
def test_state_change_events_parse(file: str, status: Status) -> None:
    raw = json.loads((EVENTS / file).read_text())
    event = TrainingJobStateChange.model_validate(raw)
    detail = event.detail
    assert event.detail_type == "SageMaker Training Job State Change"
    assert event.source == "aws.sagemaker"
    assert event.resources == [detail.arn]
    assert detail.name == "trainbot-digits-v2-1a2b"
    assert detail.domain_status is status
    assert detail.creation_time == datetime(2025, 3, 14, 10, 32, 10, 123000, tzinfo=UTC)
    assert detail.tags["trainbot:job"] == "digits"
    assert detail.transitions[0].status == "Starting"
    if status is Status.COMPLETED:
        assert detail.billable_seconds == 144 and detail.training_seconds == 478
        assert spot_savings(detail.billable_seconds, detail.training_seconds) == 0.6987
        assert detail.model_uri and detail.model_uri.endswith("/output/model.tar.gz")
        assert {m.name: m.value for m in detail.final_metrics}["validation:accuracy"] == 0.9733
    if status is Status.FAILED:
        assert "out of range" in (detail.failure_reason or "")
    if status is Status.TRAINING:
        assert detail.end_time is None and detail.billable_seconds is None
