"""Acceptance of issue #15 (a team's own algorithm) in AWS mode, against moto: the example
folder `examples/custom-algorithm` registered through the service with the S3 shelf (one
upload of its sourcedir.tar.gz, none for the same content again), started on SageMaker from
that upload; and a container image algorithm started as its own TrainingImage."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.algorithm_catalog import PublishedCatalog
from bot.adapters.algorithm_shelf import S3AlgorithmShelf, fixed_image_resolver, pack_sourcedir
from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.catalog import Catalog, load_pools, read_source_folder, source_digest
from bot.config import RerunApproval
from bot.services import registration
from bot.services.authz import Policy
from bot.services.context import Deps
from bot.services.requests import LaunchRequest, start_job
from tests.fakes import FakeClock, MemoryStore, RecordingChat
from tests.integration.slack_harness import REPO
from tests.integration.test_compute_sagemaker import (  # noqa: F401 — the aws fixture
    ALGO,
    BUCKET,
    REGION,
    aws,
    make_compute,
)

FOLDER = REPO / "examples" / "custom-algorithm"
ALGO_ID = "team-churn-classifier"
ADMIN = "UADMIN"
CPU_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
OWN_IMAGE = ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team-clf@sha256:"
             + "0123456789abcdef" * 4)
TRAIN = f"s3://{BUCKET}/churn/train/"
IMAGE_MANIFEST: dict[str, Any] = {  # no entry_point/framework: the image is the framework
    "id": "team-clf", "title": "Team classifier (own container)", "version": "1.0.0",
    "hyperparameters": [{"name": "epochs", "type": "int", "default": 5, "min": 1, "max": 50},
                        {"name": "penalty", "type": "choice", "choices": ["l1", "l2"],
                         "default": "l2"}],
    "channels": [{"name": "train", "required": True}],
    "metrics": [{"name": "validation:accuracy", "regex": "val_acc=([0-9.]+)"},
                {"name": "train:loss", "regex": "loss=([0-9.]+)"}],
    "objective": {"metric": "validation:accuracy", "goal": "maximize"},
}


class Sent:
    """The parameters of every call of one operation a client sends (botocore's
    before-parameter-build hook), in order."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))


@contextlib.contextmanager
def recording(client: Any, operation: str) -> Iterator[Sent]:
    """Record ``operation`` on a (shared) client; the hook is removed again after."""
    service = client.meta.service_model.service_id.hyphenize()  # "s3", "sagemaker"
    sent, event = Sent(), f"before-parameter-build.{service}.{operation}"
    client.meta.events.register(event, sent, unique_id=f"own-algorithm-{operation}")
    try:
        yield sent
    finally:
        client.meta.events.unregister(event, unique_id=f"own-algorithm-{operation}")


@pytest.fixture
def puts(aws: dict[str, Any], deps: Deps) -> Iterator[Sent]:  # noqa: F811
    """Every PutObject after the test's data is in place."""
    with recording(aws["s3"], "PutObject") as sent:
        yield sent


@pytest.fixture
def created_jobs(aws: dict[str, Any]) -> Iterator[Sent]:  # noqa: F811
    """Every CreateTrainingJob request as sent (moto's DescribeTrainingJob answers made-up
    MetricDefinitions, so they are read here)."""
    with recording(aws["sagemaker"], "CreateTrainingJob") as sent:
        yield sent


@pytest.fixture
def compute(aws: dict[str, Any]) -> SageMakerCompute:  # noqa: F811
    # No preset is published: a registered algorithm needs no catalog entry.
    return make_compute(aws, catalog=PublishedCatalog(region=REGION, bucket=BUCKET))


@pytest.fixture
def deps(aws: dict[str, Any], compute: SageMakerCompute) -> Deps:  # noqa: F811
    """SageMaker compute (moto), a store in memory, UADMIN an admin; the train data in S3."""
    aws["s3"].put_object(Bucket=BUCKET, Key="churn/train/sample.csv",
                         Body=(FOLDER / "data" / "sample.csv").read_bytes())
    return Deps(store=MemoryStore(), compute=compute,
                catalog=Catalog(algorithms={"toy": ALGO}, pools=load_pools()),
                clock=FakeClock(), chat=RecordingChat(),
                policy=Policy(admins=[ADMIN], rerun_approval=RerunApproval.NEVER))


