"""SageMakerTuner against moto (CreateHyperParameterTuningJob, DescribeHyperParameterTuningJob)
and botocore's Stubber (moto has no StopHyperParameterTuningJob nor
ListTrainingJobsForHyperParameterTuningJob; the Stubber checks every request against
botocore's model as the real client does).

The sweep is the one a user would start: ``/train sweep tabular-classification
learning_rate=0.01..0.5:log max_leaf_nodes=8..64 --trials 8 --parallel 2``, with spot.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.model import ServiceModel
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from moto import mock_aws

from bot.adapters.algorithm_catalog import PublishedAlgorithm, PublishedCatalog
from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.adapters.sagemaker.tuning import (
    TRIAL_TENSORBOARD_DIR,
    SageMakerTuner,
    build_tuning_job_request,
    hyperband_config,
    parameter_ranges,
)
from bot.catalog import load_algorithms
from bot.config import Settings
from bot.domain import (
    AlgorithmSource,
    BackendError,
    BackendRejected,
    JobSpec,
    QuotaExceeded,
    ResourcePool,
)
from bot.domain.naming import TUNING_JOB_NAME, tuning_job_name
from bot.domain.sweep import Sweep, SweepStatus, Trial
from bot.domain.sweep_space import SweepSpec, build_sweep_spec
from bot.ports import Tuner

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
BUCKET = "team-ml"
ROLE = "arn:aws:iam::123456789012:role/trainbot-training"
NOW = datetime(2025, 3, 14, 11, 0, tzinfo=UTC)
TABULAR = load_algorithms(REPO / "algorithms")["tabular-classification"]
IMAGES = {"cpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
          "gpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-gpu-py311"}
PUBLISHED = PublishedAlgorithm(
    version=TABULAR.version, digest="5d" * 32, entry_point="train.py", images=IMAGES,
    source_uri=f"s3://{BUCKET}/trainbot/algorithms/tabular-classification/1.0.0/5d5d/"
               "sourcedir.tar.gz")
CATALOG = PublishedCatalog(region=REGION, bucket=BUCKET,
                           algorithms={"tabular-classification": PUBLISHED})
CPU = ResourcePool(id="cpu", instance_type="ml.m5.xlarge", spot_allowed=True,
                   hourly_price_usd=0.23)
DATA = "s3://team-ml/data/churn/"
NAME = tuning_job_name("trainbot", "churn-sweep", "9f3a")


def sweep_spec(*, strategy: str = "bayesian", spot: bool = True,
               assignments: dict[str, str] | None = None) -> SweepSpec:
    base = JobSpec(algorithm=TABULAR.id, algorithm_version=TABULAR.version,
                   hyperparameters={**TABULAR.defaults(), "label_column": "churned"},
                   data={"train": DATA}, pool=CPU.id, spot=spot, max_runtime_s=3600)
    return build_sweep_spec(
        TABULAR, assignments or {"learning_rate": "0.01..0.5:log", "max_leaf_nodes": "8..64"},
        trials=8, parallel=2, pool=CPU.id, strategy=strategy, max_runtime_s=3600, base=base)


def make_sweep(spec: SweepSpec | None = None, *, backend_name: str | None = NAME) -> Sweep:
    return Sweep(name="churn-sweep", spec=spec or sweep_spec(), requested_by="U0456EFGH",
                 created_at=NOW, channel="C0123ABCD", backend="sagemaker",
                 backend_name=backend_name, status=SweepStatus.RUNNING)


@functools.cache
def shared_clients() -> dict[str, Any]:
    return {name: boto3.client(name, region_name=REGION) for name in ("sagemaker", "logs", "s3")}


def make_tuner(clients: dict[str, Any], *, catalog: PublishedCatalog = CATALOG,
               **kw: Any) -> SageMakerTuner:
    compute = SageMakerCompute(
        sagemaker_client=clients["sagemaker"], logs_client=clients["logs"],
        s3_client=clients["s3"], catalog=catalog, role_arn=ROLE, bucket=BUCKET, region=REGION,
        **kw)
    return SageMakerTuner(compute)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield shared_clients()


@pytest.fixture
def tuner(aws: dict[str, Any]) -> SageMakerTuner:
    return make_tuner(aws)


def validate(operation: str, params: dict[str, Any]) -> None:
    """Raise unless ``params`` is valid input of ``operation`` in botocore's model."""
    model: ServiceModel = shared_clients()["sagemaker"].meta.service_model
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


