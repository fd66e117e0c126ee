"""The production :class:`~bot.ports.JobStore`: one DynamoDB table, conditional writes only.

The layout (keys, indexes) is defined in :mod:`bot.adapters.dynamodb_schema`, the items in
:mod:`.items`, the writes and their conditions in :mod:`.writes`. This module runs them and
turns a false condition into the port's errors (``Conflict``, ``StaleWrite``, ``NotFound``).
Nothing here scans the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from botocore.exceptions import ClientError

from bot.adapters.dynamodb.items import (
    algorithm_from_item,
    approval_from_item,
    approval_item,
    job_from_item,
    preset_from_item,
    preset_item,
    version_from_item,
)
from bot.adapters.dynamodb.keys import (
    ACTIVE,
    ALL_JOBS,
    META,
    OUTBOX,
    VERSION_PREFIX,
    Item,
    algorithm_key,
    algorithm_version_key,
    algorithms_partition,
    approval_key,
    backend_key,
    backend_partition,
    channel_partition,
    ended_partition,
    guard_key,
    job_key,
    job_partition,
    preset_key,
    preset_partition,
    sparse_partition,
    text,
    timestamp,
    version_key,
)
from bot.adapters.dynamodb.model_versions import ModelVersions
from bot.adapters.dynamodb.reads import TableReads
from bot.adapters.dynamodb.spend import Spend
from bot.adapters.dynamodb.sweeps import Sweeps
from bot.adapters.dynamodb.transactions import (
    CHECK_FAILED,
    backoff,
    cancellation_codes,
    check_failed,
    conditional_update,
    retryable,
    transact,
)
from bot.adapters.dynamodb.version_writes import NOTHING_HELD, VersionWrites
from bot.adapters.dynamodb.writes import (
    algorithm_hide_update,
    algorithm_pointer_put,
    algorithm_registration,
    allocation,
    approval_message_update,
    decide_update,
    preset_delete,
    put_new,
)
from bot.adapters.dynamodb_schema import (
    ACTIVE_INDEX,
    ACTIVE_SHARDS,
    ALL_JOBS_INDEX,
    BACKEND_INDEX,
    CHANNEL_INDEX,
    ENDED_INDEX,
)
from bot.clock import SystemClock
from bot.domain import (
    Algorithm,
    Approval,
    Conflict,
    Decision,
    JobVersion,
    ModelStatus,
    ModelVersion,
    NotFound,
    Preset,
    TrainingJob,
)
from bot.domain.cost import Budget, BudgetScope, Full, LedgerEntry
from bot.domain.sweep import Sweep
from bot.ports import Clock

__all__ = ["MAX_ALLOCATION_ATTEMPTS", "DynamoStore", "default_client"]

# Version allocation retries when another writer took the number first. Each round one writer
# wins, so this bounds the wait of a writer among that many concurrent ones.
MAX_ALLOCATION_ATTEMPTS = 100


def default_client() -> Any:
    """A DynamoDB client that backs off adaptively when throttled."""
    # Imported here: callers that pass a client in (tests, the Lambda wiring) skip it.
    import boto3
    from botocore.config import Config

    return boto3.client("dynamodb", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))


class DynamoStore:
    """A :class:`~bot.ports.JobStore` over one DynamoDB table.

    ``client`` is a low-level boto3 DynamoDB client (thread-safe; built with adaptive retries
    when not given). ``clock`` bounds the days :meth:`list_ended_since` looks at.
    """

    def __init__(self, table_name: str, *, client: Any = None, clock: Clock | None = None) -> None:
        self.table_name = table_name
        self._client = client if client is not None else default_client()
        self._clock = clock or SystemClock()
        self._reads = TableReads(self._client, table_name)
        self._models = ModelVersions(self._client, self._reads)
        self._sweeps = Sweeps(self._client, self._reads)
        self._versions = VersionWrites(self._client, self._reads)
        self._spend = Spend(self._client, self._reads)

    # -- jobs and versions ------------------------------------------------------------

    def add_version(
        self, draft: JobVersion, *, new_job: TrainingJob | None = None
    ) -> tuple[JobVersion, bool]:
        """See :meth:`bot.ports.JobStore.add_version`.

        One transaction moves the job's counter from n to n+1 (conditional on n), puts
        ``V#n+1`` and the request-key guard; losing the counter race means retrying with the
        counter's new value, losing the guard means the request was already served.
        """
        if new_job is not None and new_job.name != draft.job:
            raise ValueError(f"new_job {new_job.name!r} is not the draft's job {draft.job!r}")
        if draft.request_key is not None:
            replayed = self._by_request_key(draft.request_key)
            if replayed is not None:
                return replayed, False
        draft = draft.model_copy(update=NOTHING_HELD)  # only claims and ends move them
        latest = 0 if new_job is not None else self._latest_version(draft.job)
        for attempt in range(MAX_ALLOCATION_ATTEMPTS):
            if attempt:
                backoff(attempt)
            stored = draft.model_copy(update={"number": latest + 1, "revision": 1})
            try:
                self._client.transact_write_items(
                    TransactItems=allocation(self.table_name, stored, new_job))
            except ClientError as exc:
                codes = cancellation_codes(exc)
                if stored.request_key is not None and codes[2] == CHECK_FAILED:
                    return self._replayed(stored.request_key, exc), False
                if codes[0] == CHECK_FAILED:
                    latest = self._counter_moved(draft.job, new_job, exc)
                elif not retryable(codes):
                    raise
                continue
            return stored, True
        raise Conflict(
            f"Too many versions of `{draft.job}` are being started at once.",
            hint="Try again in a moment.",
        )

    def _counter_moved(self, job: str, new_job: TrainingJob | None, exc: ClientError) -> int:
        """After the first transaction item failed: the counter to try next, or the error."""
        if new_job is not None:
            raise Conflict(f"A job named `{job}` already exists.") from exc
        reasons = exc.response.get("CancellationReasons", [])
        old = reasons[0].get("Item") if reasons else None
        if old is None:
            # Either the job is gone, or this endpoint doesn't return the item: read it.
            return self._latest_version(job)
        return int(old["latest_version"]["N"])

    def _latest_version(self, job: str) -> int:
        return self.get_job(job).latest_version

    def find_by_request_key(self, request_key: str) -> JobVersion | None:
        return self._by_request_key(request_key)

    def _by_request_key(self, request_key: str) -> JobVersion | None:
        guard = self._reads.get(guard_key(request_key))
        if guard is None:
            return None
        return self.get_version(guard["job"]["S"], int(guard["number"]["N"]))

    def _replayed(self, request_key: str, exc: ClientError) -> JobVersion:
        version = self._by_request_key(request_key)
        if version is None:  # the guard failed, so it exists; guards are never deleted
            raise Conflict(f"Request `{request_key}` is in an inconsistent state.") from exc
        return version

    def get_job(self, name: str) -> TrainingJob:
        item = self._reads.get(job_key(name))
        if item is None:
            raise NotFound(f"No job named `{name}`.")
        return job_from_item(item)

    def list_jobs(self, *, channel: str | None = None, limit: int = 50) -> list[TrainingJob]:
        """Newest first; all channels when ``channel`` is None."""
        if limit < 1:
            return []  # Query rejects Limit=0
        index, partition = (
            (ALL_JOBS_INDEX, ALL_JOBS) if channel is None
            else (CHANNEL_INDEX, channel_partition(channel))
        )
        items = self._reads.query_index(index, partition, ScanIndexForward=False, Limit=limit)
        jobs: list[TrainingJob] = []
        for item in items:
            if len(jobs) >= limit:
                break
            jobs.append(job_from_item(item))
        return jobs

    def get_version(self, job: str, number: int) -> JobVersion:
        item = self._reads.get(version_key(job, number))
        if item is None:
            raise NotFound(f"No version {number} of job `{job}`.")
        return version_from_item(item)

    def list_versions(self, job: str) -> list[JobVersion]:
        """Oldest first. ``NotFound`` if the job does not exist.

        One query reads the job's whole partition: its META item and every ``V#`` item.
        """
        items = list(self._reads.query_partition(job_partition(job)))
        if not any(item["SK"]["S"] == META for item in items):
            raise NotFound(f"No job named `{job}`.")
        return [version_from_item(item) for item in items
                if item["SK"]["S"].startswith(VERSION_PREFIX)]

    def save_version(self, version: JobVersion) -> JobVersion:
        """Compare-and-set on ``revision``; fields fixed at creation are kept as stored, and
        what the version holds of the store's (:data:`~.version_writes.OWNED`) too. The write
        that ends it gives its places back and settles its charge, in one transaction."""
        return self._versions.save(version)

    def claim_launch(self, version: JobVersion, *, slots: int | None = None,
                     caps: Mapping[str, int] | None = None) -> JobVersion | Full:
        """See :meth:`bot.ports.JobStore.claim_launch`. One transaction: the version
        (compare-and-set), the ``BACKEND#<name>`` pointer (must be new), with ``slots`` the
        pool's counter (``active < slots``), each cap's counter (``active < limit``) and the
        charged ledger counters (:mod:`.version_writes`)."""
        return self._versions.claim(version, slots=slots, caps=caps)

    def find_by_backend_name(self, backend_job_name: str) -> JobVersion | None:
        """Through the ``BACKEND#<name>`` pointer written with the launch's claim, then the
        version, both consistent reads. Versions named before pointers existed are found
        through the backend-name index (keys only)."""
        pointer = self._reads.get(backend_key(backend_job_name))
        if pointer is not None:
            item = self._reads.get(version_key(pointer["job"]["S"], int(pointer["number"]["N"])))
            return None if item is None else version_from_item(item)
        for key in self._reads.query_index(BACKEND_INDEX, backend_partition(backend_job_name)):
            item = self._reads.get({"PK": key["PK"], "SK": key["SK"]})
            if item is not None:
                return version_from_item(item)
        return None

    def list_active(self) -> list[JobVersion]:
        """Non-terminal versions, oldest first: every shard of the sparse active index."""
        return self._list_sparse(ACTIVE)

    def list_undelivered(self) -> list[JobVersion]:
        """Ended versions with an outbox, oldest first (the same index, ``OUTBOX#`` keys)."""
        return self._list_sparse(OUTBOX)

    def _list_sparse(self, prefix: str) -> list[JobVersion]:
        items: list[Item] = []
        for shard in range(ACTIVE_SHARDS):
            items += self._reads.query_index(ACTIVE_INDEX, sparse_partition(prefix, shard))
        items.sort(key=lambda item: item[f"{ACTIVE_INDEX}SK"]["S"])
        return [version_from_item(item) for item in items]

    def list_ended_since(self, since: datetime) -> list[JobVersion]:
        """Versions with ``ended_at >= since``, earliest end first.

        One query per UTC day from ``since`` to tomorrow (tomorrow absorbs clock skew between
        the writer and this reader), so callers should ask for short windows.
        """
        lower = timestamp(since)
        day = datetime.fromisoformat(lower[:10]).date()
        last = max(day, self._clock.now().astimezone(UTC).date()) + timedelta(days=1)
        versions: list[JobVersion] = []
        while day <= last:
            versions += map(
                version_from_item,
                self._reads.query(
                    IndexName=ENDED_INDEX,
                    KeyConditionExpression="#pk = :pk AND #sk >= :since",
                    ExpressionAttributeNames={
                        "#pk": f"{ENDED_INDEX}PK",
                        "#sk": f"{ENDED_INDEX}SK",
                    },
                    ExpressionAttributeValues={
                        ":pk": text(ended_partition(day.isoformat())),
                        ":since": text(lower),
                    },
                ),
            )
            day += timedelta(days=1)
        return versions

    # -- presets ----------------------------------------------------------------------

    def create_preset(self, preset: Preset) -> Preset:
        """``Conflict`` if a preset of that name exists in the scope."""
        try:
            self._client.put_item(**put_new(self.table_name, preset_item(preset))["Put"])
        except ClientError as exc:
            if not check_failed(exc):
                raise
            raise Conflict(f"A preset named `{preset.name}` already exists.") from exc
        return preset

    def get_preset(self, scope: str, name: str) -> Preset:
        item = self._reads.get(preset_key(scope, name))
        if item is None:
            raise NotFound(f"No preset named `{name}`.")
        return preset_from_item(item)

    def list_presets(self, scope: str) -> list[Preset]:
        """Sorted by name (the sort key's byte order)."""
        items = self._reads.query_partition(preset_partition(scope))
        return [preset_from_item(item) for item in items]

    def delete_preset(self, scope: str, name: str) -> None:
        """``NotFound`` if there is no such preset."""
        try:
            self._client.delete_item(**preset_delete(self.table_name, scope, name))
        except ClientError as exc:
            if not check_failed(exc):
                raise
            raise NotFound(f"No preset named `{name}`.") from exc

    # -- registered algorithms --------------------------------------------------------

    def register_algorithm(self, scope: str, algorithm: Algorithm) -> tuple[Algorithm, bool]:
        """See :meth:`bot.ports.JobStore.register_algorithm`.

        One transaction puts the version (only if new) and the id's pointer at it. When the
        version exists, the one stored is made current instead, with a second write.
        """
        items = algorithm_registration(self.table_name, scope, algorithm)
        version, pointer = items[0]["Put"]["Item"], items[1]["Put"]["Item"]
        try:
            transact(self._client, items)
            return algorithm_from_item(version, pointer), True
        except ClientError as exc:
            if cancellation_codes(exc)[0] != CHECK_FAILED:
                raise
            reasons = exc.response.get("CancellationReasons", [])
            # The stored version comes back with the failure, unless this endpoint doesn't
            # return it; it is immutable, so reading it again gives the same.
            old = reasons[0].get("Item") or self._reads.get({k: version[k] for k in ("PK", "SK")})
            if old is None:  # its condition failed, so it exists; versions are never deleted
                raise Conflict(f"Algorithm `{algorithm.id}` is in an inconsistent state.") from exc
        stored = algorithm_from_item(old, pointer)
        self._client.put_item(**algorithm_pointer_put(self.table_name, scope, stored))
        return stored, False

    def get_registered_algorithm(self, scope: str, algo_id: str,
                                 digest: str | None = None) -> Algorithm:
        """The id's pointer holds its current version: one GetItem, and a second for an
        older version (the pointer says whether the id is hidden)."""
        pointer = self._reads.get(algorithm_key(scope, algo_id))
        if pointer is not None and digest in (None, pointer["digest"]["S"]):
            return algorithm_from_item(pointer)
        if digest is None:
            raise NotFound(f"There is no registered algorithm `{algo_id}`.")
        item = pointer and self._reads.get(algorithm_version_key(scope, algo_id, digest))
        if not item:
            raise NotFound(f"There is no version sha256:{digest[:12]}… of `{algo_id}`.")
        return algorithm_from_item(item, pointer)

    def list_registered_algorithms(self, scope: str) -> list[Algorithm]:
        """One Query of the scope's pointers, however many versions each id has; by id."""
        partition = self._reads.query_partition(algorithms_partition(scope))
        return [algorithm_from_item(item) for item in partition]

    def hide_algorithm(self, scope: str, algo_id: str, *, hidden: bool = True) -> Algorithm:
        try:
            response = self._client.update_item(
                **algorithm_hide_update(self.table_name, scope, algo_id, hidden=hidden),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not check_failed(exc):
                raise
            raise NotFound(f"There is no registered algorithm `{algo_id}`.") from exc
        return algorithm_from_item(response["Attributes"])

    # -- registered models (in :mod:`.model_versions`) ---------------------------------

    def add_model_version(self, model: ModelVersion) -> tuple[ModelVersion, bool]:
        return self._models.add(model)

    def get_model_version(self, group: str, number: int) -> ModelVersion:
        return self._models.get(group, number)

    def list_model_groups(self) -> list[str]:
        return self._models.groups()

    def list_model_versions(self, group: str) -> list[ModelVersion]:
        return self._models.listed(group)

    def models_of(self, job: str, version: int) -> list[ModelVersion]:
        return self._models.of_training_version(job, version)

    def save_model_version(self, model: ModelVersion, *,
                           expect_status: ModelStatus | None = None) -> ModelVersion:
        return self._models.save(model, expect_status=expect_status)

    # -- sweeps (in :mod:`.sweeps`) ----------------------------------------------------

    def create_sweep(self, sweep: Sweep, *, job: TrainingJob) -> tuple[Sweep, bool]:
        return self._sweeps.create(sweep, job)

    def get_sweep(self, name: str) -> Sweep:
        return self._sweeps.get(name)

    def save_sweep(self, sweep: Sweep) -> Sweep:
        return self._sweeps.save(sweep)

    def list_active_sweeps(self) -> list[Sweep]:
        return self._sweeps.active()

    def find_sweep_by_backend_name(self, backend_name: str) -> Sweep | None:
        return self._sweeps.by_backend_name(backend_name)

    # -- spend (in :mod:`.spend`) ------------------------------------------------------

    def get_ledger(self, period: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        return self._spend.get_ledger(period, keys)

    def list_ledger(self, period: str, dimension: str | None = None) -> list[LedgerEntry]:
        return self._spend.list_ledger(period, dimension)

    def put_budget(self, budget: Budget) -> Budget:
        return self._spend.put_budget(budget)

    def get_budget(self, scope: BudgetScope, subject: str) -> Budget | None:
        return self._spend.get_budget(scope, subject)

    def list_budgets(self) -> list[Budget]:
        return self._spend.list_budgets()

    def delete_budget(self, scope: BudgetScope, subject: str) -> None:
        self._spend.delete_budget(scope, subject)

    def claim_notice(self, key: str, *, now: datetime, lease: timedelta) -> bool:
        return self._spend.claim_notice(key, now=now, lease=lease)

    def settle_notice(self, key: str, *, told: bool) -> None:
        self._spend.settle_notice(key, told=told)

    def get_record(self, key: str) -> tuple[dict | None, int]:
        return self._spend.get_record(key)

    def put_record(self, key: str, value: dict, *, revision: int) -> bool:
        return self._spend.put_record(key, value, revision=revision)

    # -- approvals --------------------------------------------------------------------

    def create_approval(self, approval: Approval) -> Approval:
        """``Conflict`` if an approval with that id exists."""
        try:
            self._client.put_item(**put_new(self.table_name, approval_item(approval))["Put"])
        except ClientError as exc:
            if not check_failed(exc):
                raise
            raise Conflict(f"Approval `{approval.id}` already exists.") from exc
        return approval

    def get_approval(self, approval_id: str) -> Approval:
        item = self._reads.get(approval_key(approval_id))
        if item is None:
            raise NotFound(f"No approval request `{approval_id}`.")
        return approval_from_item(item)

    def decide_approval(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime, note: str = ""
    ) -> Approval:
        """Record the decision if none was recorded yet; ``Conflict`` naming who decided."""
        return approval_from_item(conditional_update(
            self._client,
            decide_update(self.table_name, approval_id, decision, by=by, at=at, note=note),
            lambda exc: self._raise_decided(approval_id, exc)))

    def decide_approval_and_version(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime,
        version: JobVersion, note: str = "",
    ) -> tuple[Approval, JobVersion]:
        """See :meth:`bot.ports.JobStore.decide_approval_and_version`: one transaction, the
        approval conditional on being undecided, the version on its revision."""
        decide = decide_update(self.table_name, approval_id, decision, by=by, at=at, note=note)
        saved = self._versions.save_after(
            {"Update": decide}, version, lambda exc: self._raise_decided(approval_id, exc))
        return self.get_approval(approval_id), saved

    def _raise_decided(self, approval_id: str, exc: ClientError) -> NoReturn:
        old = exc.response.get("Item") or self._reads.get(approval_key(approval_id))
        if old is None:
            raise NotFound(f"No approval request `{approval_id}`.") from exc
        earlier = approval_from_item(old)
        raise Conflict(
            f"This request was already {earlier.decision} by {earlier.decided_by}."
        ) from exc

    def set_approval_message(self, approval_id: str, *, channel: str, ts: str) -> Approval:
        try:
            response = self._client.update_item(
                **approval_message_update(self.table_name, approval_id, channel=channel, ts=ts),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not check_failed(exc):
                raise
            raise NotFound(f"No approval request `{approval_id}`.") from exc
        return approval_from_item(response["Attributes"])

    def __repr__(self) -> str:
        return f"DynamoStore({self.table_name!r})"
