"""Hand-written fakes that implement the ports (and pass the same contract suites)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.domain import (
    Algorithm,
    Approval,
    Artifacts,
    BackendError,
    ChatUndelivered,
    Conflict,
    Decision,
    InvalidInput,
    JobVersion,
    ModelVersion,
    NotFound,
    Preset,
    Progress,
    ResourcePool,
    StaleWrite,
    TrainingJob,
    TrainingJobDetail,
    TrainingJobStateChange,
)
from bot.domain.cost import Budget, BudgetScope, Full, LedgerEntry
from bot.domain.job import VERSION_FIXED_FIELDS as _IMMUTABLE
from bot.domain.model import MODEL_MUTABLE_FIELDS
from bot.domain.sweep import SWEEP_FIXED_FIELDS, Sweep
from bot.ports import EventReport, Launch, Links, Results


class MemoryStore:
    """An in-memory JobStore with the same atomicity guarantees (one lock)."""

    # What a version holds of the store's (its places, its charge): a new one holds nothing.
    NOTHING_HELD: dict[str, object] = {
        "pool_slot": False, "caps": [], "charged_usd": None, "charge_periods": [],
        "charge_keys": [], "charge_settled": False}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, TrainingJob] = {}
        self.versions: dict[tuple[str, int], JobVersion] = {}
        self.keys: dict[str, tuple[str, int]] = {}
        self.presets: dict[tuple[str, str], Preset] = {}
        self.approvals: dict[str, Approval] = {}
        # Registered algorithms: every version by (scope, id, digest), hidden false; and per
        # (scope, id) the current digest and whether the id is hidden.
        self.algorithm_versions: dict[tuple[str, str, str], Algorithm] = {}
        self.algorithm_ids: dict[tuple[str, str], tuple[str, bool]] = {}
        # Registered models by (group, number).
        self.models: dict[tuple[str, int], ModelVersion] = {}
        # Sweeps by name, and the name created under each request key.
        self.sweeps: dict[str, Sweep] = {}
        self.sweep_keys: dict[str, str] = {}
        # Spend: ledger entries by (period, key); budgets by (scope, subject); notices: True
        # once told, else the end of the live claim.
        self.ledger: dict[tuple[str, str], LedgerEntry] = {}
        self.budgets: dict[tuple[str, str], Budget] = {}
        self.notices: dict[str, datetime | bool] = {}
        self.records: dict[str, tuple[dict | None, int]] = {}

    def add_version(self, draft, *, new_job=None):  # type: ignore[no-untyped-def]
        draft = draft.model_copy(update=self.NOTHING_HELD)  # only claims and ends move them
        with self._lock:
            if draft.request_key and draft.request_key in self.keys:
                return self.versions[self.keys[draft.request_key]], False
            if new_job is not None:
                if new_job.name != draft.job:
                    raise ValueError(f"new_job {new_job.name!r} is not the draft's job")
                if new_job.name in self.jobs:
                    raise Conflict(f"job {new_job.name} exists")
                job = new_job
            else:
                if draft.job not in self.jobs:
                    raise NotFound(f"There is no job `{draft.job}`.")
                job = self.jobs[draft.job]
            number = job.latest_version + 1
            self.jobs[job.name] = job.model_copy(update={"latest_version": number})
            stored = draft.model_copy(update={"job": job.name, "number": number, "revision": 1})
            self.versions[(job.name, number)] = stored
            if draft.request_key:
                self.keys[draft.request_key] = (job.name, number)
            return stored, True

    def find_by_request_key(self, request_key):  # type: ignore[no-untyped-def]
        with self._lock:
            key = self.keys.get(request_key)
            return self.versions[key] if key else None

    def get_job(self, name):  # type: ignore[no-untyped-def]
        try:
            return self.jobs[name]
        except KeyError:
            raise NotFound(f"There is no job `{name}`.") from None

    def list_jobs(self, *, channel=None, limit=50):  # type: ignore[no-untyped-def]
        jobs = [j for j in self.jobs.values() if channel is None or j.channel == channel]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)[:limit]

    def get_version(self, job, number):  # type: ignore[no-untyped-def]
        try:
            return self.versions[(job, number)]
        except KeyError:
            raise NotFound(f"There is no version {job} v{number}.") from None

    def list_versions(self, job):  # type: ignore[no-untyped-def]
        self.get_job(job)
        return sorted((v for (j, _), v in self.versions.items() if j == job),
                      key=lambda v: v.number)

    def save_version(self, version):  # type: ignore[no-untyped-def]
        with self._lock:
            return self._save(version)

    def _current(self, version):  # type: ignore[no-untyped-def]
        current = self.get_version(version.job, version.number)
        if current.revision != version.revision:
            raise StaleWrite(f"{version.label} changed since it was read")
        return current

    def _save(self, version, *, held=None):  # type: ignore[no-untyped-def]
        """Compare-and-set; fixed fields and what the version holds (``held``: as the claim
        set it; else as stored) are the store's. Its end gives places back and settles."""
        current = self._current(version)
        fixed = {k: getattr(current, k) for k in _IMMUTABLE}
        owned = held or {k: getattr(current, k) for k in self.NOTHING_HELD}
        stored = version.model_copy(update={**fixed, **owned, "revision": version.revision + 1})
        if stored.status.terminal:
            settle = stored.charged_usd is not None and not stored.charge_settled
            if settle:
                self._charge(stored, committed=-stored.charged_usd,
                             spent=stored.actual_cost_usd or 0.0,
                             saving=stored.spot_saving_usd or 0.0, versions=1)
            stored = stored.model_copy(update={
                "pool_slot": False, "caps": [],
                "charge_settled": stored.charge_settled or settle})
        self.versions[(version.job, version.number)] = stored
        return stored

    def claim_launch(self, version, *, slots=None, caps=None):  # type: ignore[no-untyped-def]
        with self._lock:
            current = self._current(version)
            if any(v.backend_job_name == version.backend_job_name
                   and (v.job, v.number) != (version.job, version.number)
                   for v in self.versions.values()):
                raise Conflict(f"backend name {version.backend_job_name} in use")
            held = {k: getattr(current, k) for k in self.NOTHING_HELD}
            active = [v for v in self.versions.values() if not v.status.terminal]
            if slots is not None and not held["pool_slot"]:
                if sum(1 for v in active if v.pool_slot and v.spec.pool == version.spec.pool
                       ) >= slots:
                    return Full(cap=f"pool:{version.spec.pool}", limit=slots)
                held["pool_slot"] = True
            wanted = {k: n for k, n in (caps or {}).items() if k not in held["caps"]}
            for cap, limit in wanted.items():
                if sum(1 for v in active if cap in v.caps) >= limit:
                    return Full(cap=cap, limit=limit)
            held["caps"] = [*held["caps"], *wanted]
            if current.charged_usd is None and version.charged_usd is not None:
                held.update(charged_usd=version.charged_usd, charge_settled=False,
                            charge_periods=list(dict.fromkeys(version.charge_periods)),
                            charge_keys=list(dict.fromkeys(version.charge_keys)))
                self._charge(version.model_copy(update=held), committed=version.charged_usd)
            return self._save(version, held=held)

    def _charge(self, version, *, committed=0.0, spent=0.0, saving=0.0, versions=0):  # type: ignore[no-untyped-def]
        for period in dict.fromkeys(version.charge_periods):
            for key in dict.fromkeys(version.charge_keys):
                e = self.ledger.get((period, key)) or LedgerEntry(period=period, key=key)
                self.ledger[(period, key)] = e.model_copy(update={
                    "committed_usd": round(e.committed_usd + committed, 6) + 0.0,
                    "spent_usd": round(e.spent_usd + spent, 6) + 0.0,
                    "spot_saving_usd": round(e.spot_saving_usd + saving, 6) + 0.0,
                    "versions": e.versions + versions})

    def get_ledger(self, period, keys):  # type: ignore[no-untyped-def]
        with self._lock:
            return {k: self.ledger.get((period, k)) or LedgerEntry(period=period, key=k)
                    for k in dict.fromkeys(keys)}

    def list_ledger(self, period, dimension=None):  # type: ignore[no-untyped-def]
        name = dimension.rstrip(":") if dimension is not None else None
        with self._lock:
            return sorted((e for (p, _), e in self.ledger.items() if p == period
                           and (name is None or e.dimension == name)), key=lambda e: e.key)

    def put_budget(self, budget):  # type: ignore[no-untyped-def]
        with self._lock:
            self.budgets[(budget.scope.value, budget.subject)] = budget
            return budget

    def get_budget(self, scope, subject):  # type: ignore[no-untyped-def]
        return self.budgets.get((BudgetScope(scope).value, subject))

    def list_budgets(self):  # type: ignore[no-untyped-def]
        with self._lock:
            return [self.budgets[k] for k in sorted(self.budgets)]

    def delete_budget(self, scope, subject):  # type: ignore[no-untyped-def]
        with self._lock:
            if self.budgets.pop((BudgetScope(scope).value, subject), None) is None:
                raise NotFound(f"There is no {BudgetScope(scope).value} budget for "
                               f"`{subject}`.")

    def claim_notice(self, key, *, now, lease):  # type: ignore[no-untyped-def]
        with self._lock:
            told_or_until = self.notices.get(key)
            if told_or_until is True or (told_or_until is not None and told_or_until > now):
                return False
            self.notices[key] = now + lease
            return True

    def settle_notice(self, key, *, told):  # type: ignore[no-untyped-def]
        with self._lock:
            if told:
                self.notices[key] = True
            elif self.notices.get(key) is not True:
                self.notices.pop(key, None)

    def get_record(self, key):  # type: ignore[no-untyped-def]
        with self._lock:
            value, revision = self.records.get(key, (None, 0))
            return copy.deepcopy(value), revision

    def put_record(self, key, value, *, revision):  # type: ignore[no-untyped-def]
        with self._lock:
            if self.records.get(key, (None, 0))[1] != revision:
                return False
            self.records[key] = (json.loads(json.dumps(value)), revision + 1)
            return True

    def find_by_backend_name(self, backend_job_name):  # type: ignore[no-untyped-def]
        return next((v for v in self.versions.values()
                     if v.backend_job_name == backend_job_name), None)

    def list_active(self):  # type: ignore[no-untyped-def]
        return sorted((v for v in self.versions.values() if not v.status.terminal),
                      key=lambda v: v.created_at)

    def list_undelivered(self):  # type: ignore[no-untyped-def]
        return sorted((v for v in self.versions.values() if v.status.terminal and v.outbox),
                      key=lambda v: v.created_at)

    def list_ended_since(self, since):  # type: ignore[no-untyped-def]
        return sorted((v for v in self.versions.values() if v.ended_at and v.ended_at >= since),
                      key=lambda v: v.ended_at)

    def create_preset(self, preset):  # type: ignore[no-untyped-def]
        with self._lock:
            key = (preset.scope, preset.name)
            if key in self.presets:
                raise Conflict(f"preset {preset.name} exists")
            self.presets[key] = preset
            return preset

    def get_preset(self, scope, name):  # type: ignore[no-untyped-def]
        try:
            return self.presets[(scope, name)]
        except KeyError:
            raise NotFound(f"There is no preset `{name}`.") from None

    def list_presets(self, scope):  # type: ignore[no-untyped-def]
        return sorted((p for (s, _), p in self.presets.items() if s == scope),
                      key=lambda p: p.name)

    def delete_preset(self, scope, name):  # type: ignore[no-untyped-def]
        with self._lock:
            self.get_preset(scope, name)
            del self.presets[(scope, name)]

    @staticmethod
    def _hidden(algorithm, hidden):  # type: ignore[no-untyped-def]
        if algorithm.source is None:
            raise ValueError(f"{algorithm.id} is a preset: only an algorithm with a source "
                             "is registered")
        return algorithm.model_copy(
            update={"source": algorithm.source.model_copy(update={"hidden": hidden})})

    def register_algorithm(self, scope, algorithm):  # type: ignore[no-untyped-def]
        stored = self._hidden(algorithm, False)
        key = (scope, algorithm.id, stored.source.digest)
        with self._lock:
            created = key not in self.algorithm_versions
            stored = self.algorithm_versions.setdefault(key, stored)
            self.algorithm_ids[(scope, algorithm.id)] = (stored.source.digest, False)
            return stored, created

    def get_registered_algorithm(self, scope, algo_id, digest=None):  # type: ignore[no-untyped-def]
        with self._lock:
            return self._registered(scope, algo_id, digest)

    def _registered(self, scope, algo_id, digest=None):  # type: ignore[no-untyped-def]
        current, hidden = self.algorithm_ids.get((scope, algo_id), (None, False))
        if digest is None and current is None:
            raise NotFound(f"There is no registered algorithm `{algo_id}`.")
        found = self.algorithm_versions.get((scope, algo_id, digest or current))
        if found is None:
            raise NotFound(f"There is no version sha256:{digest[:12]}… of `{algo_id}`.")
        return self._hidden(found, hidden)

    def list_registered_algorithms(self, scope):  # type: ignore[no-untyped-def]
        with self._lock:
            ids = sorted(i for s, i in self.algorithm_ids if s == scope)
            return [self._registered(scope, i) for i in ids]

    def hide_algorithm(self, scope, algo_id, *, hidden=True):  # type: ignore[no-untyped-def]
        with self._lock:
            if (scope, algo_id) not in self.algorithm_ids:
                raise NotFound(f"There is no registered algorithm `{algo_id}`.")
            digest, _ = self.algorithm_ids[(scope, algo_id)]
            self.algorithm_ids[(scope, algo_id)] = (digest, hidden)
            return self._registered(scope, algo_id)

    # What save_model_version writes; every other field is kept as registered.
    MODEL_MUTABLE = MODEL_MUTABLE_FIELDS

    def add_model_version(self, model):  # type: ignore[no-untyped-def]
        with self._lock:
            for stored in self.models.values():
                if (stored.group, stored.job, stored.version) == (
                        model.group, model.job, model.version):
                    return stored, False
            number = 1 + max((n for g, n in self.models if g == model.group), default=0)
            stored = model.model_copy(update={"number": number})
            self.models[(model.group, number)] = stored
            return stored, True

    def get_model_version(self, group, number):  # type: ignore[no-untyped-def]
        try:
            return self.models[(group, number)]
        except KeyError:
            raise NotFound(f"There is no version {number} of model `{group}`.") from None

    def list_model_groups(self):  # type: ignore[no-untyped-def]
        return sorted({g for g, _ in self.models})

    def list_model_versions(self, group):  # type: ignore[no-untyped-def]
        found = sorted((m for (g, _), m in self.models.items() if g == group),
                       key=lambda m: m.number)
        if not found:
            raise NotFound(f"There is no model `{group}`.")
        return found

    def models_of(self, job, version):  # type: ignore[no-untyped-def]
        return sorted((m for m in self.models.values() if (m.job, m.version) == (job, version)),
                      key=lambda m: m.group)

    def save_model_version(self, model, *, expect_status=None):  # type: ignore[no-untyped-def]
        with self._lock:
            stored = self.get_model_version(model.group, model.number)
            if expect_status is not None and stored.status != expect_status:
                raise Conflict(f"{stored.label} was already {stored.status.value.lower()} "
                               f"by {stored.decided_by}.")
            saved = stored.model_copy(
                update={k: getattr(model, k) for k in self.MODEL_MUTABLE})
            self.models[(model.group, model.number)] = saved
            return saved

    def create_sweep(self, sweep, *, job):  # type: ignore[no-untyped-def]
        if job.name != sweep.name:
            raise ValueError(f"job {job.name!r} is not the sweep's job {sweep.name!r}")
        with self._lock:
            if sweep.request_key is not None and sweep.request_key in self.sweep_keys:
                return self.sweeps[self.sweep_keys[sweep.request_key]], False
            if job.name in self.jobs:
                raise Conflict(f"A job named `{job.name}` already exists.")
            if sweep.backend_name and self._sweep_named(sweep.backend_name) is not None:
                raise Conflict(f"Backend name `{sweep.backend_name}` is already in use.")
            stored = sweep.model_copy(update={"revision": 1})
            self.jobs[job.name] = job.model_copy(update={"latest_version": 0})
            self.sweeps[sweep.name] = stored
            if sweep.request_key is not None:
                self.sweep_keys[sweep.request_key] = sweep.name
            return stored, True

    def get_sweep(self, name):  # type: ignore[no-untyped-def]
        try:
            return self.sweeps[name]
        except KeyError:
            raise NotFound(f"There is no sweep `{name}`.") from None

    def save_sweep(self, sweep):  # type: ignore[no-untyped-def]
        with self._lock:
            current = self.get_sweep(sweep.name)
            if current.revision != sweep.revision:
                raise StaleWrite(f"{sweep.label} changed since it was read")
            other = sweep.backend_name and self._sweep_named(sweep.backend_name)
            if other and other.name != sweep.name:
                raise Conflict(f"Backend name `{sweep.backend_name}` is already in use.")
            fixed = {k: getattr(current, k) for k in SWEEP_FIXED_FIELDS}
            stored = sweep.model_copy(update={**fixed, "revision": sweep.revision + 1})
            self.sweeps[sweep.name] = stored
            return stored

    def _sweep_named(self, backend_name):  # type: ignore[no-untyped-def]
        return next((s for s in self.sweeps.values() if s.backend_name == backend_name), None)

    def list_active_sweeps(self):  # type: ignore[no-untyped-def]
        return sorted((s for s in self.sweeps.values() if not s.status.terminal or s.outbox),
                      key=lambda s: (s.created_at, s.name))

    def find_sweep_by_backend_name(self, backend_name):  # type: ignore[no-untyped-def]
        return self._sweep_named(backend_name)

    def create_approval(self, approval):  # type: ignore[no-untyped-def]
        with self._lock:
            if approval.id in self.approvals:
                raise Conflict(f"approval {approval.id} exists")
            self.approvals[approval.id] = approval
            return approval

    def get_approval(self, approval_id):  # type: ignore[no-untyped-def]
        try:
            return self.approvals[approval_id]
        except KeyError:
            raise NotFound(f"There is no approval request `{approval_id}`.") from None

    def decide_approval(self, approval_id, decision, *, by, at, note=""):  # type: ignore[no-untyped-def]
        with self._lock:
            current = self.get_approval(approval_id)
            if current.decision is not None:
                raise Conflict(f"Request {approval_id} was already {current.decision} by "
                               f"{current.decided_by}.")
            decided = current.model_copy(update={
                "decision": Decision(decision), "decided_by": by, "decided_at": at,
                "decision_note": note})
            self.approvals[approval_id] = decided
            return decided

    def decide_approval_and_version(self, approval_id, decision, *, by, at, version, note=""):  # type: ignore[no-untyped-def]
        with self._lock:
            current = self.get_approval(approval_id)
            if current.decision is not None:
                raise Conflict(f"Request {approval_id} was already {current.decision} by "
                               f"{current.decided_by}.")
            saved = self._save(version)
            decided = current.model_copy(update={
                "decision": Decision(decision), "decided_by": by, "decided_at": at,
                "decision_note": note})
            self.approvals[approval_id] = decided
            return decided, saved

    def set_approval_message(self, approval_id, *, channel, ts):  # type: ignore[no-untyped-def]
        with self._lock:
            a = self.get_approval(approval_id).model_copy(
                update={"channel": channel, "message_ts": ts})
            self.approvals[approval_id] = a
            return a


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, **kwargs: float) -> None:
        self.t += timedelta(**kwargs)


