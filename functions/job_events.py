"""EventBridge "SageMaker Training Job State Change" and "SageMaker HyperParameter Tuning
Job State Change" → the state-change services → Slack.

Two rules (``serverless.yml``) forward only ``aws.sagemaker`` training-job and tuning-job
changes whose job name starts with trainbot's prefix (a sweep's trials on SageMaker are
training jobs named after their tuning job, so they come through the first rule). The event
is parsed at the edge into :class:`SageMakerTrainingJobEvent` or
:class:`SageMakerTuningJobEvent` (Powertools parser models), chosen by its ``detail-type``.
A training job's change moves its version (the state-change service), updates its card,
replies in its thread and, when it ends, announces it; a tuning job's moves its sweep
(:func:`bot.services.tuning_events.record_tuning_change`).
https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html

Delivery is at least once, and SageMaker may send one change several times. Each change is
processed once through Powertools idempotency on its own DynamoDB table (TTL'd records),
keyed by what identifies a change — job name, status, secondary status, last-modified time
(a tuning job: name, status, last-modified time, best trial and the trial counters) —
rather than the event id, so a change re-sent under a new id is caught too. Behind that the
services themselves ignore duplicates and late events (compare-and-set on the version and
the sweep), which also covers local runs without an idempotency table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, ValidationError

from bot.domain import TrainingJobDetail, TrainingJobStateChange
from bot.domain.events import (
    DETAIL_TYPE,
    SOURCE,
    TUNING_DETAIL_TYPE,
    TuningJobDetail,
    TuningJobStateChange,
)
from functions import runtime
from functions.observability import emit, logger, make_tracer, metrics

__all__ = [
    "IDEMPOTENCY_KEY_PATH",
    "TUNING_IDEMPOTENCY_KEY_PATH",
    "SageMakerTrainingJobEvent",
    "SageMakerTuningJobEvent",
    "handler",
]

IDEMPOTENCY_KEY_PATH = (
    "[detail.TrainingJobName, detail.TrainingJobStatus, detail.SecondaryStatus,"
    " detail.LastModifiedTime]"
)
# A tuning job's events also come as its trials progress: the best trial and the counters
# tell those apart when the last-modified time doesn't.
TUNING_IDEMPOTENCY_KEY_PATH = (
    "[detail.HyperParameterTuningJobName, detail.HyperParameterTuningJobStatus,"
    " detail.LastModifiedTime, detail.BestTrainingJob.TrainingJobName,"
    " detail.TrainingJobStatusCounters, detail.ObjectiveStatusCounters]"
)
# EventBridge retries a failed delivery for up to 24 hours; duplicates are caught that long.
IDEMPOTENCY_TTL_S = 24 * 3600


class SageMakerTrainingJobEvent(EventBridgeModel):
    """The EventBridge envelope, narrowed to SageMaker training-job state changes."""

    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Training Job State Change"] = Field(alias="detail-type")
    detail: TrainingJobDetail

    def to_domain(self) -> TrainingJobStateChange:
        return TrainingJobStateChange(id=self.id, source=SOURCE, detail_type=DETAIL_TYPE,
                                      time=self.time, resources=self.resources,
                                      detail=self.detail)


class SageMakerTuningJobEvent(EventBridgeModel):
    """The EventBridge envelope, narrowed to SageMaker hyperparameter tuning job changes."""

    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker HyperParameter Tuning Job State Change"] = Field(
        alias="detail-type")
    detail: TuningJobDetail

    def to_domain(self) -> TuningJobStateChange:
        return TuningJobStateChange(id=self.id, source=SOURCE, detail_type=TUNING_DETAIL_TYPE,
                                    time=self.time, resources=self.resources,
                                    detail=self.detail)


tracer = make_tracer()


@dataclass(frozen=True)
class _Processor:
    apply: Callable[..., dict[str, Any]]
    apply_tuning: Callable[..., dict[str, Any]]
    register: Callable[[LambdaContext], None]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Apply one state change; the result says what happened (and is what a duplicate gets)."""
    tuning = isinstance(event, dict) and event.get("detail-type") == TUNING_DETAIL_TYPE
    model: type[SageMakerTrainingJobEvent | SageMakerTuningJobEvent] = (
        SageMakerTuningJobEvent if tuning else SageMakerTrainingJobEvent)
    try:
        change = parse(event=event, model=model)
    except ValidationError:
        # Permanent: a retry would fail the same way, so drop it loudly instead.
        logger.exception("not a SageMaker training or tuning job state change; dropped")
        emit("EventsRejected")
        return {"outcome": "rejected"}
    processor = _processor()
    processor.register(context)
    if isinstance(change, SageMakerTuningJobEvent):
        logger.append_keys(tuning_job=change.detail.name)
        return processor.apply_tuning(event=event, change=change)
    logger.append_keys(training_job=change.detail.name)
    return processor.apply(event=event, change=change)


