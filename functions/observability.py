"""Powertools Logger, Tracer and Metrics for the Lambda functions, and trainbot's metrics.

One of each per container, made at import as Powertools documents: they hold no clients.
The logger is the ``trainbot`` logger the bot already writes to, so every ``bot`` log line
comes out as structured JSON carrying the correlation keys a handler appends (training
job, job, version, Slack team/channel/user).

Business metrics are counted at the ports rather than in the use cases, which stay free of
Powertools: launches where ``Compute.launch`` succeeds, outcomes and approval latency at the
Chat calls the services make exactly once per real transition (the compare-and-set winner
notifies, duplicates don't), so no event is counted twice.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from bot.domain import Algorithm, Approval, Decision, JobVersion, ResourcePool, Status
from bot.ports import Launch
from bot.services.context import Deps

__all__ = ["MeteredChat", "MeteredCompute", "emit", "instrument", "logger", "make_tracer",
           "metrics"]

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

_OUTCOMES = {
    Status.COMPLETED: "JobsCompleted",
    Status.FAILED: "JobsFailed",
    Status.STOPPED: "JobsStopped",
}


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


class MeteredCompute:
    """A Compute that counts successful launches by pool; everything else is delegated."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def launch(self, version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> Launch:
        launched = self._inner.launch(version, algorithm, pool)
        emit("JobsLaunched", pool=pool.id)
        return launched


class MeteredChat:
    """A Chat that counts outcomes by pool and approval latency; everything is delegated.

    The metric is written before the chat call: the transition happened even if Slack is
    down (the services swallow chat failures for the same reason).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def version_created(self, version: JobVersion) -> tuple[str, str] | None:
        return self._inner.version_created(version)

    def version_changed(self, version: JobVersion, previous: Status) -> None:
        outcome = _OUTCOMES.get(version.status)
        if outcome and version.status is not previous:
            emit(outcome, pool=version.spec.pool)
        self._inner.version_changed(version, previous)

    def progress(self, version: JobVersion) -> None:
        self._inner.progress(version)

    def approval_requested(self, approval: Approval, version: JobVersion
                           ) -> tuple[str, str] | None:
        return self._inner.approval_requested(approval, version)

    def approval_decided(self, approval: Approval, version: JobVersion) -> None:
        if approval.decision is Decision.EXPIRED:
            emit("ApprovalsExpired", pool=approval.pool)
        elif approval.decision is not None and approval.decided_at is not None:
            waited = (approval.decided_at - approval.requested_at).total_seconds()
            emit("ApprovalLatency", max(waited, 0.0), unit=MetricUnit.Seconds,
                 pool=approval.pool, decision=approval.decision.value)
        self._inner.approval_decided(approval, version)


def instrument(deps: Deps) -> Deps:
    """Wrap ``deps``' compute and chat in place (listeners built on ``deps`` see the change)."""
    if not isinstance(deps.compute, MeteredCompute):
        deps.compute = MeteredCompute(deps.compute)
    if not isinstance(deps.chat, MeteredChat):
        deps.chat = MeteredChat(deps.chat)
    return deps
