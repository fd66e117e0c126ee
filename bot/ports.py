"""The ports: what the services need from the outside world, as Protocols.

Adapters in ``bot/adapters`` implement them; hand-written fakes in the tests implement the
same Protocols and pass the same contract suites.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from bot.domain import (
    Algorithm,
    Approval,
    Artifacts,
    Decision,
    JobVersion,
    MetricSummary,
    ModelStatus,
    ModelVersion,
    Preset,
    Progress,
    ResourcePool,
    Status,
    TrainingJob,
    TrainingJobDetail,
    TrainingJobStateChange,
    TuningJobDetail,
)
from bot.domain.algorithm import HPValue
from bot.domain.cost import Budget, BudgetScope, CostReport, Full, LedgerEntry
from bot.domain.sweep import Sweep, Trial

__all__ = [
    "Chat",
    "Clock",
    "Compute",
    "DataGuard",
    "EventReport",
    "EventSink",
    "FileInbox",
    "JobStore",
    "Launch",
    "Links",
    "ModelRegistry",
    "Results",
    "StoredFile",
    "Tuner",
]


@runtime_checkable
class JobStore(Protocol):
    """Durable storage of jobs, versions, presets and approvals.

    Every write that can race is conditional: version numbers are allocated atomically,
    ``save_version`` is compare-and-set on ``revision``, an approval is decided once.
    No method scans the whole store.
    """

    def add_version(
        self, draft: JobVersion, *, new_job: TrainingJob | None = None
    ) -> tuple[JobVersion, bool]:
        """Store ``draft`` as its job's next version; return ``(stored, created)``.

        The number is ``job.latest_version + 1``, allocated atomically with the job's counter;
        the stored version has that number and ``revision == 1``. With ``new_job`` the job is
        created in the same write and must not exist yet (``Conflict``); without it the job must
        exist (``NotFound``). If ``draft.request_key`` is set and a version was already stored
        under that key, nothing is written and ``(that version, False)`` is returned: this is
        what makes a retried Slack delivery start nothing new.
        """
        ...

    def find_by_request_key(self, request_key: str) -> JobVersion | None:
        """The version stored under ``request_key`` (a retried Slack delivery's), if any."""
        ...

    def get_job(self, name: str) -> TrainingJob: ...

    def list_jobs(self, *, channel: str | None = None, limit: int = 50) -> list[TrainingJob]:
        """Newest first; all channels when ``channel`` is None."""
        ...

    def get_version(self, job: str, number: int) -> JobVersion: ...

    def list_versions(self, job: str) -> list[JobVersion]:
        """Oldest first. ``NotFound`` if the job does not exist."""
        ...

    def save_version(self, version: JobVersion) -> JobVersion:
        """Write the mutable fields if the stored revision equals ``version.revision``.

        Returns the version with ``revision + 1``; raises ``StaleWrite`` otherwise.
        """
        ...

    def claim_launch(self, version: JobVersion, *, slots: int | None = None,
                     caps: Mapping[str, int] | None = None) -> JobVersion | Full:
        """Save ``version``, which names its backend job, as ``save_version`` does, in one
        write with what makes that name findable by ``find_by_backend_name``; when ``slots``
        is given, one of the ``slots`` places of its pool (``pool_slot`` set); for each of
        ``caps`` (cap key → limit: ``user:U1`` → 2), one of that cap's places (the key added
        to ``caps``); and, when ``version.charged_usd`` is set, that amount added to the
        ``committed_usd`` of every ``charge_keys`` × ``charge_periods`` ledger counter.

        Returns the saved version, or :class:`~bot.domain.cost.Full` naming a full cap (the
        pool's is ``pool:<id>``) when a place is missing: nothing is written then.
        ``StaleWrite`` as ``save_version``; ``Conflict`` if another version has the name.
        The places are given back, and the charge settled (committed taken back, the
        version's ``actual_cost_usd`` and ``spot_saving_usd`` added to spent and saving,
        ``versions`` counted, ``charge_settled`` set), by the ``save_version`` that moves the
        version to a terminal state — once, however many times the end is reported.
        """
        ...

    def get_ledger(self, period: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Those keys' counters in ``period`` (an absent key reads as zeros): one read per
        key at most, whatever the number of versions."""
        ...

    def list_ledger(self, period: str, dimension: str | None = None) -> list[LedgerEntry]:
        """Every key of ``period`` (of one dimension: ``pool`` → ``pool:*``), by key; as many
        reads as there are keys in the period, never a scan of versions."""
        ...

    def put_budget(self, budget: Budget) -> Budget:
        """Create or replace the budget of ``(budget.scope, budget.subject)``."""
        ...

    def get_budget(self, scope: BudgetScope, subject: str) -> Budget | None: ...

    def list_budgets(self) -> list[Budget]:
        """Every budget, by scope then subject."""
        ...

    def delete_budget(self, scope: BudgetScope, subject: str) -> None:
        """``NotFound`` if there is none."""
        ...

    def claim_notice(self, key: str, *, now: datetime, lease: timedelta) -> bool:
        """Claim the right to tell something once (a budget alert, a weekly digest): True
        when ``key`` was never told and nobody holds a live claim on it (the claim lasts
        ``lease``: a claimer that crashed is succeeded); False otherwise. Atomic."""
        ...

    def get_record(self, key: str) -> tuple[dict | None, int]:
        """A small document kept by compare-and-set (a period's top jobs): its value (None
        when absent) and its revision (0 when absent). One read."""
        ...

    def put_record(self, key: str, value: dict, *, revision: int) -> bool:
        """Write ``value`` (JSON-able, small) if the stored revision still is ``revision``
        (0: absent) — then it becomes ``revision + 1``; False when someone wrote first."""
        ...

    def settle_notice(self, key: str, *, told: bool) -> None:
        """After a claim: ``told`` — it was told, never again; else the claim is given back
        for the next try."""
        ...

    def find_by_backend_name(self, backend_job_name: str) -> JobVersion | None:
        """Strongly consistent: a name claimed by ``claim_launch`` is found at once."""
        ...

    def list_active(self) -> list[JobVersion]:
        """Versions not in a terminal state (through an index, not a scan)."""
        ...

    def list_ended_since(self, since: datetime) -> list[JobVersion]:
        """Versions whose ``ended_at`` is at or after ``since`` (through an index)."""
        ...

    def list_undelivered(self) -> list[JobVersion]:
        """Ended versions whose ``outbox`` is not empty, oldest first (through an index):
        what the reconcile must still deliver to the chat."""
        ...

    def create_preset(self, preset: Preset) -> Preset:
        """``Conflict`` if a preset of that name exists in the scope."""
        ...

    def get_preset(self, scope: str, name: str) -> Preset: ...

    def list_presets(self, scope: str) -> list[Preset]:
        """Sorted by name."""
        ...

    def delete_preset(self, scope: str, name: str) -> None: ...

    def register_algorithm(self, scope: str, algorithm: Algorithm) -> tuple[Algorithm, bool]:
        """Record a registered algorithm (``algorithm.source`` set) and make it the id's
        current version, shown again if it was hidden. Content-addressed and immutable: the
        same ``(id, source.digest)`` twice stores nothing new and returns the stored one.
        Returns ``(stored, created)``."""
        ...

    def get_registered_algorithm(self, scope: str, algo_id: str,
                                 digest: str | None = None) -> Algorithm:
        """That exact version (``digest``), hidden or not; else the id's current version.
        ``NotFound`` if there is none."""
        ...

    def list_registered_algorithms(self, scope: str) -> list[Algorithm]:
        """The current version of every registered id, hidden ones included; by id."""
        ...

    def hide_algorithm(self, scope: str, algo_id: str, *, hidden: bool = True) -> Algorithm:
        """Hide the id from new starts (or show it again); every version stays readable.
        ``NotFound`` if the id was never registered."""
        ...

    def add_model_version(self, model: ModelVersion) -> tuple[ModelVersion, bool]:
        """Register ``model`` as the group's next version (``model.number`` is ignored and
        allocated atomically, 1, 2, …). Idempotent per training version and group: the same
        ``(group, job, version)`` again returns the stored one. Returns ``(stored, created)``."""
        ...

    def get_model_version(self, group: str, number: int) -> ModelVersion:
        """``NotFound`` if the group has no such version."""
        ...

    def list_model_groups(self) -> list[str]:
        """Every group with at least one version, sorted."""
        ...

    def list_model_versions(self, group: str) -> list[ModelVersion]:
        """The group's versions, oldest first (``NotFound`` for an unknown group)."""
        ...

    def models_of(self, job: str, version: int) -> list[ModelVersion]:
        """The model versions registered from one training version (any group)."""
        ...

    def save_model_version(self, model: ModelVersion, *,
                           expect_status: ModelStatus | None = None) -> ModelVersion:
        """Store changed fields of an existing model version (package_arn, the card's
        channel/ts, the decision). With ``expect_status`` the write happens only if the stored
        status still is that one — a decision is taken once: ``Conflict`` otherwise."""
        ...

    def create_sweep(self, sweep: Sweep, *, job: TrainingJob) -> tuple[Sweep, bool]:
        """Create the sweep and its job (``job.name == sweep.name``) in one write; return
        ``(stored, created)`` with ``revision == 1``. ``Conflict`` if a job of that name
        exists. Idempotent per ``sweep.request_key``: a sweep stored under that key is
        returned as it is, ``(that sweep, False)``, and nothing is written."""
        ...

    def get_sweep(self, name: str) -> Sweep:
        """``NotFound`` if there is no sweep of that name (a plain job is not a sweep)."""
        ...

    def save_sweep(self, sweep: Sweep) -> Sweep:
        """Write the sweep's changeable fields if the stored revision equals
        ``sweep.revision`` (``StaleWrite`` otherwise); return it with ``revision + 1``.
        Fields fixed at creation (``SWEEP_FIXED_FIELDS``) are never rewritten. Setting
        ``backend_name`` makes the sweep findable by :meth:`find_sweep_by_backend_name`
        (``Conflict`` if another sweep has that name)."""
        ...

    def list_active_sweeps(self) -> list[Sweep]:
        """Sweeps not in a terminal state or with a non-empty outbox, oldest first (through an
        index, not a scan)."""
        ...

    def find_sweep_by_backend_name(self, backend_name: str) -> Sweep | None:
        """Strongly consistent lookup of the sweep whose backend (tuning job) name this is."""
        ...

    def create_approval(self, approval: Approval) -> Approval: ...

    def get_approval(self, approval_id: str) -> Approval: ...

    def decide_approval(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime, note: str = ""
    ) -> Approval:
        """Record the decision if none was recorded yet; ``Conflict`` otherwise."""
        ...

    def decide_approval_and_version(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime,
        version: JobVersion, note: str = "",
    ) -> tuple[Approval, JobVersion]:
        """Record the decision and save ``version`` (the version it decides, moved on) in one
        write: both or neither. ``Conflict`` if the approval was decided already;
        ``StaleWrite`` if the version changed since it was read (compare-and-set on
        ``revision``, as ``save_version``)."""
        ...

    def set_approval_message(self, approval_id: str, *, channel: str, ts: str) -> Approval: ...


@dataclass(frozen=True)
class Launch:
    backend_job_name: str
    artifacts: Artifacts = field(default_factory=Artifacts)
    compute_note: str | None = None


@dataclass(frozen=True)
class Links:
    console: str | None = None
    tensorboard: str | None = None
    lineage: str | None = None
    logs: str | None = None
    # Why there is no TensorBoard link when there isn't one (e.g. the server couldn't start).
    tensorboard_problem: str | None = None


@dataclass(frozen=True)
class Results:
    evaluation: dict | None = None
    series: dict[str, MetricSummary] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)


