"""CreateTrainingJob for a team's own algorithms, built without AWS: a script algorithm runs
in script mode from its registered source and images; an image algorithm runs its own
container with the user's hyperparameters only. Both pass botocore's validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.sagemaker.request import (
    plain_hyperparameters,
    plan_launch,
    registered_script,
)
from bot.domain import Algorithm, AlgorithmSource, BackendRejected
from tests.unit.test_sagemaker_request import (
    CPU,
    GPU1,
    GPU4,
    SETUP,
    algorithm,
    assert_valid,
    version,
)

DIGEST = "d4" * 32
SOURCE = f"s3://team-ml/trainbot/algorithms/churn/1.0.0/{DIGEST[:16]}/sourcedir.tar.gz"
CPU_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
GPU_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311"
OWN_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn@sha256:" + "e5" * 32
SCRIPT_KEYS = {"sagemaker_program", "sagemaker_submit_directory", "sagemaker_region",
               "sagemaker_container_log_level", "sagemaker_job_name",
               "sagemaker_torch_distributed_enabled", "sagemaker_instance_type"}


def registered(kind: str = "script", **source: Any) -> Algorithm:
    fields: dict[str, Any] = {
        "kind": kind, "digest": DIGEST, "owner": "UOWNER",
        "registered_at": datetime(2025, 1, 1, tzinfo=UTC),
        **({"image": OWN_IMAGE} if kind == "image" else
           {"location": SOURCE, "images": {"cpu": CPU_IMAGE, "gpu": GPU_IMAGE}}),
        **source,
    }
    return algorithm(id="churn", source=AlgorithmSource(**fields).model_dump())


def plan(algo: Algorithm, on: Any = CPU, **kw: Any) -> Any:
    published = registered_script(algo) if algo.source and algo.source.kind == "script" \
        else None
    return plan_launch(version(pool=on.id, **kw), algo, on, published, SETUP)


@pytest.mark.parametrize("kind", ["script", "image"])
@pytest.mark.parametrize("pool", [CPU, GPU1, GPU4])
def test_custom_requests_pass_botocore_validation(kind: str, pool: Any) -> None:
    assert_valid(plan(registered(kind), pool).request)


def test_a_script_algorithm_runs_its_registered_source_in_script_mode() -> None:
    req = plan(registered()).request
    hps = req["HyperParameters"]
    assert json.loads(hps["sagemaker_submit_directory"]) == SOURCE
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_region"]) == "us-east-1"
    assert hps["optimizer"] == '"sgd"'  # JSON-encoded, as for the presets
    assert req["AlgorithmSpecification"]["TrainingImage"] == CPU_IMAGE
    assert req["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "validation:accuracy", "Regex": "val_acc=([0-9.]+)"},
        {"Name": "train:loss", "Regex": "loss=([0-9.]+)"}]


def test_a_script_algorithm_gets_its_gpu_image_on_gpu_pools() -> None:
    assert plan(registered(), GPU1).image == GPU_IMAGE
    cpu_only = registered(images={"cpu": CPU_IMAGE})
    assert plan(cpu_only, GPU1).image == CPU_IMAGE


def test_an_image_algorithm_runs_its_own_image_with_the_users_hyperparameters_only() -> None:
    p = plan(registered("image"), GPU4)
    req = p.request
    assert req["AlgorithmSpecification"]["TrainingImage"] == OWN_IMAGE
    assert req["HyperParameters"] == {"epochs": "5", "lr": "0.05", "amp": "false",
                                      "optimizer": "sgd"}
    assert not SCRIPT_KEYS & set(req["HyperParameters"])
    assert [m["Name"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]] == [
        "validation:accuracy", "train:loss"]
    assert p.distributed is False  # the container decides how it uses the GPUs


def test_an_image_algorithm_keeps_spot_checkpoints_and_tensorboard() -> None:
    req = plan(registered("image"), GPU1, spot=True).request
    assert req["EnableManagedSpotTraining"] is True
    assert req["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert req["TensorBoardOutputConfig"]["LocalPath"] == "/opt/ml/output/tensorboard"


def test_plain_hyperparameters_leave_strings_as_they_are() -> None:
    assert plain_hyperparameters({"a": "adam", "b": 3, "c": 0.5, "d": True, "e": "-1"}) == {
        "a": "adam", "b": "3", "c": "0.5", "d": "true", "e": "-1"}


@pytest.mark.parametrize("source", [
    {"location": "file:///home/me/.trainbot/algorithms/churn/x", "images": {}},
    {"location": SOURCE, "images": {}},
    {"location": "file:///x", "images": {"cpu": CPU_IMAGE}},
])
def test_a_script_algorithm_registered_for_local_training_is_refused(source: dict) -> None:
    with pytest.raises(BackendRejected, match="Register it again"):
        registered_script(registered(**source))


def test_an_image_algorithm_without_an_image_is_refused() -> None:
    with pytest.raises(BackendRejected, match="without an image"):
        plan(registered("image", image=None))
