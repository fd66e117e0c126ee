"""SageMaker compute: the :class:`bot.ports.Compute` port over boto3 (never the sagemaker SDK).

A version runs as one SageMaker training job in script mode: the PyTorch Deep Learning
Container named in the published catalog (:mod:`bot.adapters.algorithm_catalog`) downloads the
algorithm's ``sourcedir.tar.gz`` and runs its entry point, exactly what the SDK's estimators do.
State changes come back through EventBridge (``functions/job_events``); this adapter only
launches, stops and reads: DescribeTrainingJob, CloudWatch Logs and the job's S3 output.

Decisions (see the docstrings for the why):

- hyperparameter values are JSON-encoded, as the SDK does, so the training toolkit's
  ``json.loads`` returns each value with its type (a string stays a string);
- managed spot only when the spec asks for it *and* the pool and the algorithm allow it;
  checkpoints only with spot (the one case where SageMaker restores them);
- TensorBoard output always, so every version has a managed TensorBoard link.

Reads (progress, results) are best effort: what is missing comes back empty, and a failing
read is logged, never raised, because state-change handling must not depend on it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.adapters.algorithm_catalog import (
    PublishedAlgorithm,
    PublishedCatalog,
    catalog_uri,
    split_s3_uri,
)
from bot.adapters.sagemaker_errors import error_code, is_not_found, translate
from bot.adapters.training_log import compile_metrics, match_metrics, match_progress, summarize
from bot.domain import (
    Algorithm,
    Artifacts,
    BackendRejected,
    ConfigError,
    JobVersion,
    Progress,
    ResourcePool,
    TrainingJobDetail,
)
from bot.domain.job import MAX_LOG_TAIL
from bot.domain.naming import TRAINING_JOB_NAME
from bot.ports import Launch, Links, Results

if TYPE_CHECKING:
    from bot.catalog import Catalog
    from bot.config import Settings

__all__ = [
    "LOG_GROUP",
    "LaunchPlan",
    "SageMakerCompute",
    "SageMakerSetup",
    "build_create_training_job_request",
    "encode_hyperparameters",
    "plan_launch",
    "sanitize_tag_value",
    "spot_savings",
]

log = logging.getLogger("trainbot.compute.sagemaker")

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PREFIX = "trainbot"
CHECKPOINT_DIR = "/opt/ml/checkpoints"
TENSORBOARD_DIR = "/opt/ml/output/tensorboard"
MAX_RUNTIME_S = 28 * 24 * 3600
MAX_OUTPUT_BYTES = 20 * 1024 * 1024  # output.tar.gz read for evaluation.json
MAX_EVALUATION_BYTES = 5 * 1024 * 1024
MAX_LOG_EVENTS = 50_000  # a full-log scan for metric series stops here
MAX_LOG_PAGES = 200  # GetLogEvents calls per stream in a full-log scan
MAX_STREAMS = 8  # one stream per host and restart: `<job>/algo-1-<epoch>`
PROGRESS_WINDOW = 200  # log lines read for live progress
_LOG_INFO = 20  # logging.INFO, the SDK's default container log level
_TAG_PUNCTUATION = frozenset("_.:/=+-@ ")
# Instance families whose storage is local NVMe: SageMaker rejects a VolumeKmsKeyId for them
# (it is encrypted by the instance's hardware module). https://docs.aws.amazon.com/sagemaker/
# latest/APIReference/API_ResourceConfig.html#sagemaker-Type-ResourceConfig-VolumeKmsKeyId
_LOCAL_STORAGE_FAMILIES = frozenset({
    "g4dn", "g5", "g6", "g6e", "gr6", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6",
    "trn1", "trn1n", "trn2", "m5d", "c5d", "r5d", "m6id", "c6id", "r6id",
})


# -- the request, as pure functions ---------------------------------------------------------

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
        return f"s3://{self.bucket}/{PREFIX}/output/{version.job}/"

    def tensorboard_path(self, version: JobVersion) -> str:
        return f"s3://{self.bucket}/{PREFIX}/tensorboard/{version.job}/v{version.number}/"

    def checkpoint_path(self, version: JobVersion) -> str:
        return f"s3://{self.bucket}/{PREFIX}/checkpoints/{version.job}/v{version.number}/"


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
    published: PublishedAlgorithm,
    setup: SageMakerSetup,
) -> LaunchPlan:
    """Build the CreateTrainingJob request for ``version`` (no I/O).

    Raises :class:`BackendRejected` for what SageMaker can't run: a local-only pool, local
    (``file://``) data, a bucket outside ``allowed_buckets``, a bad job name, no image.
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
    """
    name = _job_name(version)
    if pool.instance_type == "local" or not pool.instance_type.startswith("ml."):
        raise BackendRejected(f"Pool `{pool.id}` runs only on the local backend.",
                              hint="Pick a pool with an ml.* instance type (`/train pools`).")
    image = published.image_for(gpu=pool.is_gpu)
    if not image:
        raise BackendRejected(f"No CPU training image is published for `{algorithm.id}`.",
                              hint="Use a GPU pool, or republish with a CPU image.")
    spot = uses_spot(version, algorithm, pool)
    checkpoints = spot and algorithm.supports_checkpoints
    distributed = uses_distributed(algorithm, pool)
    hyperparameters = encode_hyperparameters(version.spec.hyperparameters)
    hyperparameters.update(_script_mode(name, published, setup, pool, distributed=distributed))
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": m.name, "Regex": m.regex} for m in algorithm.metrics],
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "RoleArn": setup.role_arn,
        "HyperParameters": hyperparameters,
        "OutputDataConfig": _output_config(setup, version),
        "ResourceConfig": _resource_config(setup, pool),
        "StoppingCondition": _stopping_condition(version.spec.max_runtime_s, spot=spot),
        "TensorBoardOutputConfig": {
            "S3OutputPath": setup.tensorboard_path(version), "LocalPath": TENSORBOARD_DIR},
        "EnableNetworkIsolation": False,
        "Tags": _tags(version),
    }
    channels = input_channels(version, algorithm, setup)
    if channels:
        request["InputDataConfig"] = channels
    if spot:
        request["EnableManagedSpotTraining"] = True
    if checkpoints:
        request["CheckpointConfig"] = {
            "S3Uri": setup.checkpoint_path(version), "LocalPath": CHECKPOINT_DIR}
    if setup.subnets and setup.security_groups:
        request["VpcConfig"] = {"Subnets": list(setup.subnets),
                                "SecurityGroupIds": list(setup.security_groups)}
    artifacts = Artifacts(
        output=f"{setup.output_path(version)}{name}/output/",
        tensorboard=setup.tensorboard_path(version),
        checkpoints=setup.checkpoint_path(version) if checkpoints else None,
    )
    return LaunchPlan(request=request, image=image, spot=spot, checkpoints=checkpoints,
                      distributed=distributed, artifacts=artifacts,
                      note=_note(version, pool, spot=spot))


def build_create_training_job_request(
    version: JobVersion,
    algorithm: Algorithm,
    pool: ResourcePool,
    published: PublishedAlgorithm,
    setup: SageMakerSetup,
) -> dict[str, Any]:
    """The CreateTrainingJob keyword arguments (see :func:`plan_launch`)."""
    return plan_launch(version, algorithm, pool, published, setup).request


def uses_spot(version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> bool:
    """Managed spot needs all three: the spec asks, the pool allows, the algorithm copes."""
    return version.spec.spot and pool.spot_allowed and algorithm.supports_spot


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
    """S3 channels: the spec's data over the manifest's ``s3://`` defaults.

    ``builtin:`` channels are left out (the script uses its bundled data, as locally);
    ``file://`` is rejected; with ``allowed_buckets`` set, so is any other bucket.
    """
    data = {c.name: c.default for c in algorithm.channels
            if c.default and c.default.startswith("s3://")}
    data.update(version.spec.data)
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


def _output_config(setup: SageMakerSetup, version: JobVersion) -> dict[str, str]:
    config = {"S3OutputPath": setup.output_path(version)}
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
    values = {
        "trainbot:job": version.job,
        "trainbot:version": str(version.number),
        "trainbot:channel": version.channel,
        "trainbot:requested-by": version.requested_by,
    }
    return [{"Key": key, "Value": sanitize_tag_value(value)}
            for key, value in values.items() if value]


def _note(version: JobVersion, pool: ResourcePool, *, spot: bool) -> str:
    note = f"{pool.instance_count}× {pool.instance_type}"
    if spot:
        return note + ", managed spot"
    if version.spec.spot:
        return note + ", on-demand (spot isn't available for this pool/algorithm)"
    return note


# -- the adapter ------------------------------------------------------------------------------

CatalogSource = PublishedCatalog | Callable[[], PublishedCatalog]


class SageMakerCompute:
    """The Compute port over SageMaker training jobs.

    ``catalog`` is the published catalog, or a loader called on first use (and once more
    when an algorithm is missing, so publishing takes effect without a restart).
    """

    name = "sagemaker"

    def __init__(
        self,
        *,
        sagemaker_client: Any,
        logs_client: Any,
        s3_client: Any,
        catalog: CatalogSource,
        role_arn: str,
        bucket: str,
        region: str,
        allowed_buckets: Sequence[str] = (),
        kms_key_id: str | None = None,
        subnets: Sequence[str] = (),
        security_groups: Sequence[str] = (),
        keep_alive_seconds: int = 0,
    ) -> None:
        if not 0 <= keep_alive_seconds <= 3600:
            raise ConfigError("TRAINBOT_KEEP_ALIVE_SECONDS must be between 0 and 3600")
        if bool(subnets) != bool(security_groups):
            raise ConfigError("TRAINBOT_SUBNETS and TRAINBOT_SECURITY_GROUPS go together: "
                              "set both (to run in your VPC) or neither")
        self.sagemaker = sagemaker_client
        self.logs_client = logs_client
        self.s3 = s3_client
        self.setup = SageMakerSetup(
            role_arn=role_arn, bucket=bucket, region=region,
            allowed_buckets=tuple(allowed_buckets), kms_key_id=kms_key_id or None,
            subnets=tuple(subnets), security_groups=tuple(security_groups),
            keep_alive_seconds=keep_alive_seconds,
        )
        self._loader = None if isinstance(catalog, PublishedCatalog) else catalog
        self._catalog = catalog if isinstance(catalog, PublishedCatalog) else None

    @classmethod
    def from_settings(
        cls, settings: Settings, catalog: Catalog | None = None
    ) -> SageMakerCompute:
        """Wire from :class:`bot.config.Settings`; ``ConfigError`` names what is missing.

        The published catalog is read lazily from ``TRAINBOT_CATALOG`` (a file) or else
        ``s3://$TRAINBOT_BUCKET/trainbot/catalog.json``, so the bot starts before publishing.
        ``catalog`` (the local :class:`bot.catalog.Catalog`) isn't needed here.
        """
        from bot.aws import LazyClient, aws_region

        if not settings.sagemaker_role_arn:
            raise ConfigError("TRAINBOT_SAGEMAKER_ROLE_ARN is required with "
                              "TRAINBOT_COMPUTE=sagemaker (the role training jobs run as).")
        if not settings.bucket:
            raise ConfigError("TRAINBOT_BUCKET is required with TRAINBOT_COMPUTE=sagemaker "
                              "(where code, outputs and TensorBoard logs go).")
        region = aws_region()
        # Created on first use: the Slack ack path builds the bot but calls no AWS API.
        sagemaker, logs, s3 = (LazyClient(s) for s in ("sagemaker", "logs", "s3"))
        source = str(settings.catalog) if settings.catalog else catalog_uri(settings.bucket)
        return cls(
            sagemaker_client=sagemaker, logs_client=logs, s3_client=s3,
            catalog=lambda: PublishedCatalog.load(source, s3_client=s3),
            role_arn=settings.sagemaker_role_arn, bucket=settings.bucket,
            region=region, allowed_buckets=settings.allowed_buckets,
            kms_key_id=settings.kms_key_id, subnets=settings.subnets,
            security_groups=settings.security_groups,
            keep_alive_seconds=settings.keep_alive_seconds,
        )

    # -- the published catalog (lineage reads these too) --------------------------------------

    def published_algorithm(self, algo_id: str) -> PublishedAlgorithm:
        """Digest, source and images of a published algorithm; ``BackendRejected`` if none,
        or if the catalog was published for another region (ECR images are regional)."""
        catalog = self._current_catalog()
        if algo_id not in catalog.algorithms and self._loader is not None:
            catalog = self._reload_catalog()
        if catalog.region != self.setup.region:
            raise BackendRejected(
                f"The algorithms were published for {catalog.region}, but SageMaker runs in "
                f"{self.setup.region}.",
                hint=f"Run `trainbot algorithms publish --region {self.setup.region}`.")
        return catalog.entry(algo_id)

    def training_image(self, algo_id: str, pool: ResourcePool) -> str | None:
        return self.published_algorithm(algo_id).image_for(gpu=pool.is_gpu)

    def _current_catalog(self) -> PublishedCatalog:
        return self._catalog if self._catalog is not None else self._reload_catalog()

    def _reload_catalog(self) -> PublishedCatalog:
        assert self._loader is not None
        try:
            catalog = self._loader()
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        self._catalog = catalog
        return catalog

    # -- the Compute port ---------------------------------------------------------------------

    def launch(self, version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> Launch:
        """CreateTrainingJob named ``version.backend_job_name``.

        A create retried by botocore after a lost response finds its own job already there
        (``ResourceInUse``); that job is accepted as launched when it is the same request.
        """
        published = self.published_algorithm(algorithm.id)
        if published.version != version.spec.algorithm_version:
            raise BackendRejected(
                f"`{algorithm.id}` is published at {published.version}, but this version "
                f"needs {version.spec.algorithm_version}.",
                hint="Run `trainbot algorithms publish` to publish the current code.")
        plan = plan_launch(version, algorithm, pool, published, self.setup)
        name = plan.request["TrainingJobName"]
        try:
            self.sagemaker.create_training_job(**plan.request)
        except ClientError as exc:
            if error_code(exc) != "ResourceInUse":
                raise translate(exc, instance_type=pool.instance_type, spot=plan.spot) from exc
            if not self._is_same_job(plan.request):
                raise BackendRejected(
                    f"A SageMaker training job named `{name}` already exists.",
                    hint="SageMaker never frees a name; start a new version.") from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        log.info("launched %s as SageMaker job %s (%s)", version.label, name, plan.note)
        return Launch(backend_job_name=name, artifacts=plan.artifacts, compute_note=plan.note)

    def stop(self, version: JobVersion) -> None:
        """StopTrainingJob. A job that already ended (or never existed) is not an error:
        SageMaker answers those with a ValidationException."""
        if not version.backend_job_name:
            return
        try:
            self.sagemaker.stop_training_job(TrainingJobName=version.backend_job_name)
        except ClientError as exc:
            if error_code(exc) == "ValidationException" or is_not_found(exc):
                log.info("nothing to stop for %s: %s", version.backend_job_name, exc)
                return
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def describe(self, version: JobVersion) -> TrainingJobDetail | None:
        if not version.backend_job_name:
            return None
        try:
            found = self.sagemaker.describe_training_job(TrainingJobName=version.backend_job_name)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return TrainingJobDetail.model_validate(found)

    def logs(self, version: JobVersion, *, lines: int = 50) -> list[str]:
        """The last ``lines`` lines of the job's CloudWatch streams; [] before there are any."""
        if not version.backend_job_name or lines <= 0:
            return []
        try:
            return [line for _, line in self._tail(version.backend_job_name, lines)]
        except ClientError as exc:
            if is_not_found(exc):
                return []
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def progress(self, version: JobVersion, algorithm: Algorithm) -> Progress | None:
        """Latest progress and metric values in the log tail; ``updated_at`` is the time of
        the last log event (so "stuck" means "silent"). None before the job logs anything."""
        if not version.backend_job_name:
            return None
        try:
            events = self._tail(version.backend_job_name, PROGRESS_WINDOW)
        except (ClientError, BotoCoreError) as exc:
            _log_read_failure("progress", version, exc)
            return None
        if not events:
            return None
        metrics = compile_metrics([(m.name, m.regex) for m in algorithm.metrics])
        progress_re = _compile(algorithm.progress_regex)
        current = total = None
        latest: dict[str, float] = {}
        for _, line in events:
            latest.update(dict(match_metrics(line, metrics)))
            found = match_progress(line, progress_re)
            if found is not None:
                current, found_total = found
                total = found_total if found_total is not None else total
        return Progress(current=current, total=total, metrics=latest,
                        updated_at=_event_time(events[-1][0]))

    def results(self, version: JobVersion, algorithm: Algorithm) -> Results:
        """``evaluation.json`` from the job's ``output.tar.gz``, metric series from the whole
        log (≤ 200 points each) and its last 30 lines. Missing pieces are empty."""
        name = version.backend_job_name
        if not name:
            return Results()
        return Results(evaluation=self._evaluation(version, name),
                       series=self._series(version, name, algorithm),
                       log_tail=self._log_tail(version, name))

    def links(self, version: JobVersion) -> Links:
        """Console, managed TensorBoard (never a presigned URL: that is a credential) and the
        CloudWatch streams. SageMaker documents no per-job lineage URL, so none."""
        name = version.backend_job_name
        if not name:
            return Links()
        region = self.setup.region
        console = f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
        logs = (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
                f"#logStream:group={LOG_GROUP};prefix={name}/;streamFilter=typeLogStreamPrefix")
        return Links(console=f"{console}#/jobs/{name}",
                     tensorboard=f"{console}#/tensor-board-landing/{name}", logs=logs)

    # -- reading --------------------------------------------------------------------------------

    def _is_same_job(self, request: dict[str, Any]) -> bool:
        try:
            found = self.sagemaker.describe_training_job(
                TrainingJobName=request["TrainingJobName"])
        except (ClientError, BotoCoreError):
            return False
        return (found.get("HyperParameters") == request["HyperParameters"]
                and found.get("AlgorithmSpecification", {}).get("TrainingImage")
                == request["AlgorithmSpecification"]["TrainingImage"])

    def _streams(self, name: str) -> list[str]:
        """The job's latest streams (by last event), oldest first. Ordering by time can't be
        combined with a prefix in DescribeLogStreams, hence the sort here."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{name}/"}
        for _ in range(5):  # 250 streams: far more than hosts × restarts
            page = self.logs_client.describe_log_streams(**kwargs)
            found.extend(page.get("logStreams", []))
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
        found.sort(key=lambda s: (s.get("lastEventTimestamp") or s.get("creationTime") or 0,
                                  s["logStreamName"]))
        return [s["logStreamName"] for s in found[-MAX_STREAMS:]]

    def _tail(self, name: str, lines: int) -> list[tuple[int, str]]:
        events: list[tuple[int, str]] = []
        for stream in self._streams(name):
            page = self.logs_client.get_log_events(
                logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=False,
                limit=min(max(lines, 1), 10_000))
            events.extend(_lines(page.get("events", [])))
        events.sort(key=lambda e: e[0])  # stable: one stream's order is kept within a tick
        return events[-lines:]

    def _all_lines(self, name: str) -> Iterator[str]:
        budget = MAX_LOG_EVENTS
        for stream in self._streams(name):
            kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream,
                                      "startFromHead": True}
            for _ in range(MAX_LOG_PAGES):
                if budget <= 0:
                    return
                page = self.logs_client.get_log_events(**kwargs, limit=min(budget, 10_000))
                batch = page.get("events", [])
                budget -= len(batch)
                yield from (line for _, line in _lines(batch))
                # Pages may be empty mid-stream; the end is the token it was given coming back.
                token = page.get("nextForwardToken")
                if not token or token == kwargs.get("nextToken"):
                    break
                kwargs["nextToken"] = token

    def _series(self, version: JobVersion, name: str, algorithm: Algorithm) -> dict:
        metrics = compile_metrics([(m.name, m.regex) for m in algorithm.metrics])
        values: dict[str, list[float]] = {m: [] for m, _ in metrics}
        try:
            for line in self._all_lines(name):
                for metric, value in match_metrics(line, metrics):
                    values[metric].append(value)
        except (ClientError, BotoCoreError) as exc:
            if not (isinstance(exc, ClientError) and is_not_found(exc)):
                _log_read_failure("metric series", version, exc)
        return {m: s for m, vs in values.items() if (s := summarize(vs)) is not None}

    def _log_tail(self, version: JobVersion, name: str) -> list[str]:
        try:
            return [line for _, line in self._tail(name, MAX_LOG_TAIL)]
        except (ClientError, BotoCoreError) as exc:
            if not (isinstance(exc, ClientError) and is_not_found(exc)):
                _log_read_failure("log tail", version, exc)
            return []

    def _evaluation(self, version: JobVersion, name: str) -> dict | None:
        bucket, prefix = split_s3_uri(self.setup.output_path(version))
        key = f"{prefix}{name}/output/output.tar.gz"
        try:
            found = self.s3.get_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            if not (isinstance(exc, ClientError) and is_not_found(exc)):
                _log_read_failure("evaluation", version, exc)
            return None
        if int(found.get("ContentLength") or 0) > MAX_OUTPUT_BYTES:
            log.warning("%s: output.tar.gz is over %d bytes; evaluation skipped",
                        version.label, MAX_OUTPUT_BYTES)
            found["Body"].close()
            return None
        return evaluation_from_tarball(found["Body"].read(MAX_OUTPUT_BYTES + 1))


def evaluation_from_tarball(data: bytes) -> dict | None:
    """``evaluation.json`` (the shallowest one) from SageMaker's ``output.tar.gz``, which
    holds what the script wrote to ``SM_OUTPUT_DATA_DIR``. None when absent or unreadable."""
    if len(data) > MAX_OUTPUT_BYTES:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and PurePosixPath(m.name).name == "evaluation.json"
                       and m.size <= MAX_EVALUATION_BYTES]
            if not members:
                return None
            member = min(members, key=lambda m: len(PurePosixPath(m.name).parts))
            handle = tar.extractfile(member)
            parsed = json.loads(handle.read()) if handle else None
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        log.warning("unreadable output.tar.gz: %s", exc)
        return None
    return parsed if isinstance(parsed, dict) else None


def _lines(events: Sequence[dict[str, Any]]) -> Iterator[tuple[int, str]]:
    for event in events:
        for line in str(event.get("message", "")).splitlines() or [""]:
            yield int(event.get("timestamp") or 0), line.rstrip("\r")


def _event_time(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)


def _compile(regex: str | None) -> re.Pattern[str] | None:
    return re.compile(regex) if regex else None


def _log_read_failure(what: str, version: JobVersion, exc: Exception) -> None:
    reason = translate(exc)
    log.warning("could not read the %s of %s: %s", what, version.label, reason.message)