EventSink = Callable[[TrainingJobStateChange], None]


class EventReport(Protocol):
    """Where a backend that supervises its own runs reports them (the services behind it)."""

    def state_changed(self, event: TrainingJobStateChange) -> None:
        """A run changed state; the same event SageMaker sends through EventBridge."""
        ...

    def progressed(self, backend_job_name: str) -> None:
        """A run printed new progress or metrics (called at most every few seconds)."""
        ...


@runtime_checkable
class Compute(Protocol):
    """Where versions run: a local subprocess or a SageMaker training job.

    Backends report state changes as :class:`TrainingJobStateChange` events, delivered to
    ``bot.services.state_changes.record_state_change``: locally through the
    :class:`EventReport` given to :meth:`start_reporting`; on AWS through EventBridge.
    """

    name: str

    def launch(self, version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> Launch:
        """Start the version; raise ``BackendError`` (or a subclass) if it could not start."""
        ...

    def stop(self, version: JobVersion) -> None: ...

    def describe(self, version: JobVersion) -> TrainingJobDetail | None:
        """The backend's current view, or None if it doesn't know the job."""
        ...

    def progress(self, version: JobVersion, algorithm: Algorithm) -> Progress | None: ...

    def results(self, version: JobVersion, algorithm: Algorithm) -> Results:
        """Evaluation, metric series and the last log lines of a finished version."""
        ...

    def logs(self, version: JobVersion, *, lines: int = 50) -> list[str]: ...

    def links(self, version: JobVersion) -> Links: ...

    def check_runnable(self, algorithm: Algorithm) -> None:
        """Raise ``InvalidInput`` saying why this backend can't run ``algorithm`` and what to
        do (local: an image algorithm needs SageMaker) — called before anything is created."""
        ...

    def training_image(self, algorithm: Algorithm, pool: ResourcePool) -> str | None:
        """The container image versions of ``algorithm`` run in on ``pool`` (SageMaker: the
        published image of a preset, the registered image(s) of a team's own algorithm;
        ``ConfigError`` when there is none); None for a backend that runs no image (local
        subprocesses)."""
        ...

    def start_reporting(self, report: EventReport, active: Sequence[JobVersion]) -> None:
        """Begin reporting the runs this backend supervises itself to ``report``, taking back
        ``active`` (versions a previous process started). A backend whose events come from
        elsewhere (SageMaker: EventBridge) does nothing."""
        ...

    def close(self) -> None:
        """Stop watching runs from this process (local: its monitor threads). The runs go
        on; a later :meth:`start_reporting` (of a new process) takes them back."""
        ...


class Chat(Protocol):
    """Where people hear about versions (Slack, or nothing for the CLI).

    A method that can't deliver raises :class:`~bot.domain.ChatUndelivered` with the chat's
    error code; callers decide what must be retried (``announce``) and what is best effort.
    """

    def version_created(self, version: JobVersion) -> tuple[str, str] | None:
        """Post the version's card; return ``(channel, ts)`` of the message, or None when the
        version has no channel."""
        ...

    def version_changed(self, version: JobVersion, previous: Status) -> None:
        """Update the card and say the change in its thread (each independently, best
        effort: a failure of one doesn't stop the other, and nothing is raised)."""
        ...

    def announce(self, version: JobVersion) -> None:
        """Tell the channel that the version ended, mentioning its requester (in the card's
        thread and the channel, or the channel alone when there is no card)."""
        ...

    def progress(self, version: JobVersion) -> None: ...

    def approval_requested(
        self, approval: Approval, version: JobVersion
    ) -> tuple[str, str] | None:
        """Post the approval card; return ``(channel, ts)``, or None when there is no channel.
        If the card can't be posted, approvers are told directly (a DM) and
        ``ChatUndelivered`` says why the card isn't there."""
        ...

    def approval_decided(self, approval: Approval, version: JobVersion) -> None: ...

    def model_registered(self, model: ModelVersion) -> tuple[str, str] | None:
        """Post the model version's approval card (Approve/Reject) in the channel of the
        training version's card; return ``(channel, ts)``, or None when there is no channel."""
        ...

    def model_decided(self, model: ModelVersion) -> None:
        """Update the model's card: decided, by whom; no buttons left."""
        ...

    def thread_link(self, version: JobVersion) -> str | None:
        """A link to the version's card thread (where its pictures are), or None when it has
        no card or the chat can't say."""
        ...

    def budget_alert(self, budget: Budget, month: str, used_usd: float, threshold: int) -> None:
        """Tell a budget's owner (its channel; a user's budget: that user, directly) that
        the month's spend reached ``threshold`` % of it (raises ``ChatUndelivered``)."""
        ...

    def cost_digest(self, channel: str, report: CostReport) -> None:
        """Post the week's spend digest in ``channel`` (raises ``ChatUndelivered``)."""
        ...

    def near_ceiling(self, version: JobVersion) -> None:
        """Say in the version's thread that it reached 80 % of its max runtime, with a Stop
        button (raises ``ChatUndelivered`` when Slack didn't take it; nothing without a
        card)."""
        ...

    def cost_chart(self, channel: str, report: CostReport) -> None:
        """Post the report's bar chart in ``channel`` (best effort)."""
        ...

    def sweep_created(self, sweep: Sweep, trials: Sequence[Trial]) -> tuple[str, str] | None:
        """Post the sweep's one card (search, counts, leaderboard, Stop sweep); return
        ``(channel, ts)``, or None when the sweep has no channel."""
        ...

    def sweep_changed(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        """Update the card in place: trials done/running/pruned/failed, the best so far with
        its parameters and buttons, the top five (best effort, coalesced, never raises)."""
        ...

    def sweep_new_best(self, sweep: Sweep, trial: Trial) -> None:
        """Say a new best trial in the card's thread (raises ``ChatUndelivered``)."""
        ...

    def sweep_ended(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        """Tell the channel the sweep ended, mentioning its requester (in the card's thread
        and the channel), with the objective-by-trial chart in the thread (raises
        ``ChatUndelivered`` when the message wasn't taken)."""
        ...


class DataGuard(Protocol):
    """Which local files a request may name (local compute only)."""

    def checked(self, data: Mapping[str, str], *, trusted: bool) -> dict[str, str]:
        """``data`` with local paths checked and written as ``file:///…`` URIs; other URIs
        as they are. ``InvalidInput`` naming the user's URI when one may not be read —
        the same text for a refused and a missing path unless ``trusted`` (the OS user)."""
        ...


class ModelRegistry(Protocol):
    """Where registered models also live outside the store (AWS: SageMaker Model Registry);
    the embedded default keeps them in the store alone."""

    def register(self, model: ModelVersion) -> str | None:
        """Create the model version there (its group when missing), pending manual approval;
        return its id (the model package ARN), or None when there is nothing but the store.
        Called again for the same model version, it returns the one already created."""
        ...

    def decide(self, model: ModelVersion) -> None:
        """Set the approval status (``model.status``, with who decided and the note)."""
        ...


@runtime_checkable
class Tuner(Protocol):
    """What searches a sweep's space: Optuna inside trainbot (trainbot asks it for the next
    points and launches them as versions), or SageMaker automatic model tuning (the
    backend launches the trials; trainbot records them from their events).

    ``launches_trials`` says which: True when :meth:`begin` starts a backend search that
    runs the trials itself (``suggest``/``should_prune`` are then never called).
    """

    name: str
    launches_trials: bool

    def begin(self, sweep: Sweep, algorithm: Algorithm, pool: ResourcePool,
              backend_name: str) -> None:
        """Start the backend's search under ``backend_name`` (already recorded on the
        sweep), with the sweep's ranges, objective, limits and every trial's shared settings.
        ``BackendError`` if it could not start. A tuner that doesn't launch trials does
        nothing."""
        ...

    def suggest(self, sweep: Sweep, trials: Sequence[Trial]) -> dict[str, HPValue]:
        """The parameters of trial ``len(trials)``, given every trial so far (finished ones
        with their objective): the next point of the search, the same answer for the same
        history (so a retried or resumed step asks the same point)."""
        ...

    def should_prune(self, sweep: Sweep, trials: Sequence[Trial], trial: Trial) -> bool:
        """Whether running ``trial`` should stop now, judged on its intermediate objective
        values against the other trials' at the same steps."""
        ...

    def stop(self, sweep: Sweep) -> None:
        """Stop the backend's search (its running trials stop with it). Nothing when the
        tuner launches no trials."""
        ...

    def describe(self, sweep: Sweep) -> TuningJobDetail | None:
        """The backend search's state as its state-change event would say it; None when
        there is none (not begun, unknown to the backend, or a tuner that launches no
        trials)."""
        ...

    def trial_details(self, sweep: Sweep) -> list[TrainingJobDetail]:
        """Every trial the backend search launched, as their state-change events would say
        them (oldest first); empty for a tuner that launches no trials."""
        ...


@dataclass(frozen=True)
class StoredFile:
    """A file shared in the chat, stored where training reads it, once per content."""

    uri: str  # file:///… (local) or s3://BUCKET/trainbot/data/<team>/<sha256>/<name>
    name: str
    sha256: str
    size: int
    origin: str  # where it came from: "slack:F0123ABC"


class FileInbox(Protocol):
    """Data handed over in the chat (Slack files), made readable by training."""

    def is_file_reference(self, value: str) -> bool:
        """Whether ``value`` names a chat file (a Slack file id ``F…`` or its permalink)
        rather than a data URI or path."""
        ...

    def owns(self, uri: str) -> bool:
        """Whether ``uri`` points where fetched files (or trainbot's other files) are kept:
        a spec may hold such a URI only from :meth:`fetch`, never from a user's typing."""
        ...

    def fetch(self, reference: str, *, user: str, channel: str | None) -> StoredFile:
        """Download the file ``reference`` names — only one ``user`` can see (shared in
        ``channel``, or theirs) — check its size and type, and store it content-addressed
        (the same bytes are stored once). ``InvalidInput``/``NotAllowed`` saying what to do
        otherwise, the same text for a file that doesn't exist and one the user can't see."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...
