"""What every service function takes: the ports and the policy, wired once by bootstrap."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import InitVar, dataclass, field
from datetime import timedelta

from bot.catalog import Catalog
from bot.domain import Approval, JobVersion, ModelVersion, Status
from bot.domain.cost import Budget, CostReport
from bot.domain.sweep import Sweep, Trial
from bot.ports import (
    Chat,
    Clock,
    Compute,
    DataGuard,
    FileInbox,
    JobStore,
    ModelRegistry,
    Tuner,
)
from bot.services.algorithms import Algorithms
from bot.services.authz import Policy

__all__ = ["CardsInFlight", "Deps", "NullChat", "StoreOnlyModels"]

log = logging.getLogger("trainbot")


class NullChat:
    """A Chat that tells nobody (the CLI prints instead)."""

    def version_created(self, version: JobVersion) -> tuple[str, str] | None:
        return None

    def version_changed(self, version: JobVersion, previous: Status) -> None:
        return None

    def announce(self, version: JobVersion) -> None:
        return None

    def progress(self, version: JobVersion) -> None:
        return None

    def approval_requested(self, approval: Approval, version: JobVersion
                           ) -> tuple[str, str] | None:
        return None

    def approval_decided(self, approval: Approval, version: JobVersion) -> None:
        return None

    def thread_link(self, version: JobVersion) -> str | None:
        return None

    def model_registered(self, model: ModelVersion) -> tuple[str, str] | None:
        return None

    def model_decided(self, model: ModelVersion) -> None:
        return None

    def sweep_created(self, sweep: Sweep, trials: Sequence[Trial]) -> tuple[str, str] | None:
        return None

    def budget_alert(self, budget: Budget, month: str, used_usd: float, threshold: int) -> None:
        return None

    def cost_digest(self, channel: str, report: CostReport) -> None:
        return None

    def near_ceiling(self, version: JobVersion) -> None:
        return None

    def cost_chart(self, channel: str, report: CostReport) -> None:
        return None

    def sweep_changed(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        return None

    def sweep_new_best(self, sweep: Sweep, trial: Trial) -> None:
        return None

    def sweep_ended(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        return None


class StoreOnlyModels:
    """The embedded default's model registry: the store is all there is."""

    def register(self, model: ModelVersion) -> str | None:
        return None

    def decide(self, model: ModelVersion) -> None:
        return None


class CardsInFlight:
    """Versions whose card this process is posting right now.

    A version is launched before its card is posted, so a run that ends at once (a local
    job of a second) can end while the card is on its way; its announcement then waits for
    the card, to go into the card's thread, instead of landing in the channel on its own.
    Process-local on purpose: only a launch in this process can race its own card (on AWS,
    SageMaker's events come minutes later, through another invocation).
    """

    def __init__(self) -> None:
        self._keys: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    @contextmanager
    def posting(self, job: str, number: int) -> Iterator[None]:
        with self._lock:
            self._keys.add((job, number))
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard((job, number))

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys


@dataclass
class Deps:
    store: JobStore
    compute: Compute
    catalog: Catalog
    clock: Clock
    policy: Policy
    chat: Chat = field(default_factory=NullChat)
    job_prefix: str = "trainbot"
    scope: str = "local"
    # A running version silent for longer than this is reported as stuck.
    stuck_after: timedelta = timedelta(minutes=30)
    cards_in_flight: CardsInFlight = field(default_factory=CardsInFlight)
    # Local compute: the folders data named from Slack may come from (None on SageMaker).
    local_data: DataGuard | None = None
    # Files shared in the chat, fetched and stored for training (None: not offered).
    files: FileInbox | None = None
    # Where registered models also go (AWS: SageMaker Model Registry).
    models: ModelRegistry = field(default_factory=StoreOnlyModels)
    # What searches a sweep's space (None: sweeps aren't offered by this bot).
    tuner: Tuner | None = None
    # Presets and registered algorithms (built from catalog and store unless given: the
    # composition root builds one and hands it to the chat too).
    given_algorithms: InitVar[Algorithms | None] = None
    algorithms: Algorithms = field(init=False)

    def __post_init__(self, given_algorithms: Algorithms | None) -> None:
        self.algorithms = given_algorithms or Algorithms(self.catalog, self.store, self.scope)
