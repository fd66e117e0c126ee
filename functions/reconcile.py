"""The schedule (every few minutes) → the reconciler: repair what events missed.

Describes every active version's training job, applies any state the events didn't bring,
refreshes live progress on the cards, flags stuck versions and expires overdue approvals
(:mod:`bot.services.reconcile`). Stuck versions are logged as warnings and counted, so an
alarm on ``VersionsStuck`` pages whoever is on call.

First it drains the Slack function's failure queue (:mod:`functions.lost_commands`): each
command whose work never ran is reported to its user, who can run it again.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import runtime
from functions.observability import logger, make_tracer, metrics

__all__ = ["handler"]


tracer = make_tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One reconciliation pass; returns its summary (the scheduler ignores it)."""
    from bot.services.reconcile import reconcile

    worker = runtime.worker(with_charts=runtime.charts_available())
    lost = _tell_lost_commands(worker.client, context)
    summary = reconcile(worker.deps)
    for name, items in (("VersionsRepaired", summary.repaired),
                        ("VersionsStuck", summary.stuck),
                        ("LaunchesLost", summary.lost),
                        ("ReconcileErrors", summary.errors)):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=len(items))
    if summary.stuck:
        logger.warning("stuck versions", extra={"stuck": summary.stuck})
    logger.info("reconciled", extra=summary.as_dict())
    return summary.as_dict() if lost is None else {**summary.as_dict(), "lost_commands": lost}


def _tell_lost_commands(client: Any, context: LambdaContext) -> dict[str, Any] | None:
    """Drain the failure queue (when this deployment has one); never fails the reconcile."""
    from bot.aws import aws_client
    from functions.lost_commands import drain, queue_url

    url = queue_url()
    if url is None:
        return None
    try:
        drained = drain(aws_client("sqs"), url, client, logger=logger,
                        time_left=lambda: context.get_remaining_time_in_millis() / 1000.0)
    except Exception:
        logger.exception("reading the lost-commands queue failed")
        metrics.add_metric(name="LostCommandsUnread", unit=MetricUnit.Count, value=1)
        return {"error": "the lost-commands queue could not be read"}
    metrics.add_metric(name="LostCommandsReported", unit=MetricUnit.Count,
                       value=len(drained.told))
    metrics.add_metric(name="LostCommandsDropped", unit=MetricUnit.Count, value=drained.dropped)
    if drained.told or drained.dropped or drained.kept:
        logger.warning("lost commands", extra=drained.as_dict())
    return drained.as_dict()


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    runtime.preload(*runtime.BOT_MODULES)
