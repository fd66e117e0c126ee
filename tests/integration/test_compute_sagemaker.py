"""SageMakerCompute against moto (S3, SageMaker, CloudWatch Logs) and botocore's Stubber.

moto reports every training job Completed at once and has no StopTrainingJob: stop and the
error paths use a Stubber, which replaces the HTTP layer (and with it botocore's retries, so
the retry behaviour is checked through the client's config instead).
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from bot.adapters.algorithm_catalog import PublishedAlgorithm, PublishedCatalog
from bot.adapters.sagemaker import output
from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.adapters.sagemaker.logs import LOG_GROUP
from bot.adapters.sagemaker.request import build_create_training_job_request
from bot.catalog import Catalog, load_pools
from bot.config import RerunApproval, Settings
from bot.domain import (
    Algorithm,
    BackendError,
    BackendRejected,
    ConfigError,
    JobSpec,
    JobVersion,
    QuotaExceeded,
    ResourcePool,
    Status,
)
from bot.domain.naming import backend_job_name
from bot.ports import Compute
from bot.services.authz import Policy
from bot.services.context import Deps
from bot.services.requests import LaunchRequest, start_job
from tests.fakes import FakeClock, MemoryStore, RecordingChat

REGION = "us-east-1"
BUCKET = "team-ml"
ROLE = "arn:aws:iam::123456789012:role/trainbot-training"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ALGO = Algorithm.model_validate({
    "id": "toy", "title": "Toy", "version": "1.0.0", "framework": "pytorch",
    "framework_version": "2.5", "entry_point": "train.py",
    "hyperparameters": [{"name": "epochs", "type": "int", "default": 3, "min": 1, "max": 100},
                        {"name": "optimizer", "type": "choice", "choices": ["adam", "sgd"],
                         "default": "adam"}],
    "channels": [{"name": "train", "default": "builtin:digits"}],
    "metrics": [{"name": "validation:accuracy", "regex": "val_acc=([0-9.]+)"},
                {"name": "train:loss", "regex": "loss=([0-9.]+)"}],
    "progress_regex": r"epoch (?P<current>\d+)/(?P<total>\d+)",
    "objective": {"metric": "validation:accuracy"},
    "supports_spot": True, "supports_checkpoints": True,
})
PUBLISHED = PublishedAlgorithm(
    version="1.0.0", digest="cd" * 32, entry_point="train.py",
    source_uri=f"s3://{BUCKET}/trainbot/algorithms/toy/1.0.0/cdcdcdcdcdcdcdcd/sourcedir.tar.gz",
    images={"cpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311",
            "gpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311"},
)
CATALOG = PublishedCatalog(region=REGION, bucket=BUCKET, algorithms={"toy": PUBLISHED})
GPU = ResourcePool(id="gpu-1", instance_type="ml.g5.xlarge", gpu_count=1, spot_allowed=True)


def make_version(*, number: int = 1, spot: bool = False, job: str = "digits") -> JobVersion:
    spec = JobSpec(algorithm="toy", algorithm_version="1.0.0", pool="gpu-1", spot=spot,
                   hyperparameters={"epochs": 4, "optimizer": "sgd"}, max_runtime_s=1800)
    return JobVersion(job=job, number=number, spec=spec, requested_by="U1", status=Status.QUEUED,
                      created_at=NOW, updated_at=NOW, channel="C1", backend="sagemaker",
                      backend_job_name=backend_job_name("trainbot", job, number, "beef"))


def make_compute(clients: dict[str, Any], *, catalog: Any = CATALOG, **kw: Any) -> SageMakerCompute:
    return SageMakerCompute(
        sagemaker_client=clients["sagemaker"], logs_client=clients["logs"],
        s3_client=clients["s3"], catalog=catalog, role_arn=ROLE, bucket=BUCKET, region=REGION,
        **kw)


@functools.cache
def shared_clients() -> dict[str, Any]:
    """Built once (loading service models is the slow part); moto intercepts any client."""
    return {name: boto3.client(name, region_name=REGION) for name in ("sagemaker", "logs", "s3")}


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        clients = shared_clients()
        clients["s3"].create_bucket(Bucket=BUCKET)
        yield clients


@pytest.fixture
def compute(aws: dict[str, Any]) -> SageMakerCompute:
    return make_compute(aws)


def put_logs(aws: dict[str, Any], stream: str, lines: list[str], *, start_ms: int | None = None,
             create_group: bool = True) -> int:
    logs = aws["logs"]
    if create_group:
        logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    start = start_ms or int(time.time() * 1000) - 60_000
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[
        {"timestamp": start + i * 10, "message": line} for i, line in enumerate(lines)])
    return start + (len(lines) - 1) * 10


TRAINING_LOG = [
    "Invoking script with the following command: /opt/conda/bin/python train.py --epochs 4",
    "epoch 1/4 loss=0.90 val_acc=0.61",
    "epoch 2/4 loss=0.52 val_acc=0.80",
    "epoch 3/4 loss=0.31 val_acc=0.91",
    "epoch 4/4 loss=0.20 val_acc=0.95",
    "saved model to /opt/ml/model",
]


# -- launch / describe (moto) -----------------------------------------------------------------

def test_launch_creates_the_named_job_in_sagemaker(aws: dict, compute: SageMakerCompute) -> None:
    v = make_version()
    launched = compute.launch(v, ALGO, GPU)
    assert launched.backend_job_name == v.backend_job_name
    assert launched.compute_note == "1× ml.g5.xlarge"
    job = aws["sagemaker"].describe_training_job(TrainingJobName=v.backend_job_name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == PUBLISHED.images.gpu
    hps = job["HyperParameters"]
    assert json.loads(hps["sagemaker_submit_directory"]) == PUBLISHED.source_uri
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert hps["epochs"] == "4" and hps["optimizer"] == '"sgd"'
    assert job["RoleArn"] == ROLE
    assert job["TensorBoardOutputConfig"]["S3OutputPath"] == (
        f"s3://{BUCKET}/trainbot/tensorboard/digits/v1/")
    assert launched.artifacts.tensorboard == job["TensorBoardOutputConfig"]["S3OutputPath"]
    assert launched.artifacts.output == (
        f"s3://{BUCKET}/trainbot/output/digits/{v.backend_job_name}/output/")


def test_spot_launch_sets_checkpoints_and_says_so(aws: dict, compute: SageMakerCompute) -> None:
    v = make_version(spot=True)
    launched = compute.launch(v, ALGO, GPU)
    job = aws["sagemaker"].describe_training_job(TrainingJobName=v.backend_job_name)
    assert job["EnableManagedSpotTraining"] is True
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/trainbot/checkpoints/digits/v1/"
    assert launched.artifacts.checkpoints == job["CheckpointConfig"]["S3Uri"]
    assert launched.compute_note == "1× ml.g5.xlarge, managed spot"


def test_describe_maps_to_training_job_detail(compute: SageMakerCompute) -> None:
    v = make_version()
    compute.launch(v, ALGO, GPU)
    detail = compute.describe(v)
    assert detail is not None
    assert detail.name == v.backend_job_name
    assert detail.status == "Completed" and detail.domain_status is Status.COMPLETED
    assert detail.arn and detail.arn.endswith(f"training-job/{v.backend_job_name}")
    assert detail.creation_time is not None and detail.creation_time.tzinfo is not None
    assert detail.model_uri and detail.model_uri.endswith(
        f"{v.backend_job_name}/output/model.tar.gz")


def test_describe_of_an_unknown_job_is_none(compute: SageMakerCompute) -> None:
    assert compute.describe(make_version(number=9)) is None
    assert compute.describe(make_version().model_copy(update={"backend_job_name": None})) is None


# -- the published catalog ----------------------------------------------------------------------

def test_unpublished_algorithm_is_rejected(aws: dict) -> None:
    compute = make_compute(aws, catalog=PublishedCatalog(region=REGION, bucket=BUCKET))
    with pytest.raises(BackendRejected, match="trainbot algorithms publish"):
        compute.launch(make_version(), ALGO, GPU)


def test_catalog_is_loaded_lazily_and_reloaded_when_an_algorithm_is_missing(aws: dict) -> None:
    loads: list[PublishedCatalog] = []
    catalogs = iter([PublishedCatalog(region=REGION, bucket=BUCKET), CATALOG])

    def loader() -> PublishedCatalog:
        loads.append(next(catalogs))
        return loads[-1]

    compute = make_compute(aws, catalog=loader)
    assert loads == []  # nothing read at construction
    compute.launch(make_version(), ALGO, GPU)  # first load lacks it, the reload has it
    assert len(loads) == 2
    assert compute.published_algorithm("toy").digest == PUBLISHED.digest
    assert compute.training_image(ALGO, GPU) == PUBLISHED.images.gpu


def test_training_image_of_an_unpublished_algorithm_is_a_config_error(aws: dict) -> None:
    compute = make_compute(aws, catalog=PublishedCatalog(region=REGION, bucket=BUCKET))
    with pytest.raises(ConfigError, match="trainbot algorithms publish") as raised:
        compute.training_image(ALGO, GPU)
    assert isinstance(raised.value.__cause__, BackendRejected)


class Untouchable:
    """An AWS client or an event report that must not be used."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} was called")


