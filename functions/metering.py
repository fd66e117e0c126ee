"""trainbot's business metrics, counted at the ports rather than in the use cases (which
stay free of Powertools): launches where ``Compute.launch`` succeeds, outcomes and approval
latency at the Chat calls the services make exactly once per real transition (the
compare-and-set winner notifies, duplicates don't), so no event is counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from aws_lambda_powertools.metrics import MetricUnit

from bot.domain import (
    Algorithm,
    Approval,
    Decision,
    JobVersion,
    ModelVersion,
    Progress,
    ResourcePool,
    Status,
    TrainingJobDetail,
)
from bot.domain.cost import Budget, CostReport
from bot.domain.sweep import Sweep, Trial
from bot.ports import Chat, Compute, EventReport, Launch, Links, Results
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

    def __init__(self, inner: Compute) -> None:
        self._inner = inner
        self.name = inner.name

    def launch(self, version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> Launch:
        launched = self._inner.launch(version, algorithm, pool)
        emit("JobsLaunched", pool=pool.id)
        return launched

    def stop(self, version: JobVersion) -> None:
        self._inner.stop(version)

    def describe(self, version: JobVersion) -> TrainingJobDetail | None:
        return self._inner.describe(version)

    def progress(self, version: JobVersion, algorithm: Algorithm) -> Progress | None:
        return self._inner.progress(version, algorithm)

    def results(self, version: JobVersion, algorithm: Algorithm) -> Results:
        return self._inner.results(version, algorithm)

    def logs(self, version: JobVersion, *, lines: int = 50) -> list[str]:
        return self._inner.logs(version, lines=lines)

    def links(self, version: JobVersion) -> Links:
        return self._inner.links(version)

    def check_runnable(self, algorithm: Algorithm) -> None:
        self._inner.check_runnable(algorithm)

    def training_image(self, algorithm: Algorithm, pool: ResourcePool) -> str | None:
        return self._inner.training_image(algorithm, pool)

    def start_reporting(self, report: EventReport, active: Sequence[JobVersion]) -> None:
        self._inner.start_reporting(report, active)

    def close(self) -> None:
        self._inner.close()


class MeteredChat:
    """A Chat that counts outcomes by pool and approval latency; everything is delegated.

    The metric is written before the chat call: the transition happened even if Slack is
    down (the services swallow chat failures for the same reason).
    """

    def __init__(self, inner: Chat) -> None:
        self._inner = inner

    def version_created(self, version: JobVersion) -> tuple[str, str] | None:
        return self._inner.version_created(version)

    def version_changed(self, version: JobVersion, previous: Status) -> None:
        outcome = _OUTCOMES.get(version.status)
        if outcome and version.status is not previous:
            emit(outcome, pool=version.spec.pool)
        self._inner.version_changed(version, previous)

    def announce(self, version: JobVersion) -> None:
        self._inner.announce(version)

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

    def thread_link(self, version: JobVersion) -> str | None:
        return self._inner.thread_link(version)

    def model_registered(self, model: ModelVersion) -> tuple[str, str] | None:
        return self._inner.model_registered(model)

    def model_decided(self, model: ModelVersion) -> None:
        self._inner.model_decided(model)

    def budget_alert(self, budget: Budget, month: str, used_usd: float, threshold: int) -> None:
        self._inner.budget_alert(budget, month, used_usd, threshold)

    def cost_digest(self, channel: str, report: CostReport) -> None:
        self._inner.cost_digest(channel, report)

    def near_ceiling(self, version: JobVersion) -> None:
        self._inner.near_ceiling(version)

    def cost_chart(self, channel: str, report: CostReport) -> None:
        self._inner.cost_chart(channel, report)

    def sweep_created(self, sweep: Sweep, trials: Sequence[Trial]) -> tuple[str, str] | None:
        return self._inner.sweep_created(sweep, trials)

    def sweep_changed(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        self._inner.sweep_changed(sweep, trials)

    def sweep_new_best(self, sweep: Sweep, trial: Trial) -> None:
        self._inner.sweep_new_best(sweep, trial)

    def sweep_ended(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        self._inner.sweep_ended(sweep, trials)


def instrument(deps: Deps) -> Deps:
    """``deps`` with its compute and chat metered (a new Deps; ``deps`` is left as it is)."""
    return replace(deps, compute=MeteredCompute(deps.compute), chat=MeteredChat(deps.chat),
                   given_algorithms=deps.algorithms)