@pytest.fixture
def shelf(aws: dict[str, Any]) -> S3AlgorithmShelf:  # noqa: F811
    # As `trainbot algorithms add PATH --cpu-image URI` builds it (no sagemaker SDK needed).
    return S3AlgorithmShelf(bucket=BUCKET, region=REGION, client=aws["s3"],
                            resolve_image=fixed_image_resolver(CPU_IMAGE, None))


def put_keys(puts: Sent) -> list[tuple[str, str]]:
    return [(p["Bucket"], p["Key"]) for p in puts.calls]


def uploaded(aws: dict[str, Any]) -> list[str]:  # noqa: F811
    listing = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="trainbot/algorithms/")
    return [o["Key"] for o in listing.get("Contents", [])]


def training_job(aws: dict[str, Any], name: str | None) -> dict[str, Any]:  # noqa: F811
    assert name
    return aws["sagemaker"].describe_training_job(TrainingJobName=name)


def test_a_folder_is_uploaded_once_and_runs_on_sagemaker_from_that_upload(
        aws: dict[str, Any], deps: Deps, shelf: S3AlgorithmShelf,  # noqa: F811
        puts: Sent, created_jobs: Sent) -> None:
    algorithm, created = registration.add_script(deps, FOLDER, user=ADMIN, packer=shelf)

    assert created and algorithm.source is not None
    digest = algorithm.source.digest
    assert digest == source_digest(FOLDER, shared=False)
    key = f"trainbot/algorithms/{ALGO_ID}/1.0.0/{digest[:16]}/sourcedir.tar.gz"
    source_uri = f"s3://{BUCKET}/{key}"
    assert put_keys(puts) == [(BUCKET, key)]  # exactly one PutObject: the source dir
    assert uploaded(aws) == [key]
    assert algorithm.source.location == source_uri
    assert algorithm.source.images == {"cpu": CPU_IMAGE, "gpu": CPU_IMAGE}
    body = aws["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read()
    files = read_source_folder(FOLDER)
    assert body == pack_sourcedir(files)  # deterministic: the same files, the same bytes
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        names = tar.getnames()
    assert "train.py" in names and "manifest.yml" in names
    assert sorted(names) == sorted(f.name for f in files)

    again, created_again = registration.add_script(deps, FOLDER, user=ADMIN, packer=shelf)

    assert not created_again and again == algorithm
    assert put_keys(puts) == [(BUCKET, key)]  # no new PutObject
    assert uploaded(aws) == [key]

    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm=ALGO_ID, pool="cpu-small",
                                               data={"train": TRAIN}, job_name="churn"))

    assert version.spec.algorithm_digest == digest
    job = training_job(aws, version.backend_job_name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == CPU_IMAGE
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    hps = job["HyperParameters"]
    assert json.loads(hps["sagemaker_submit_directory"]) == source_uri
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert hps["epochs"] == "30"  # the manifest's default
    [request] = created_jobs.calls
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": m.name, "Regex": m.regex} for m in algorithm.metrics]
    [channel] = job["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == TRAIN


def test_an_image_algorithm_uploads_nothing_and_runs_as_its_own_container(
        aws: dict[str, Any], deps: Deps, puts: Sent,  # noqa: F811
        created_jobs: Sent, tmp_path: Path) -> None:
    manifest = tmp_path / "team-clf.yml"
    manifest.write_text(yaml.safe_dump(IMAGE_MANIFEST))

    algorithm, created = registration.add_image(deps, OWN_IMAGE, manifest, user=ADMIN)

    assert created and algorithm.source is not None
    assert (algorithm.source.kind, algorithm.source.image) == ("image", OWN_IMAGE)
    assert puts.calls == [] and uploaded(aws) == []

    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm="team-clf", pool="cpu-small",
                                               params={"epochs": "7"}, data={"train": TRAIN},
                                               job_name="clf"))

    assert version.spec.algorithm_digest == algorithm.source.digest
    job = training_job(aws, version.backend_job_name)
    spec = job["AlgorithmSpecification"]
    assert spec["TrainingImage"] == OWN_IMAGE
    hps = job["HyperParameters"]
    assert not [k for k in hps if k.startswith("sagemaker_")]
    assert hps == {"epochs": "7", "penalty": "l2"}  # only the algorithm's own, as plain text
    [request] = created_jobs.calls
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": m["name"], "Regex": m["regex"]} for m in IMAGE_MANIFEST["metrics"]]