def test_reporting_and_closing_do_nothing() -> None:
    """EventBridge reports SageMaker's state changes; this process holds nothing to release."""
    compute = make_compute({name: Untouchable() for name in ("sagemaker", "logs", "s3")})
    assert isinstance(compute, Compute)
    compute.start_reporting(Untouchable(), [make_version()])
    compute.close()


def test_catalog_from_another_region_is_rejected(aws: dict) -> None:
    other = CATALOG.model_copy(update={"region": "eu-west-1"})
    compute = make_compute(aws, catalog=lambda: other)
    with pytest.raises(BackendRejected, match="--region us-east-1"):
        compute.launch(make_version(), ALGO, GPU)


def test_stale_published_version_is_rejected(aws: dict) -> None:
    old = PublishedCatalog(region=REGION, bucket=BUCKET, algorithms={
        "toy": PUBLISHED.model_copy(update={"version": "0.9.0"})})
    with pytest.raises(BackendRejected, match=r"published at 0\.9\.0"):
        make_compute(aws, catalog=old).launch(make_version(), ALGO, GPU)


def test_from_settings_reads_the_catalog_from_s3(aws: dict, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_REGION", REGION)
    settings = Settings(compute="sagemaker", sagemaker_role_arn=ROLE, bucket=BUCKET)
    compute = SageMakerCompute.from_settings(settings, None)
    with pytest.raises(BackendRejected, match="No published algorithm catalog"):
        compute.launch(make_version(), ALGO, GPU)
    aws["s3"].put_object(Bucket=BUCKET, Key="trainbot/catalog.json",
                         Body=CATALOG.to_json().encode())
    assert compute.launch(make_version(), ALGO, GPU).backend_job_name


def test_from_settings_reads_a_catalog_file(aws: dict, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "catalog.json"
    path.write_text(CATALOG.to_json())
    settings = Settings(compute="sagemaker", sagemaker_role_arn=ROLE, bucket=BUCKET,
                        catalog=path)
    compute = SageMakerCompute.from_settings(settings, None)
    assert compute.published_algorithm("toy") == PUBLISHED


@pytest.mark.parametrize(("missing", "variable"), [
    ({"sagemaker_role_arn": None}, "TRAINBOT_SAGEMAKER_ROLE_ARN"),
    ({"bucket": None}, "TRAINBOT_BUCKET"),
])
def test_from_settings_names_missing_settings(missing: dict, variable: str) -> None:
    settings = Settings(**{"compute": "sagemaker", "sagemaker_role_arn": ROLE, "bucket": BUCKET,
                           **missing})
    with pytest.raises(ConfigError, match=variable):
        SageMakerCompute.from_settings(settings, None)


def test_subnets_without_security_groups_is_a_config_error(aws: dict) -> None:
    with pytest.raises(ConfigError, match="TRAINBOT_SECURITY_GROUPS"):
        make_compute(aws, subnets=["subnet-1"])


def test_clients_use_adaptive_retries() -> None:
    """Throttling and 5xx are retried by botocore itself (Stubber can't show it)."""
    compute = SageMakerCompute.from_settings(
        Settings(compute="sagemaker", sagemaker_role_arn=ROLE, bucket=BUCKET), None)
    for client in (compute.sagemaker, compute.logs_client, compute.s3):
        assert client.meta.config.retries["mode"] == "adaptive"
        assert client.meta.config.retries["total_max_attempts"] >= 4


# -- logs, progress, results (moto) ---------------------------------------------------------------

def test_logs_tail_the_job_streams(aws: dict, compute: SageMakerCompute) -> None:
    v = make_version()
    put_logs(aws, f"{v.backend_job_name}/algo-1-1735787045", TRAINING_LOG)
    put_logs(aws, "trainbot-other-v1-0000/algo-1-1735787045", ["not ours"], create_group=False)
    assert compute.logs(v, lines=3) == TRAINING_LOG[-3:]
    assert compute.logs(v) == TRAINING_LOG


def test_logs_merge_hosts_by_time(aws: dict, compute: SageMakerCompute) -> None:
    v = make_version()
    start = int(time.time() * 1000) - 60_000
    put_logs(aws, f"{v.backend_job_name}/algo-1-1", ["a1", "a2"], start_ms=start)
    put_logs(aws, f"{v.backend_job_name}/algo-2-1", ["b1"], start_ms=start + 5,
             create_group=False)
    assert compute.logs(v) == ["a1", "b1", "a2"]


def test_logs_are_empty_without_group_or_stream(aws: dict, compute: SageMakerCompute) -> None:
    v = make_version()
    assert compute.logs(v) == []
    aws["logs"].create_log_group(logGroupName=LOG_GROUP)
    assert compute.logs(v) == []


def test_progress_from_the_log_tail(aws: dict, compute: SageMakerCompute) -> None:
    v = make_version()
    last = put_logs(aws, f"{v.backend_job_name}/algo-1-1", TRAINING_LOG[:4])
    progress = compute.progress(v, ALGO)
    assert progress is not None
    assert (progress.current, progress.total) == (3, 4)
    assert progress.metrics == {"train:loss": 0.31, "validation:accuracy": 0.91}
    assert progress.updated_at == datetime.fromtimestamp(last / 1000, tz=UTC)
    assert progress.percent == 75


def test_progress_is_none_before_any_log(compute: SageMakerCompute) -> None:
    assert compute.progress(make_version(), ALGO) is None


def output_tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def put_output(aws: dict, v: JobVersion, body: bytes) -> None:
    aws["s3"].put_object(
        Bucket=BUCKET, Key=f"trainbot/output/{v.job}/{v.backend_job_name}/output/output.tar.gz",
        Body=body)


def test_results_read_evaluation_series_and_tail(aws: dict, compute: SageMakerCompute) -> None:
    v = make_version()
    evaluation = {"accuracy": 0.95, "confusion_matrix": [[5, 1], [0, 6]]}
    put_output(aws, v, output_tarball({"plots/evaluation.json": b"{}",
                                       "evaluation.json": json.dumps(evaluation).encode()}))
    put_logs(aws, f"{v.backend_job_name}/algo-1-1", TRAINING_LOG)
    results = compute.results(v, ALGO)
    assert results.evaluation == evaluation
    assert results.series["validation:accuracy"].points == [
        (0, 0.61), (1, 0.80), (2, 0.91), (3, 0.95)]
    assert results.series["train:loss"].min == 0.20
    assert results.log_tail == TRAINING_LOG


def test_results_read_every_page_of_a_long_log(aws: dict, compute: SageMakerCompute,
                                               monkeypatch) -> None:  # type: ignore[no-untyped-def]
    v = make_version()
    put_logs(aws, f"{v.backend_job_name}/algo-1-1", [f"loss={i}" for i in range(250)])
    original = aws["logs"].get_log_events

    def small_pages(**kwargs: Any) -> Any:  # force pagination
        return original(**{**kwargs, "limit": min(kwargs.get("limit", 100), 100)})

    monkeypatch.setattr(aws["logs"], "get_log_events", small_pages)
    series = compute.results(v, ALGO).series["train:loss"]
    assert (series.count, series.first, series.last) == (250, 0, 249)
    assert len(series.points) == 200


def test_results_are_empty_when_nothing_is_there(compute: SageMakerCompute) -> None:
    results = compute.results(make_version(), ALGO)
    assert (results.evaluation, results.series, results.log_tail) == (None, {}, [])


def test_oversized_or_broken_output_is_skipped(aws: dict, compute: SageMakerCompute,
                                               monkeypatch) -> None:  # type: ignore[no-untyped-def]
    v = make_version()
    put_output(aws, v, b"not a tarball")
    assert compute.results(v, ALGO).evaluation is None
    put_output(aws, v, output_tarball({"evaluation.json": b'{"a": 1}'}))
    monkeypatch.setattr(output, "MAX_OUTPUT_BYTES", 10)
    assert compute.results(v, ALGO).evaluation is None


def test_links_are_console_urls_never_presigned(compute: SageMakerCompute) -> None:
    v = make_version()
    links = compute.links(v)
    name = v.backend_job_name
    assert links.console == (
        f"https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/{name}")
    assert links.tensorboard == ("https://us-east-1.console.aws.amazon.com/sagemaker/home"
                                 f"?region=us-east-1#/tensor-board-landing/{name}")
    assert links.logs and f"prefix={name}/" in links.logs and "cloudwatch" in links.logs
    assert links.lineage is None
    assert all("X-Amz" not in (u or "") and "authToken" not in (u or "")
               for u in (links.console, links.tensorboard, links.logs))


# -- errors and stop (Stubber) ---------------------------------------------------------------------

@functools.cache
def stub_client() -> Any:
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def stubbed() -> Iterator[tuple[SageMakerCompute, Stubber]]:
    client = stub_client()
    clients = {**shared_clients(), "sagemaker": client}
    with Stubber(client) as stub:
        yield make_compute(clients), stub
        stub.assert_no_pending_responses()


def test_stop_calls_stop_training_job(stubbed: tuple[SageMakerCompute, Stubber]) -> None:
    compute, stub = stubbed
    v = make_version()
    stub.add_response("stop_training_job", {}, {"TrainingJobName": v.backend_job_name})
    compute.stop(v)


def test_stopping_a_finished_job_is_not_an_error(stubbed: tuple[SageMakerCompute, Stubber]) -> None:
    compute, stub = stubbed
    stub.add_client_error("stop_training_job", "ValidationException",
                          "The request was rejected because the training job is in status "
                          "Completed.", http_status_code=400)
    compute.stop(make_version())


def test_resource_limit_becomes_quota_exceeded(stubbed: tuple[SageMakerCompute, Stubber]) -> None:
    compute, stub = stubbed
    stub.add_client_error(
        "create_training_job", "ResourceLimitExceeded",
        "The account-level service limit 'ml.g5.xlarge for training job usage' is 0 Instances, "
        "with current utilization of 0 Instances and a request delta of 1 Instances.",
        http_status_code=400)
    with pytest.raises(QuotaExceeded) as info:
        compute.launch(make_version(), ALGO, GPU)
    assert "ml.g5.xlarge" in info.value.message
    assert "'ml.g5.xlarge for training job usage'" in (info.value.hint or "")
    assert "Service Quotas" in info.value.user_text()


def test_validation_exception_becomes_backend_rejected(
    stubbed: tuple[SageMakerCompute, Stubber]
) -> None:
    compute, stub = stubbed
    stub.add_client_error("create_training_job", "ValidationException",
                          "Instance type ml.g5.xlarge is not supported in this region.",
                          http_status_code=400)
    with pytest.raises(BackendRejected, match="SageMaker rejected the job: Instance type"):
        compute.launch(make_version(), ALGO, GPU)


def test_throttling_that_outlasts_retries_asks_to_try_again(
    stubbed: tuple[SageMakerCompute, Stubber]
) -> None:
    compute, stub = stubbed
    stub.add_client_error("create_training_job", "ThrottlingException", "Rate exceeded",
                          http_status_code=400)
    with pytest.raises(BackendError, match="try again in a minute") as info:
        compute.launch(make_version(), ALGO, GPU)
    assert not isinstance(info.value, BackendRejected | QuotaExceeded)


def test_server_errors_ask_to_try_again(stubbed: tuple[SageMakerCompute, Stubber]) -> None:
    compute, stub = stubbed
    stub.add_client_error("describe_training_job", "InternalFailure", "oops",
                          http_status_code=500)
    with pytest.raises(BackendError, match="try again"):
        compute.describe(make_version())


def test_access_denied_names_the_missing_permission(
    stubbed: tuple[SageMakerCompute, Stubber]
) -> None:
    compute, stub = stubbed
    stub.add_client_error(
        "create_training_job", "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/trainbot-bot/fn is not authorized to "
        "perform: iam:PassRole on resource: arn:aws:iam::123456789012:role/trainbot-training",
        http_status_code=400)
    with pytest.raises(BackendError, match="iam:PassRole") as info:
        compute.launch(make_version(), ALGO, GPU)
    assert "assumed-role" not in info.value.user_text()


def test_a_retried_create_that_already_went_through_is_accepted(
    stubbed: tuple[SageMakerCompute, Stubber]
) -> None:
    compute, stub = stubbed
    v = make_version()
    request = build_create_training_job_request(v, ALGO, GPU, PUBLISHED, compute.setup)
    stub.add_client_error("create_training_job", "ResourceInUse", "already exists",
                          http_status_code=400)
    stub.add_response("describe_training_job", {
        "TrainingJobName": v.backend_job_name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/"
                          f"{v.backend_job_name}",
        "TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting",
        "HyperParameters": request["HyperParameters"],
        "AlgorithmSpecification": request["AlgorithmSpecification"],
        "ModelArtifacts": {"S3ModelArtifacts": ""}, "ResourceConfig": request["ResourceConfig"],
        "StoppingCondition": request["StoppingCondition"], "CreationTime": NOW,
    }, {"TrainingJobName": v.backend_job_name})
    assert compute.launch(v, ALGO, GPU).backend_job_name == v.backend_job_name


def test_a_name_taken_by_another_job_is_rejected(
    stubbed: tuple[SageMakerCompute, Stubber]
) -> None:
    compute, stub = stubbed
    stub.add_client_error("create_training_job", "ResourceInUse", "already exists",
                          http_status_code=400)
    stub.add_client_error("describe_training_job", "ValidationException",
                          "Requested resource not found.", http_status_code=400)
    with pytest.raises(BackendRejected, match="already exists"):
        compute.launch(make_version(), ALGO, GPU)


# -- through the launching service ------------------------------------------------------------------

def deps_with(compute: SageMakerCompute) -> Deps:
    return Deps(store=MemoryStore(), compute=compute,
                catalog=Catalog(algorithms={"toy": ALGO}, pools=load_pools()),
                clock=FakeClock(), chat=RecordingChat(),
                policy=Policy(approvers=["UAPPROVER"], rerun_approval=RerunApproval.ALWAYS))


def test_service_launch_uses_its_backend_name(aws: dict, compute: SageMakerCompute) -> None:
    deps = deps_with(compute)
    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-1"))
    assert version.backend == "sagemaker" and version.backend_job_name
    found = aws["sagemaker"].describe_training_job(TrainingJobName=version.backend_job_name)
    assert found["TrainingJobName"] == version.backend_job_name
    assert version.compute_note == "1× ml.g5.xlarge"
    assert version.artifacts.tensorboard


def test_service_records_a_quota_failure(stubbed: tuple[SageMakerCompute, Stubber]) -> None:
    compute, stub = stubbed
    stub.add_client_error("create_training_job", "ResourceLimitExceeded",
                          "The account-level service limit 'ml.g5.xlarge for training job "
                          "usage' is 0 Instances", http_status_code=400)
    deps = deps_with(compute)
    with pytest.raises(QuotaExceeded):
        start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-1"))
    [stored] = deps.store.list_ended_since(NOW.replace(year=2000))
    assert stored.status is Status.FAILED
    assert "quota for ml.g5.xlarge" in (stored.failure_reason or "")