class FakeCompute:
    """Records launches; tests drive state with :meth:`event`."""

    name = "fake"

    def __init__(self) -> None:
        self.launched: list[JobVersion] = []
        self.stopped: list[str] = []
        self.fail_with: BackendError | None = None
        self.reporting_to: EventReport | None = None
        self.taken_back: list[JobVersion] = []
        self.closed = False
        self.refused: list[str] = []  # ids check_runnable refused
        self.results_value = Results(evaluation={"objective": {"metric": "acc", "value": 0.9}},
                                     log_tail=["done"])
        self._lock = threading.Lock()

    def launch(self, version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> Launch:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.launched.append(version)
        assert version.backend_job_name, "the service names the backend job before launch"
        return Launch(backend_job_name=version.backend_job_name,
                      artifacts=Artifacts(tensorboard=f"tb://{version.backend_job_name}"))

    def stop(self, version: JobVersion) -> None:
        self.stopped.append(version.backend_job_name or "")

    def describe(self, version: JobVersion) -> TrainingJobDetail | None:
        return None

    def progress(self, version: JobVersion, algorithm: Algorithm) -> Progress | None:
        return None

    def results(self, version: JobVersion, algorithm: Algorithm) -> Results:
        return self.results_value

    def logs(self, version: JobVersion, *, lines: int = 50) -> list[str]:
        return ["line 1", "line 2"][-lines:]

    def links(self, version: JobVersion) -> Links:
        return Links(tensorboard=f"http://127.0.0.1:6006/#scalars&regexInput={version.backend_job_name}",
                     console=f"http://console/{version.backend_job_name}")

    def check_runnable(self, algorithm: Algorithm) -> None:
        if algorithm.source is not None and algorithm.source.kind == "image":
            self.refused.append(algorithm.id)
            raise InvalidInput(f"`{algorithm.id}` is a container image algorithm: the fake "
                               "compute runs no images.")

    def training_image(self, algorithm: Algorithm, pool: ResourcePool) -> str | None:
        return None  # runs no image, like the local backend

    def start_reporting(self, report: EventReport, active: Sequence[JobVersion]) -> None:
        self.reporting_to = report
        self.taken_back = list(active)

    def close(self) -> None:
        self.closed = True


class RecordingChat:
    """A Chat that records what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self._n = 0
        self.refuse_announcements = 0  # the next N announcements fail like a busy Slack

    def version_created(self, version):  # type: ignore[no-untyped-def]
        self._n += 1
        self.calls.append(("created", version.label))
        return (version.channel or "C1", f"1.{self._n}")

    def version_changed(self, version, previous):  # type: ignore[no-untyped-def]
        self.calls.append(("changed", (version.label, previous, version.status)))

    def announce(self, version):  # type: ignore[no-untyped-def]
        if self.refuse_announcements > 0:
            self.refuse_announcements -= 1
            raise ChatUndelivered("ratelimited")
        self.calls.append(("announced", (version.label, version.status)))

    def progress(self, version):  # type: ignore[no-untyped-def]
        self.calls.append(("progress", version.label))

    def approval_requested(self, approval, version):  # type: ignore[no-untyped-def]
        self.calls.append(("approval", approval.id))
        return ("C1", "9.9")

    def approval_decided(self, approval, version):  # type: ignore[no-untyped-def]
        self.calls.append(("decided", (approval.id, approval.decision)))

    def thread_link(self, version: JobVersion) -> str | None:
        return f"https://slack.example/archives/{version.channel}/p{version.message_ts}" if (
            version.channel and version.message_ts) else None

    def model_registered(self, model, version=None):  # type: ignore[no-untyped-def]
        self.calls.append(("model registered", model.label))
        return (model.channel, f"7.{model.number}") if model.channel else None

    def model_decided(self, model):  # type: ignore[no-untyped-def]
        self.calls.append(("model decided", (model.label, model.status)))

    def sweep_created(self, sweep, trials):  # type: ignore[no-untyped-def]
        self.calls.append(("sweep created", sweep.name))
        return (sweep.channel, "5.1") if sweep.channel else None

    def sweep_changed(self, sweep, trials):  # type: ignore[no-untyped-def]
        self.calls.append(("sweep changed", (sweep.name, sweep.status, len(trials))))

    def sweep_new_best(self, sweep, trial):  # type: ignore[no-untyped-def]
        self.calls.append(("sweep new best", (sweep.name, trial.number)))

    def budget_alert(self, budget, month, used_usd, threshold):  # type: ignore[no-untyped-def]
        if self.refuse_announcements > 0:
            self.refuse_announcements -= 1
            raise ChatUndelivered("ratelimited")
        self.calls.append(("budget alert", (budget.key, month, threshold)))

    def cost_digest(self, channel, report):  # type: ignore[no-untyped-def]
        if self.refuse_announcements > 0:
            self.refuse_announcements -= 1
            raise ChatUndelivered("ratelimited")
        self.calls.append(("cost digest", (channel, report.period, report.total.spent_usd)))

    def near_ceiling(self, version):  # type: ignore[no-untyped-def]
        self.calls.append(("near ceiling", version.label))

    def cost_chart(self, channel, report):  # type: ignore[no-untyped-def]
        self.calls.append(("cost chart", (channel, report.period)))

    def sweep_ended(self, sweep, trials):  # type: ignore[no-untyped-def]
        if self.refuse_announcements > 0:
            self.refuse_announcements -= 1
            raise ChatUndelivered("ratelimited")
        self.calls.append(("sweep ended", (sweep.name, sweep.status)))


def event(name: str, status: str, secondary: str | None = None, **detail: object
          ) -> TrainingJobStateChange:
    return TrainingJobStateChange.model_validate({
        "detail-type": "SageMaker Training Job State Change",
        "source": "aws.sagemaker",
        "detail": {"TrainingJobName": name, "TrainingJobStatus": status,
                   "SecondaryStatus": secondary, **detail},
    })