# -- begin (moto) -----------------------------------------------------------------------------

def test_the_tuner_is_a_tuner_that_launches_its_trials(tuner: SageMakerTuner) -> None:
    assert isinstance(tuner, Tuner)
    assert tuner.name == "sagemaker" and tuner.launches_trials is True
    assert tuner.suggest(make_sweep(), []) == {}
    trial = Trial(number=0, version=1, params={"learning_rate": 0.1, "max_leaf_nodes": 9})
    assert tuner.should_prune(make_sweep(), [trial], trial) is False


def test_begin_creates_the_tuning_job_the_sweep_describes(aws: dict, tuner: SageMakerTuner
                                                          ) -> None:
    sweep = make_sweep()
    tuner.begin(sweep, TABULAR, CPU, NAME)
    job = aws["sagemaker"].describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=NAME)
    config = job["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize", "MetricName": "validation:accuracy"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8,
                                        "MaxParallelTrainingJobs": 2}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert "StrategyConfig" not in config
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "learning_rate", "MinValue": "0.01", "MaxValue": "0.5",
         "ScalingType": "Logarithmic"}]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "max_leaf_nodes", "MinValue": "8", "MaxValue": "64", "ScalingType": "Linear"}]
    assert "CategoricalParameterRanges" not in ranges

    definition = job["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    # The fixed values, encoded as a single version's are (script mode: JSON), swept ones not.
    assert "learning_rate" not in static and "max_leaf_nodes" not in static
    assert static["max_iter"] == "200" and static["early_stopping"] == "true"
    assert static["validation_split"] == "0.2" and static["label_column"] == '"churned"'
    assert json.loads(static["sagemaker_program"]) == "train.py"
    assert json.loads(static["sagemaker_submit_directory"]) == PUBLISHED.source_uri
    assert json.loads(static["sagemaker_job_name"]) == NAME
    assert json.loads(static["sagemaker_region"]) == REGION
    spec = definition["AlgorithmSpecification"]
    assert spec["TrainingImage"] == IMAGES["cpu"] and spec["TrainingInputMode"] == "File"
    assert {m["Name"]: m["Regex"] for m in spec["MetricDefinitions"]} == {
        m.name: m.regex for m in TABULAR.metrics}
    assert definition["RoleArn"] == ROLE
    assert definition["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/trainbot/output/churn-sweep/"}
    assert definition["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                            "VolumeSizeInGB": 30}
    [channel] = definition["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == DATA
    # Managed spot: waiting for capacity counts against MaxWait, as for a single version.
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600,
                                               "MaxWaitTimeInSeconds": 7200}
    assert "CheckpointConfig" not in definition  # one URI would be shared by every trial
    assert definition["Environment"] == {"SM_TENSORBOARD_DIR": TRIAL_TENSORBOARD_DIR}
    assert definition["EnableNetworkIsolation"] is False


def test_a_retried_begin_finds_its_own_tuning_job(aws: dict, tuner: SageMakerTuner) -> None:
    sweep = make_sweep()
    tuner.begin(sweep, TABULAR, CPU, NAME)
    tuner.begin(sweep, TABULAR, CPU, NAME)  # the same request: accepted
    other = make_sweep(sweep_spec(assignments={"learning_rate": "0.01..0.2"}))
    with pytest.raises(BackendRejected, match="already exists"):
        tuner.begin(other, TABULAR, CPU, NAME)


def test_describe_reads_the_tuning_job(tuner: SageMakerTuner) -> None:
    sweep = make_sweep()
    assert tuner.describe(sweep) is None  # not created yet
    assert tuner.describe(make_sweep(backend_name=None)) is None
    tuner.begin(sweep, TABULAR, CPU, NAME)
    detail = tuner.describe(sweep)
    assert detail is not None and detail.name == NAME
    assert detail.arn and detail.arn.endswith(f"hyper-parameter-tuning-job/{NAME}")
    assert detail.status == "Completed"  # moto ends every tuning job at once
    assert detail.creation_time is not None and detail.creation_time.tzinfo is not None


def test_hyperband_stops_trials_itself(aws: dict, tuner: SageMakerTuner) -> None:
    sweep = make_sweep(sweep_spec(strategy="hyperband"))
    tuner.begin(sweep, TABULAR, CPU, NAME)
    config = aws["sagemaker"].describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=NAME)["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Hyperband"
    assert config["TrainingJobEarlyStoppingType"] == "Off"
    # max_iter=200 trees, evaluated (the objective printed) every eval_every=10: 20 epochs.
    assert config["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 20}}


def test_random_search_and_a_minimized_objective(aws: dict, tuner: SageMakerTuner) -> None:
    base = sweep_spec(strategy="random", spot=False)
    spec = base.model_copy(update={"objective_metric": "validation:loss",
                                   "objective_goal": "minimize"})
    tuner.begin(make_sweep(spec), TABULAR, CPU, NAME)
    job = aws["sagemaker"].describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=NAME)
    config = job["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Random" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize", "MetricName": "validation:loss"}
    definition = job["TrainingJobDefinition"]
    assert "EnableManagedSpotTraining" not in definition
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_a_preset_published_at_another_version_is_refused(aws: dict) -> None:
    stale = PublishedCatalog(region=REGION, bucket=BUCKET, algorithms={
        "tabular-classification": PUBLISHED.model_copy(update={"version": "0.9.0"})})
    tuner = make_tuner(aws, catalog=stale)  # what a publish of older code leaves
    with pytest.raises(BackendRejected, match=r"published at 0\.9\.0"):
        tuner.begin(make_sweep(), TABULAR, CPU, NAME)


def test_a_local_pool_and_a_bad_name_are_refused(tuner: SageMakerTuner) -> None:
    local = ResourcePool(id="local", instance_type="local")
    with pytest.raises(BackendRejected, match="local backend"):
        tuner.begin(make_sweep(), TABULAR, local, NAME)
    with pytest.raises(BackendRejected, match="not a valid SageMaker tuning job name"):
        tuner.begin(make_sweep(), TABULAR, CPU, "trainbot-" + "x" * 40)


# -- the request, against botocore's model --------------------------------------------------------

SETUP_VARIANTS = [
    {},
    {"kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/abc", "keep_alive_seconds": 600,
     "subnets": ("subnet-1",), "security_groups": ("sg-1",)},
]


@pytest.mark.parametrize("strategy", ["bayesian", "random", "hyperband"])
@pytest.mark.parametrize("variant", range(len(SETUP_VARIANTS)))
def test_every_request_is_valid_input(strategy: str, variant: int) -> None:
    setup = make_tuner(shared_clients(), **SETUP_VARIANTS[variant]).setup
    spec = sweep_spec(strategy=strategy, assignments={
        "learning_rate": "0.01..0.5:log", "max_leaf_nodes": "8..64",
        "early_stopping": "true|false", "label_column": "churned|label",
        "max_iter": "50..400"})
    request = build_tuning_job_request(NAME, make_sweep(spec), TABULAR, CPU, PUBLISHED, setup)
    validate("CreateHyperParameterTuningJob", request)
    definition = request["TrainingJobDefinition"]
    assert "KeepAlivePeriodInSeconds" not in definition["ResourceConfig"]  # no warm pools
    if variant:
        assert definition["VpcConfig"] == {"Subnets": ["subnet-1"],
                                           "SecurityGroupIds": ["sg-1"]}
        assert definition["OutputDataConfig"]["KmsKeyId"] == SETUP_VARIANTS[1]["kms_key_id"]
    choices = {r["Name"]: r["Values"]
               for r in request["HyperParameterTuningJobConfig"]["ParameterRanges"][
                   "CategoricalParameterRanges"]}
    assert choices == {"early_stopping": ["true", "false"],
                       "label_column": ['"churned"', '"label"']}  # script mode: JSON
    assert {t["Key"]: t["Value"] for t in request["Tags"]} == {
        "trainbot:job": "churn-sweep", "trainbot:sweep": "churn-sweep",
        "trainbot:channel": "C0123ABCD", "trainbot:requested-by": "U0456EFGH"}
    if strategy == "hyperband":  # max_iter swept up to 400, evaluated every 10
        assert request["HyperParameterTuningJobConfig"]["StrategyConfig"][
            "HyperbandStrategyConfig"]["MaxResource"] == 40


def test_a_container_image_algorithm_gets_plain_values() -> None:
    image = TABULAR.model_copy(update={
        "source": AlgorithmSource(kind="image", image="123456789012.dkr.ecr.us-east-1."
                                  "amazonaws.com/team/churn:1", digest="ab" * 32,
                                  owner="U0456EFGH", registered_at=NOW)})
    spec = sweep_spec(assignments={"label_column": "churned|label", "early_stopping": "true|false"})
    setup = make_tuner(shared_clients()).setup
    request = build_tuning_job_request(NAME, make_sweep(spec), image, CPU, None, setup)
    validate("CreateHyperParameterTuningJob", request)
    definition = request["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"].endswith("team/churn:1")
    assert not any(k.startswith("sagemaker_") for k in definition["StaticHyperParameters"])
    choices = {r["Name"]: r["Values"] for r in request["HyperParameterTuningJobConfig"][
        "ParameterRanges"]["CategoricalParameterRanges"]}
    assert choices == {"label_column": ["churned", "label"], "early_stopping": ["true", "false"]}


def test_parameter_ranges_scale_ints_and_floats_by_log() -> None:
    spec = sweep_spec(assignments={"max_leaf_nodes": "8..64:log", "learning_rate": "0.01..0.5"})
    ranges = parameter_ranges(spec, script_mode=True)
    assert ranges["IntegerParameterRanges"][0]["ScalingType"] == "Logarithmic"
    assert ranges["ContinuousParameterRanges"][0]["ScalingType"] == "Linear"


def test_hyperband_needs_an_epoch_count() -> None:
    spec = sweep_spec(strategy="hyperband")
    assert hyperband_config(spec) == {"MinResource": 1, "MaxResource": 20}
    epochs = spec.model_copy(update={"fixed": {"epochs": 30}})
    assert hyperband_config(epochs)["MaxResource"] == 30
    nothing = spec.model_copy(update={"fixed": {"seed": 1}})
    with pytest.raises(BackendRejected, match="how many epochs"):
        hyperband_config(nothing)


# -- the name ---------------------------------------------------------------------------------------

def test_tuning_job_names_start_with_the_prefix_and_fit() -> None:
    assert NAME == "trainbot-churn-sweep-9f3a"
    long = tuning_job_name("trainbot", "A-Very-Long-Sweep-Name-That-Goes-On-And-On", "BEEF")
    assert long.startswith("trainbot-") and len(long) <= 32 and long == long.lower()
    assert TUNING_JOB_NAME.match(long) and long.endswith("-beef")
    prefix = tuning_job_name("p" * 16, "churn", "9f3a")
    assert prefix.startswith("p" * 16 + "-") and len(prefix) <= 32
    assert tuning_job_name("trainbot", "x", "9f-3a!") == "trainbot-x-9f3a"
    with pytest.raises(ValueError):
        tuning_job_name("trainbot", "x", "--")
    for salt in ("0000", "ffff", "1a2b"):
        trial = f"{tuning_job_name('trainbot', 'churn-sweep', salt)}-123-0a1b2c3d"
        assert len(trial) <= 63


def test_from_settings_wires_a_compute() -> None:
    tuner = SageMakerTuner.from_settings(
        Settings(compute="sagemaker", sagemaker_role_arn=ROLE, bucket=BUCKET))
    assert tuner.setup.role_arn == ROLE and tuner.setup.bucket == BUCKET
    assert tuner.sagemaker is tuner.compute.sagemaker


# -- stop, trials and errors (Stubber) -----------------------------------------------------------

@functools.cache
def stub_client() -> Any:
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def stubbed() -> Iterator[tuple[SageMakerTuner, Stubber]]:
    client = stub_client()
    with Stubber(client) as stub:
        yield make_tuner({**shared_clients(), "sagemaker": client}), stub
        stub.assert_no_pending_responses()


def test_stop_stops_the_tuning_job(stubbed: tuple[SageMakerTuner, Stubber]) -> None:
    tuner, stub = stubbed
    stub.add_response("stop_hyper_parameter_tuning_job", {},
                      {"HyperParameterTuningJobName": NAME})
    tuner.stop(make_sweep())


@pytest.mark.parametrize(("code", "message"), [
    ("ValidationException", "The request was rejected because the hyperparameter tuning job "
                            "is in status Completed."),
    ("ResourceNotFound", "Amazon SageMaker can't find a tuning job with name x"),
])
def test_stopping_an_ended_or_unknown_tuning_job_is_done(
        stubbed: tuple[SageMakerTuner, Stubber], code: str, message: str) -> None:
    tuner, stub = stubbed
    stub.add_client_error("stop_hyper_parameter_tuning_job", service_error_code=code,
                          service_message=message, http_status_code=400,
                          expected_params={"HyperParameterTuningJobName": NAME})
    tuner.stop(make_sweep())


def test_stop_without_a_tuning_job_calls_nothing(stubbed: tuple[SageMakerTuner, Stubber]) -> None:
    tuner, _ = stubbed
    tuner.stop(make_sweep(backend_name=None))


def test_a_throttled_stop_is_a_backend_error(stubbed: tuple[SageMakerTuner, Stubber]) -> None:
    tuner, stub = stubbed
    stub.add_client_error("stop_hyper_parameter_tuning_job",
                          service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(BackendError, match="try again"):
        tuner.stop(make_sweep())


def test_quotas_name_what_ran_out(stubbed: tuple[SageMakerTuner, Stubber]) -> None:
    tuner, stub = stubbed
    stub.add_client_error(
        "create_hyper_parameter_tuning_job", service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit 'Number of concurrent "
                        "hyperparameter tuning jobs' is 100 Jobs", http_status_code=400)
    with pytest.raises(QuotaExceeded, match="tuning jobs"):
        tuner.begin(make_sweep(), TABULAR, CPU, NAME)
    stub.add_client_error(
        "create_hyper_parameter_tuning_job", service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit 'ml.m5.xlarge for spot training job "
                        "usage' is 0 Instances", http_status_code=400)
    with pytest.raises(QuotaExceeded, match=r"ml\.m5\.xlarge") as err:
        tuner.begin(make_sweep(), TABULAR, CPU, NAME)
    assert "spot training job usage" in (err.value.hint or "")


def test_a_rejected_request_says_why(stubbed: tuple[SageMakerTuner, Stubber]) -> None:
    tuner, stub = stubbed
    stub.add_client_error("create_hyper_parameter_tuning_job",
                          service_error_code="ValidationException",
                          service_message="Objective metric validation:accuracy is not defined",
                          http_status_code=400)
    with pytest.raises(BackendRejected, match="Objective metric"):
        tuner.begin(make_sweep(), TABULAR, CPU, NAME)


def test_trial_names_read_every_page(stubbed: tuple[SageMakerTuner, Stubber]) -> None:
    tuner, stub = stubbed

    def summary(n: int, minute: int) -> dict[str, Any]:
        name = f"{NAME}-{n:03d}-0a1b2c3d"
        return {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:"
                f"123456789012:training-job/{name}", "TrainingJobStatus": "Completed",
                "CreationTime": datetime(2025, 3, 14, 11, minute, tzinfo=UTC),
                "TunedHyperParameters": {"max_leaf_nodes": "23"}}

    stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job",
                      {"TrainingJobSummaries": [summary(2, 5), summary(3, 9)], "NextToken": "t"},
                      {"HyperParameterTuningJobName": NAME, "MaxResults": 100})
    stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job",
                      {"TrainingJobSummaries": [summary(1, 1)]},
                      {"HyperParameterTuningJobName": NAME, "MaxResults": 100,
                       "NextToken": "t"})
    assert tuner.trial_names(make_sweep()) == [
        f"{NAME}-001-0a1b2c3d", f"{NAME}-002-0a1b2c3d", f"{NAME}-003-0a1b2c3d"]
    assert tuner.trial_names(make_sweep(backend_name=None)) == []
