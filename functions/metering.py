"""trainbot's business metrics, counted at the ports rather than in the use cases (which
stay free of Powertools): launches where ``Compute.launch`` succeeds, outcomes and approval
latency at the Chat calls the services make exactly once per real transition (the
compare-and-set winner notifies, duplicates don't), so no event is counted twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from bot.domain import Algorithm, Approval, Decision, JobVersion, ResourcePool, Status
from bot.ports import Launch
from bot.services.context import Deps
from functions.observability import emit

__all__ = ["MeteredChat", "MeteredCompute", "instrument"]

_OUTCOMES = {
    Status.COMPLETED: "JobsCompleted",
    Status.FAILED: "JobsFailed",
    Status.STOPPED: "JobsStopped",
}


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
