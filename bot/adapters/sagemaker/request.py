"""The CreateTrainingJob request for a version, as pure functions (no I/O, no boto3).

A version runs as one SageMaker training job. In script mode (the presets and a team's own
script algorithms) a framework Deep Learning Container downloads the algorithm's
``sourcedir.tar.gz`` and runs its entry point, exactly what the SDK's estimators do: a
preset's image and source come from the published catalog
(:mod:`bot.adapters.algorithm_catalog`), a registered algorithm's from its registration
(:func:`registered_script`). A team's container image algorithm implements SageMaker's own
training contract: its image runs as it is, with the user's hyperparameters only.

Decisions (see the docstrings for the why):

- hyperparameter values are JSON-encoded in script mode, as the SDK does, so the training
  toolkit's ``json.loads`` returns each value with its type (a string stays a string); a
  container of its own gets them as plain strings (:func:`plain_hyperparameters`);
- managed spot only when the spec asks for it *and* the pool and the algorithm allow it;
  checkpoints only with spot (the one case where SageMaker restores them);
- TensorBoard output always, so every version has a managed TensorBoard link.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

from bot.adapters.algorithm_catalog import PublishedAlgorithm, PublishedImages, split_s3_uri
from bot.domain import Algorithm, Artifacts, BackendRejected, JobSpec, JobVersion, ResourcePool
from bot.domain.naming import TRAINING_JOB_NAME

__all__ = [
    "LaunchPlan",
    "SageMakerSetup",
    "TrainingDefinition",
    "build_create_training_job_request",
    "data_channels",
    "define_training",
    "encode_hyperparameters",
    "own_image",
    "plain_hyperparameters",
    "plan_launch",
    "registered_script",
    "sanitize_tag_value",
    "spot_savings",
    "tag_list",
]

PREFIX = "trainbot"
CHECKPOINT_DIR = "/opt/ml/checkpoints"
TENSORBOARD_DIR = "/opt/ml/output/tensorboard"
MAX_RUNTIME_S = 28 * 24 * 3600
_LOG_INFO = 20  # logging.INFO, the SDK's default container log level
_TAG_PUNCTUATION = frozenset("_.:/=+-@ ")
# Instance families whose storage is local NVMe: SageMaker rejects a VolumeKmsKeyId for them
# (it is encrypted by the instance's hardware module). https://docs.aws.amazon.com/sagemaker/
# latest/APIReference/API_ResourceConfig.html#sagemaker-Type-ResourceConfig-VolumeKmsKeyId
_LOCAL_STORAGE_FAMILIES = frozenset({
    "g4dn", "g5", "g6", "g6e", "gr6", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6",
    "trn1", "trn1n", "trn2", "m5d", "c5d", "r5d", "m6id", "c6id", "r6id",
})


@dataclass(frozen=True)
class SageMakerSetup:
    """Account-level settings every request uses (from :class:`bot.config.Settings`)."""

    role_arn: str
    bucket: str
    region: str
    allowed_buckets: tuple[str, ...] = ()
    kms_key_id: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    keep_alive_seconds: int = 0

    def output_path(self, version: JobVersion) -> str:
        """SageMaker writes ``<this>/<training job name>/output/{model,output}.tar.gz``."""
        return self.job_output_path(version.job)

    def job_output_path(self, job: str) -> str:
        """The output prefix of every training job of trainbot job ``job`` (a sweep's trials
        included: a sweep is a job)."""
        return f"s3://{self.bucket}/{PREFIX}/output/{job}/"

    def tensorboard_path(self, version: JobVersion) -> str:
        return f"s3://{self.bucket}/{PREFIX}/tensorboard/{version.job}/v{version.number}/"

    def checkpoint_path(self, version: JobVersion) -> str:
        return f"s3://{self.bucket}/{PREFIX}/checkpoints/{version.job}/v{version.number}/"


@dataclass(frozen=True)
class TrainingDefinition:
    """What a training job runs and on what, in the request fields CreateTrainingJob and a
    tuning job's ``HyperParameterTrainingJobDefinition`` share (``AlgorithmSpecification``
    without what only CreateTrainingJob takes, ``RoleArn``, ``HyperParameters``,
    ``OutputDataConfig``, ``ResourceConfig``, ``StoppingCondition``,
    ``EnableNetworkIsolation`` and, when they apply, ``InputDataConfig``,
    ``EnableManagedSpotTraining``, ``VpcConfig``)."""

    fields: dict[str, Any]
    image: str
    spot: bool
    distributed: bool


@dataclass(frozen=True)
class LaunchPlan:
    """A CreateTrainingJob request and what it implies for the version."""

    request: dict[str, Any]
    image: str
    spot: bool
    checkpoints: bool
    distributed: bool
    artifacts: Artifacts
    note: str


def plan_launch(
    version: JobVersion,
    algorithm: Algorithm,
    pool: ResourcePool,
    published: PublishedAlgorithm | None,
    setup: SageMakerSetup,
) -> LaunchPlan:
    """Build the CreateTrainingJob request for ``version`` (no I/O).

    ``published``: the script-mode source and images (a preset's published entry, or
    :func:`registered_script` of a team's script algorithm); None for a container image
    algorithm, whose own image runs.

    Raises :class:`BackendRejected` for what SageMaker can't run: a local-only pool, local
    (``file://``) data, a bucket outside ``allowed_buckets``, a bad job name, no image.
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
    """
    name = _job_name(version)
    definition = define_training(name, version.job, version.spec, algorithm, pool, published,
                                 setup)
    spot = definition.spot
    checkpoints = spot and algorithm.supports_checkpoints
    fields = definition.fields
    request: dict[str, Any] = {
        "TrainingJobName": name,
        **fields,
        "AlgorithmSpecification": {**fields["AlgorithmSpecification"],
                                   "EnableSageMakerMetricsTimeSeries": True},
        "TensorBoardOutputConfig": {
            "S3OutputPath": setup.tensorboard_path(version), "LocalPath": TENSORBOARD_DIR},
        "Tags": _tags(version),
    }
    if checkpoints:
        request["CheckpointConfig"] = {
            "S3Uri": setup.checkpoint_path(version), "LocalPath": CHECKPOINT_DIR}
    artifacts = Artifacts(
        output=f"{setup.output_path(version)}{name}/output/",
        tensorboard=setup.tensorboard_path(version),
        checkpoints=setup.checkpoint_path(version) if checkpoints else None,
    )
    return LaunchPlan(request=request, image=definition.image, spot=spot,
                      checkpoints=checkpoints, distributed=definition.distributed,
                      artifacts=artifacts,
                      note=_note(version, pool, spot=spot))


def define_training(
    name: str,
    job: str,
    spec: JobSpec,
    algorithm: Algorithm,
    pool: ResourcePool,
    published: PublishedAlgorithm | None,
    setup: SageMakerSetup,
) -> TrainingDefinition:
    """The parts of a training job's request that say what runs and where (no I/O): the image
    and its hyperparameters (script mode's keys naming ``name``), the data channels, the
    output under ``job``, the instances, the runtime limit and managed spot.

    Raises :class:`BackendRejected` for what SageMaker can't run: a local-only pool, local
    (``file://``) data, a bucket outside ``allowed_buckets``, no image.
    """
    if pool.instance_type == "local" or not pool.instance_type.startswith("ml."):
        raise BackendRejected(f"Pool `{pool.id}` runs only on the local backend.",
                              hint="Pick a pool with an ml.* instance type (`/train pools`).")
    spot = spot_applies(spec.spot, algorithm, pool)
    if published is None:
        image = own_image(algorithm)
        distributed = False  # the container itself decides how it uses the hosts and GPUs
        hyperparameters = plain_hyperparameters(spec.hyperparameters)
    else:
        image = published.image_for(gpu=pool.is_gpu) or ""
        if not image:
            raise BackendRejected(f"No CPU training image is published for `{algorithm.id}`.",
                                  hint="Use a GPU pool, or publish (or register) it again "
                                       "with a CPU image.")
        distributed = uses_distributed(algorithm, pool)
        hyperparameters = encode_hyperparameters(spec.hyperparameters)
        hyperparameters.update(_script_mode(name, published, setup, pool,
                                            distributed=distributed))
    fields: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": m.name, "Regex": m.regex} for m in algorithm.metrics],
        },
        "RoleArn": setup.role_arn,
        "HyperParameters": hyperparameters,
        "OutputDataConfig": _output_config(setup, job),
        "ResourceConfig": _resource_config(setup, pool),
        "StoppingCondition": _stopping_condition(spec.max_runtime_s, spot=spot),
        "EnableNetworkIsolation": False,
    }
    channels = data_channels(spec.data, algorithm, setup)
    if channels:
        fields["InputDataConfig"] = channels
    if spot:
        fields["EnableManagedSpotTraining"] = True
    if setup.subnets and setup.security_groups:
        fields["VpcConfig"] = {"Subnets": list(setup.subnets),
                               "SecurityGroupIds": list(setup.security_groups)}
    return TrainingDefinition(fields=fields, image=image, spot=spot, distributed=distributed)


def build_create_training_job_request(
    version: JobVersion,
    algorithm: Algorithm,
    pool: ResourcePool,
    published: PublishedAlgorithm | None,
    setup: SageMakerSetup,
) -> dict[str, Any]:
    """The CreateTrainingJob keyword arguments (see :func:`plan_launch`)."""
    return plan_launch(version, algorithm, pool, published, setup).request


def registered_script(algorithm: Algorithm) -> PublishedAlgorithm:
    """A team's script algorithm as script mode runs it: its uploaded ``sourcedir.tar.gz``
    (``source.location``), its entry point and the framework images resolved when it was
    registered. :class:`BackendRejected` when it was registered without them (locally: a
    ``file://`` folder, no images)."""
    src = algorithm.source
    if src is None or src.kind != "script":
        raise ValueError(f"{algorithm.id} is not a registered script algorithm")
    images = {k: src.images.get(k) for k in ("cpu", "gpu")}
    if not (src.location or "").startswith("s3://") or not any(images.values()):
        raise BackendRejected(
            f"`{algorithm.id}` was registered for local training (its source is at "
            f"{src.location or 'no location'}, with no SageMaker training image).",
            hint="Register it again with trainbot set up for SageMaker "
                 "(TRAINBOT_COMPUTE=sagemaker): that uploads its source and resolves its "
                 "images.")
    return PublishedAlgorithm(
        version=algorithm.version, digest=src.digest, source_uri=str(src.location),
        entry_point=algorithm.entry_point,
        images=PublishedImages(**images))


def own_image(algorithm: Algorithm) -> str:
    """A container image algorithm's image; :class:`BackendRejected` if it names none."""
    src = algorithm.source
    if src is None or src.kind != "image":
        raise ValueError(f"{algorithm.id} is not a container image algorithm")
    if not src.image:
        raise BackendRejected(f"`{algorithm.id}` was registered without an image.",
                              hint="Register it again with its image URI.")
    return src.image


def uses_spot(version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> bool:
    """Managed spot needs all three: the spec asks, the pool allows, the algorithm copes."""
    return spot_applies(version.spec.spot, algorithm, pool)


def spot_applies(wanted: bool, algorithm: Algorithm, pool: ResourcePool) -> bool:
    """:func:`uses_spot` for a spec that asks (``wanted``) or not."""
    return wanted and pool.spot_allowed and algorithm.supports_spot


def uses_distributed(algorithm: Algorithm, pool: ResourcePool) -> bool:
    """torchrun across every GPU (and host) when there is more than one of either."""
    return algorithm.supports_distributed and (pool.total_gpus > 1 or pool.instance_count > 1)


def encode_hyperparameters(values: dict[str, Any]) -> dict[str, str]:
    """Every value JSON-encoded, as the SageMaker SDK does (``3``, ``0.1``, ``true``,
    ``"adam"``). The training toolkit ``json.loads`` each value back, so types survive and a
    string like ``"true"`` stays a string; the algorithms' parsers accept both forms.
    https://github.com/aws/sagemaker-training-toolkit/blob/master/src/sagemaker_training/environment.py
    """
    return {key: json.dumps(value) for key, value in values.items()}


def plain_hyperparameters(values: dict[str, Any]) -> dict[str, str]:
    """Values as a container of its own reads them from ``hyperparameters.json``: a string as
    it is (``adam``, not ``"adam"``), anything else in its JSON form (``3``, ``0.1``,
    ``true``). No script-mode keys: the container isn't the training toolkit.
    https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
    """
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()}


def sanitize_tag_value(text: str) -> str:
    """A tag value AWS accepts: ``^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$``, at most 256 chars;
    anything else becomes ``_``. https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html
    """
    def ok(ch: str) -> bool:
        return ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LZN"

    return "".join(ch if ok(ch) else "_" for ch in text)[:256]


def spot_savings(billable_seconds: float | None, training_seconds: float | None) -> float | None:
    """The fraction managed spot saved: ``1 − billable/training`` (0.7 means 70 %).

    None when either time is unknown or training time is zero. Clamped to [0, 1].
    https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html
    """
    if billable_seconds is None or not training_seconds or training_seconds <= 0:
        return None
    return round(min(1.0, max(0.0, 1.0 - billable_seconds / training_seconds)), 4)


def input_channels(
    version: JobVersion, algorithm: Algorithm, setup: SageMakerSetup
) -> list[dict[str, Any]]:
    """S3 channels of ``version`` (see :func:`data_channels`)."""
    return data_channels(version.spec.data, algorithm, setup)


def data_channels(
    given: dict[str, str], algorithm: Algorithm, setup: SageMakerSetup
) -> list[dict[str, Any]]:
    """S3 channels: the spec's data (``given``) over the manifest's ``s3://`` defaults.

    ``builtin:`` channels are left out (the script uses its bundled data, as locally);
    ``file://`` is rejected; with ``allowed_buckets`` set, so is any other bucket.
    """
    data = {c.name: c.default for c in algorithm.channels
            if c.default and c.default.startswith("s3://")}
    data.update(given)
    channels = []
    for name, uri in sorted(data.items()):
        if uri.startswith("builtin:"):
            continue
        if not uri.startswith("s3://"):
            raise BackendRejected(
                f"Channel `{name}` reads {uri}: local data needs the local backend.",
                hint="On SageMaker use `--data CHANNEL=s3://bucket/prefix` (or builtin data).")
        bucket, _ = split_s3_uri(uri)
        if setup.allowed_buckets and bucket not in setup.allowed_buckets:
            raise BackendRejected(
                f"Channel `{name}` reads bucket `{bucket}`, which trainbot may not use.",
                hint="Allowed buckets: " + ", ".join(f"`{b}`" for b in setup.allowed_buckets))
        channels.append({
            "ChannelName": name,
            "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }},
        })
    return channels


def has_local_storage(instance_type: str) -> bool:
    """Whether the instance family's storage is local NVMe (no ``VolumeKmsKeyId`` then)."""
    parts = instance_type.split(".")
    return len(parts) == 3 and parts[1] in _LOCAL_STORAGE_FAMILIES


def _job_name(version: JobVersion) -> str:
    name = version.backend_job_name
    if not name or len(name) > 63 or not TRAINING_JOB_NAME.match(name):
        raise BackendRejected(f"`{name}` is not a valid SageMaker training job name.")
    return name


def _script_mode(
    name: str, published: PublishedAlgorithm, setup: SageMakerSetup, pool: ResourcePool, *,
    distributed: bool,
) -> dict[str, str]:
    # The keys the SDK's Framework estimators set; the PyTorch container reads them.
    keys: dict[str, Any] = {
        "sagemaker_program": published.entry_point,
        "sagemaker_submit_directory": published.source_uri,
        "sagemaker_region": setup.region,
        "sagemaker_container_log_level": _LOG_INFO,
        "sagemaker_job_name": name,
    }
    if distributed:
        # distribution={"torch_distributed": {"enabled": True}}: the toolkit starts torchrun
        # with one process per GPU on every host.
        keys["sagemaker_torch_distributed_enabled"] = True
        keys["sagemaker_instance_type"] = pool.instance_type
    return encode_hyperparameters(keys)


def _output_config(setup: SageMakerSetup, job: str) -> dict[str, str]:
    config = {"S3OutputPath": setup.job_output_path(job)}
    if setup.kms_key_id:
        config["KmsKeyId"] = setup.kms_key_id
    return config


def _resource_config(setup: SageMakerSetup, pool: ResourcePool) -> dict[str, Any]:
    config: dict[str, Any] = {
        "InstanceType": pool.instance_type,
        "InstanceCount": pool.instance_count,
        "VolumeSizeInGB": pool.volume_size_gb,
    }
    if setup.kms_key_id and not has_local_storage(pool.instance_type):
        config["VolumeKmsKeyId"] = setup.kms_key_id
    if setup.keep_alive_seconds > 0:
        config["KeepAlivePeriodInSeconds"] = min(setup.keep_alive_seconds, 3600)
    return config


def _stopping_condition(max_runtime_s: int, *, spot: bool) -> dict[str, int]:
    runtime = min(max_runtime_s, MAX_RUNTIME_S)
    condition = {"MaxRuntimeInSeconds": runtime}
    if spot:
        # Waiting for spot capacity counts against MaxWait (≥ MaxRuntime): allow as long
        # again as the run itself, at least an hour, within SageMaker's 28-day ceiling.
        condition["MaxWaitTimeInSeconds"] = min(runtime + max(runtime, 3600), MAX_RUNTIME_S)
    return condition


def _tags(version: JobVersion) -> list[dict[str, str]]:
    return tag_list({
        "trainbot:job": version.job,
        "trainbot:version": str(version.number),
        "trainbot:channel": version.channel,
        "trainbot:requested-by": version.requested_by,
    })


def tag_list(values: dict[str, str | None]) -> list[dict[str, str]]:
    """SageMaker's ``Tags``: the values that are set, each made a value AWS accepts."""
    return [{"Key": key, "Value": sanitize_tag_value(value)}
            for key, value in values.items() if value]


def _note(version: JobVersion, pool: ResourcePool, *, spot: bool) -> str:
    note = f"{pool.instance_count}× {pool.instance_type}"
    if spot:
        return note + ", managed spot"
    if version.spec.spot:
        return note + ", on-demand (spot isn't available for this pool/algorithm)"
    return note
