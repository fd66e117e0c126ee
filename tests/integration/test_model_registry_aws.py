"""Models on AWS end to end against moto: a version SageMaker completed is registered through
the service, becomes a Model Registry package pending approval, and the approver's decision
reaches SageMaker; the requester can't decide it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.adapters.sagemaker.models import SageMakerModelRegistry
from bot.domain import ModelStatus, NotAllowed, Status
from bot.services.models import decide_model, register_model
from bot.services.reconcile import reconcile
from bot.services.requests import LaunchRequest, start_job
from tests.integration.test_compute_sagemaker import (  # noqa: F401 — the aws fixture
    BUCKET,
    aws,
    compute,
    deps_with,
)


def test_a_completed_version_becomes_a_package_and_its_approval_reaches_sagemaker(
        aws: dict[str, Any], compute: SageMakerCompute) -> None:  # noqa: F811
    registry = SageMakerModelRegistry(aws["sagemaker"], aws["s3"], BUCKET)
    deps = replace(deps_with(compute), models=registry)
    start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-1", job_name="digits",
                                  channel="C1"))
    reconcile(deps, grace=timedelta(0))  # moto's DescribeTrainingJob already says Completed
    done = deps.store.get_version("digits", 1)
    assert done.status is Status.COMPLETED and done.artifacts.model

    model = register_model(deps, "digits", 1, user="U1", channel="C1").model

    assert model.package_arn and model.status is ModelStatus.PENDING
    package = aws["sagemaker"].describe_model_package(ModelPackageName=model.package_arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == done.artifacts.model and container["Image"]
    with pytest.raises(NotAllowed):
        decide_model(deps, model.group, model.number, user="U1", approve=True)

    decided = decide_model(deps, model.group, model.number, user="UAPPROVER", approve=True,
                           note="ship it")

    assert decided.status is ModelStatus.APPROVED
    package = aws["sagemaker"].describe_model_package(ModelPackageName=model.package_arn)
    assert package["ModelApprovalStatus"] == "Approved"
