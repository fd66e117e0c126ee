"""EventBridge "SageMaker Training Job State Change" → the state-change service → Slack.

The rule (``serverless.yml``) forwards only ``aws.sagemaker`` training-job changes whose job
name starts with trainbot's prefix. The event is parsed at the edge into
:class:`SageMakerTrainingJobEvent` (a Powertools parser model); the service moves the
version, updates its card, replies in its thread and, when it ends, announces it.
https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html

Delivery is at least once, and SageMaker may send one change several times. Each change is
processed once through Powertools idempotency on its own DynamoDB table (TTL'd records),
keyed by what identifies a change — job name, status, secondary status, last-modified time —
rather than the event id, so a change re-sent under a new id is caught too. Behind that the
service itself ignores duplicates and late events (compare-and-set on the version), which
also covers local runs without an idempotency table.
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
from bot.domain.events import DETAIL_TYPE, SOURCE
from functions import runtime
from functions.observability import emit, logger, make_tracer, metrics

__all__ = ["IDEMPOTENCY_KEY_PATH", "SageMakerTrainingJobEvent", "handler"]

IDEMPOTENCY_KEY_PATH = (
    "[detail.TrainingJobName, detail.TrainingJobStatus, detail.SecondaryStatus,"
    " detail.LastModifiedTime]"
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


tracer = make_tracer()


@dataclass(frozen=True)
class _Processor:
    apply: Callable[..., dict[str, Any]]
    register: Callable[[LambdaContext], None]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE,
                              clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Apply one state change; the result says what happened (and is what a duplicate gets)."""
    try:
        change = parse(event=event, model=SageMakerTrainingJobEvent)
    except ValidationError:
        # Permanent: a retry would fail the same way, so drop it loudly instead.
        logger.exception("not a SageMaker training job state change; dropped")
        emit("EventsRejected")
        return {"outcome": "rejected"}
    logger.append_keys(training_job=change.detail.name)
    processor = _processor()
    processor.register(context)
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


@runtime.per_container
def _processor() -> _Processor:
    """``_apply`` behind Powertools idempotency when ``TRAINBOT_IDEMPOTENCY_TABLE`` is set."""
    table = runtime.settings().idempotency_table
    if not table:
        return _Processor(apply=_apply, register=lambda _context: None)
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from bot.adapters.dynamodb_schema import IDEMPOTENCY_KEY, IDEMPOTENCY_TTL_ATTRIBUTE
    from bot.aws import aws_client

    config = IdempotencyConfig(event_key_jmespath=IDEMPOTENCY_KEY_PATH,
                               raise_on_no_idempotency_key=True,
                               expires_after_seconds=IDEMPOTENCY_TTL_S)
    store = DynamoDBPersistenceLayer(table_name=table, key_attr=IDEMPOTENCY_KEY,
                                     expiry_attr=IDEMPOTENCY_TTL_ATTRIBUTE,
                                     boto3_client=aws_client("dynamodb"))
    apply = idempotent_function(data_keyword_argument="event", persistence_store=store,
                                config=config)(_apply)
    # Lets Powertools expire an in-progress record when the invocation times out.
    return _Processor(apply=apply, register=config.register_lambda_context)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    runtime.preload(*runtime.BOT_MODULES)
