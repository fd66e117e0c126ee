"""Powertools Logger, Tracer and Metrics for the Lambda functions, and ``emit`` for one metric.

One of each per container, made at import as Powertools documents: they hold no clients.
The logger is the ``trainbot`` logger the bot already writes to, so every ``bot`` log line
comes out as structured JSON carrying the correlation keys a handler appends (training
job, job, version, Slack team/channel/user).

Business metrics are counted at the ports (``functions.metering``). This module imports
Powertools and nothing of the bot: the Slack function's ack path loads it.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

__all__ = ["emit", "logger", "make_tracer", "metrics"]

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "trainbot")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Trainbot")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def make_tracer() -> Any:
    """The X-Ray tracer, for the event and schedule functions only.

    Creating a Powertools ``Tracer`` imports the X-Ray SDK (~0.25 s), so the Slack function —
    which must ack within Slack's 3 s on a cold start — does without it. Off outside Lambda
    (no AWS_LAMBDA_FUNCTION_NAME), so tests and local runs trace nothing.
    """
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def emit(name: str, value: float = 1, *, unit: MetricUnit = MetricUnit.Count,
         **dimensions: str) -> None:
    """One metric with its own dimensions (e.g. ``pool``), written at once as EMF.

    ``single_metric`` rather than ``metrics.add_metric``: one invocation may touch several
    pools, and a Metrics batch shares one set of dimensions.
    """
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE,
                       default_dimensions={"service": SERVICE}) as metric:
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim or "none")
