"""SageMakerCompute launching a team's own algorithms against moto: a script algorithm from its
registered source dir and images, an image algorithm as its own container; and the service
path (start pins the digest) on SageMaker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.algorithm_catalog import PublishedCatalog
from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.domain import Algorithm, AlgorithmSource, ConfigError
from bot.services.requests import LaunchRequest, start_job
from tests.integration.test_compute_sagemaker import (  # noqa: F401 — the aws fixture
    ALGO,
    BUCKET,
    GPU,
    REGION,
    aws,
    deps_with,
    make_compute,
    make_version,
)

DIGEST = "f6" * 32
SOURCE = f"s3://{BUCKET}/trainbot/algorithms/churn/1.0.0/{DIGEST[:16]}/sourcedir.tar.gz"
CPU_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
GPU_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311"
OWN_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:2025-01"


def registered(kind: str, **source: Any) -> Algorithm:
    fields: dict[str, Any] = {
        "kind": kind, "digest": DIGEST, "owner": "UOWNER",
        "registered_at": datetime(2025, 1, 1, tzinfo=UTC),
        **({"image": OWN_IMAGE} if kind == "image" else
           {"location": SOURCE, "images": {"cpu": CPU_IMAGE, "gpu": GPU_IMAGE}}),
        **source,
    }
    return ALGO.model_copy(update={"id": "churn", "source": AlgorithmSource(**fields)})


@pytest.fixture
def compute(aws: dict[str, Any]) -> SageMakerCompute:  # noqa: F811
    # No preset is published: a registered algorithm needs no catalog entry.
    return make_compute(aws, catalog=PublishedCatalog(region=REGION, bucket=BUCKET))


def test_a_script_algorithm_launches_from_its_registered_source(
        aws: dict, compute: SageMakerCompute) -> None:  # noqa: F811
    v = make_version()
    compute.launch(v, registered("script"), GPU)
    job = aws["sagemaker"].describe_training_job(TrainingJobName=v.backend_job_name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == GPU_IMAGE
    hps = job["HyperParameters"]
    assert json.loads(hps["sagemaker_submit_directory"]) == SOURCE
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert hps["optimizer"] == '"sgd"'


def test_an_image_algorithm_launches_its_own_container(
        aws: dict, compute: SageMakerCompute) -> None:  # noqa: F811
    v = make_version()
    compute.launch(v, registered("image"), GPU)
    job = aws["sagemaker"].describe_training_job(TrainingJobName=v.backend_job_name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == OWN_IMAGE
    assert job["HyperParameters"] == {"epochs": "4", "optimizer": "sgd"}


def test_check_runnable_takes_both_kinds_and_presets(compute: SageMakerCompute) -> None:
    compute.check_runnable(ALGO)
    compute.check_runnable(registered("script"))
    compute.check_runnable(registered("image"))


def test_a_script_algorithm_registered_without_images_says_register_again(
        compute: SageMakerCompute) -> None:
    local_only = registered("script", location="file:///home/me/algos/churn", images={})
    with pytest.raises(ConfigError, match="Register it again"):
        compute.check_runnable(local_only)
    with pytest.raises(ConfigError, match="Register it again"):
        compute.training_image(local_only, GPU)


def test_training_image_of_custom_algorithms(compute: SageMakerCompute) -> None:
    assert compute.training_image(registered("script"), GPU) == GPU_IMAGE
    assert compute.training_image(registered("image"), GPU) == OWN_IMAGE


def test_a_start_on_sagemaker_pins_the_digest_and_launches(
        aws: dict, compute: SageMakerCompute) -> None:  # noqa: F811
    deps = deps_with(compute)
    deps.store.register_algorithm(deps.scope, registered("image"))
    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm="churn", pool="gpu-1"))
    assert version.spec.algorithm_digest == DIGEST and version.backend_job_name
    job = aws["sagemaker"].describe_training_job(TrainingJobName=version.backend_job_name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == OWN_IMAGE