def _apply(*, event: dict[str, Any], change: SageMakerTrainingJobEvent) -> dict[str, Any]:
    """``event`` is the idempotency payload (hashed by key path); ``change`` is what is used."""
    from bot.services.state_changes import record_state_change

    deps = runtime.worker(with_charts=runtime.charts_available()).deps
    version = record_state_change(deps, change.to_domain())
    if version is None:
        return {"outcome": "unknown job", "training_job": change.detail.name}
    logger.append_keys(job=version.job, version=version.number)
    logger.info("state change applied", extra={"status": version.status.value,
                                               "sagemaker_status": change.detail.status})
    return {"outcome": "applied", "job": version.job, "version": version.number,
            "status": version.status.value, "revision": version.revision}


def _apply_tuning(*, event: dict[str, Any], change: SageMakerTuningJobEvent) -> dict[str, Any]:
    """As :func:`_apply`, for a tuning job's change: its sweep follows."""
    from bot.services.tuning_events import record_tuning_change

    deps = runtime.worker(with_charts=runtime.charts_available()).deps
    sweep = record_tuning_change(deps, change.to_domain())
    if sweep is None:
        return {"outcome": "unknown tuning job", "tuning_job": change.detail.name}
    logger.append_keys(sweep=sweep.name)
    logger.info("tuning change applied", extra={"status": sweep.status.value,
                                                "sagemaker_status": change.detail.status})
    return {"outcome": "applied", "sweep": sweep.name, "status": sweep.status.value,
            "revision": sweep.revision}


@runtime.per_container
def _processor() -> _Processor:
    """``_apply`` and ``_apply_tuning`` behind Powertools idempotency when
    ``TRAINBOT_IDEMPOTENCY_TABLE`` is set: one configuration (key path) and persistence layer
    each, since a persistence layer keeps the first configuration it is given."""
    table = runtime.settings().idempotency_table
    if not table:
        return _Processor(apply=_apply, apply_tuning=_apply_tuning,
                          register=lambda _context: None)
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from bot.adapters.dynamodb_schema import IDEMPOTENCY_KEY, IDEMPOTENCY_TTL_ATTRIBUTE
    from bot.aws import aws_client

    client = aws_client("dynamodb")

    def idempotent(fn: Callable[..., dict[str, Any]], key_path: str
                   ) -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
        config = IdempotencyConfig(event_key_jmespath=key_path,
                                   raise_on_no_idempotency_key=True,
                                   expires_after_seconds=IDEMPOTENCY_TTL_S)
        store = DynamoDBPersistenceLayer(table_name=table, key_attr=IDEMPOTENCY_KEY,
                                         expiry_attr=IDEMPOTENCY_TTL_ATTRIBUTE,
                                         boto3_client=client)
        return idempotent_function(data_keyword_argument="event", persistence_store=store,
                                   config=config)(fn), config

    apply, config = idempotent(_apply, IDEMPOTENCY_KEY_PATH)
    apply_tuning, tuning_config = idempotent(_apply_tuning, TUNING_IDEMPOTENCY_KEY_PATH)

    def register(context: LambdaContext) -> None:
        # Lets Powertools expire an in-progress record when the invocation times out.
        config.register_lambda_context(context)
        tuning_config.register_lambda_context(context)

    return _Processor(apply=apply, apply_tuning=apply_tuning, register=register)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    runtime.preload(*runtime.BOT_MODULES)
