"""The schedule (every few minutes) → the reconciler: repair what events missed.

Describes every active version's training job, applies any state the events didn't bring,
refreshes live progress on the cards, flags stuck versions and expires overdue approvals
(:mod:`bot.services.reconcile`). Stuck versions are logged as warnings and counted, so an
alarm on ``VersionsStuck`` pages whoever is on call.
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
    from bot.bootstrap import stuck_after
    from bot.services.reconcile import reconcile

    deps = runtime.slack_bot(with_charts=runtime.charts_available()).deps
    summary = reconcile(deps, stuck_after=stuck_after(runtime.settings()))
    for name, items in (("VersionsRepaired", summary.repaired),
                        ("VersionsStuck", summary.stuck),
                        ("LaunchesLost", summary.lost),
                        ("ReconcileErrors", summary.errors)):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=len(items))
    if summary.stuck:
        logger.warning("stuck versions", extra={"stuck": summary.stuck})
    logger.info("reconciled", extra=summary.as_dict())
    return summary.as_dict()


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    runtime.preload(*runtime.BOT_MODULES)
