"""The :class:`bot.ports.Compute` port over SageMaker training jobs (boto3, never the SDK).

This adapter only launches, stops and reads: DescribeTrainingJob, CloudWatch Logs and the
job's S3 output. State changes come back through EventBridge (``functions/job_events``), so
:meth:`SageMakerCompute.start_reporting` has nothing to do.

Reads (progress, results) are best effort: what is missing comes back empty, and a failing
read is logged, never raised, because state-change handling must not depend on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.adapters.algorithm_catalog import (
    PublishedAlgorithm,
    PublishedCatalog,
    catalog_uri,
    split_s3_uri,
)
from bot.adapters.sagemaker.errors import error_code, is_not_found, stop_quietly, translate
from bot.adapters.sagemaker.logs import (
    LOG_GROUP,
    PROGRESS_WINDOW,
    MetricSeries,
    TrainingJobLogs,
    progress_in,
)
from bot.adapters.sagemaker.output import evaluation_from_object
from bot.adapters.sagemaker.request import (
    SageMakerSetup,
    own_image,
    plan_launch,
    registered_script,
)
from bot.domain import (
    Algorithm,
    BackendRejected,
    ConfigError,
    JobVersion,
    MetricSummary,
    Progress,
    ResourcePool,
    TrainingJobDetail,
)
from bot.domain.job import MAX_LOG_TAIL
from bot.ports import EventReport, Launch, Links, Results

if TYPE_CHECKING:
    from bot.catalog import Catalog
    from bot.config import Settings

__all__ = ["CatalogSource", "SageMakerCompute"]

log = logging.getLogger("trainbot.compute.sagemaker")

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
        self._logs = TrainingJobLogs(logs_client)
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

    def check_runnable(self, algorithm: Algorithm) -> None:
        """Presets, script and image algorithms all run here; ``ConfigError`` for a script
        algorithm registered without SageMaker's source upload and images (say: register it
        again), or an image algorithm without an image."""
        try:
            if algorithm.source is not None and algorithm.source.kind == "script":
                registered_script(algorithm)
            elif algorithm.source is not None:
                own_image(algorithm)
        except BackendRejected as exc:
            raise ConfigError(exc.message, hint=exc.hint) from exc

    def training_image(self, algorithm: Algorithm, pool: ResourcePool) -> str | None:
        """The image versions of ``algorithm`` run in on ``pool`` (CPU or GPU): a preset's
        published one, a team's script algorithm's registered framework image, an image
        algorithm's own. ``ConfigError`` when there is none (an unpublished preset — publishing
        is an admin's setup step —, an algorithm registered for local training)."""
        try:
            published = self._script_source(algorithm)
            if published is None:
                return own_image(algorithm)
        except BackendRejected as exc:
            raise ConfigError(exc.message, hint=exc.hint) from exc
        return published.image_for(gpu=pool.is_gpu)

    def _script_source(self, algorithm: Algorithm) -> PublishedAlgorithm | None:
        """Script mode's source and images: a preset's published entry, a team's script
        algorithm's registration; None for a container image algorithm (its image runs)."""
        if algorithm.source is None:
            return self.published_algorithm(algorithm.id)
        if algorithm.source.kind == "image":
            return None
        return registered_script(algorithm)

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
        published = self._script_source(algorithm)
        # A preset's published code must be the version the spec names; a registered
        # algorithm's is the one its digest pinned.
        if algorithm.source is None and published is not None and (
                published.version != version.spec.algorithm_version):
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
        name = version.backend_job_name
        if not name:
            return
        stop_quietly(lambda: self.sagemaker.stop_training_job(TrainingJobName=name), name)

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
            return [line for _, line in self._logs.tail(version.backend_job_name, lines)]
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
            events = self._logs.tail(version.backend_job_name, PROGRESS_WINDOW)
        except (ClientError, BotoCoreError) as exc:
            _log_read_failure("progress", version, exc)
            return None
        return progress_in(events, algorithm)

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

    def start_reporting(self, report: EventReport, active: Sequence[JobVersion]) -> None:
        """Nothing to start: SageMaker's state changes reach ``functions/job_events`` through
        EventBridge, whichever process launched the job."""

    def close(self) -> None:
        """Nothing held: the clients are botocore's, and jobs run on in SageMaker."""

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

    def _series(
        self, version: JobVersion, name: str, algorithm: Algorithm
    ) -> dict[str, MetricSummary]:
        series = MetricSeries(algorithm)
        try:
            series.add(self._logs.lines(name))
        except (ClientError, BotoCoreError) as exc:
            if not (isinstance(exc, ClientError) and is_not_found(exc)):
                _log_read_failure("metric series", version, exc)
        return series.summaries()

    def _log_tail(self, version: JobVersion, name: str) -> list[str]:
        try:
            return [line for _, line in self._logs.tail(name, MAX_LOG_TAIL)]
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
        return evaluation_from_object(found, label=version.label)


def _log_read_failure(what: str, version: JobVersion, exc: Exception) -> None:
    reason = translate(exc)
    log.warning("could not read the %s of %s: %s", what, version.label, reason.message)
