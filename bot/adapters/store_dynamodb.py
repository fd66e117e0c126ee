"""The production :class:`~bot.ports.JobStore`: one DynamoDB table, conditional writes only.

The layout (keys, indexes) is defined in :mod:`bot.adapters.dynamodb_schema`. Models are kept
as JSON strings (no ``Decimal`` round trips for floats); only keys and index keys are separate
attributes. Index attributes are derived from the model on every write, so an index can never
disagree with the item it points at. Nothing here scans the table.

Version items hold two JSON attributes: ``fixed`` (written once, when the version is created)
and ``state`` (what ``save_version`` replaces), so a save can never rewrite a spec or lineage.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from botocore.exceptions import ClientError

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
    Approval,
    Conflict,
    Decision,
    JobVersion,
    NotFound,
    Preset,
    StaleWrite,
    TrainingJob,
)
from bot.domain.approval import APPROVAL_MUTABLE_FIELDS
from bot.domain.job import VERSION_FIXED_FIELDS
from bot.ports import Clock

__all__ = ["MAX_ALLOCATION_ATTEMPTS", "DynamoStore", "backend_pointer_item", "default_client"]

Item = dict[str, dict[str, Any]]

META = "META"
# Version allocation retries when another writer took the number first. Each round one writer
# wins, so this bounds the wait of a writer among that many concurrent ones.
MAX_ALLOCATION_ATTEMPTS = 100
# Other transactions retry only while DynamoDB says "try again" (a conflict with another
# transaction on the same items, throttling), never on a condition that is false.
MAX_TRANSACT_ATTEMPTS = 10
_BACKOFF_BASE_S = 0.005
_BACKOFF_CAP_S = 0.2
# Cancellation reasons that say "try again", not "your condition is false".
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
_RETRYABLE = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_CHECK_FAILED = "ConditionalCheckFailed"

FIXED_FIELDS = VERSION_FIXED_FIELDS
_STATE_EXCLUDE = FIXED_FIELDS | {"revision"}
_APPROVAL_MUTABLE = APPROVAL_MUTABLE_FIELDS


def default_client() -> Any:
    """A DynamoDB client that backs off adaptively when throttled."""
    # Imported here: callers that pass a client in (tests, the Lambda wiring) skip it.
    import boto3
    from botocore.config import Config

    return boto3.client("dynamodb", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))


# -- encoding ---------------------------------------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order in the indexes."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _job_key(job: str) -> Item:
    return {"PK": _s(f"JOB#{job}"), "SK": _s(META)}


def _version_key(job: str, number: int) -> Item:
    return {"PK": _s(f"JOB#{job}"), "SK": _s(f"V#{number:06d}")}


def _guard_key(request_key: str) -> Item:
    return {"PK": _s(f"REQ#{request_key}"), "SK": _s(META)}


def _preset_key(scope: str, name: str) -> Item:
    return {"PK": _s(f"PRESET#{scope}"), "SK": _s(name)}


def _approval_key(approval_id: str) -> Item:
    return {"PK": _s(f"APPROVAL#{approval_id}"), "SK": _s(META)}


def _backend_key(backend_job_name: str) -> Item:
    return {"PK": _s(f"BACKEND#{backend_job_name}"), "SK": _s(META)}


def _pool_key(pool: str) -> Item:
    return {"PK": _s(f"POOL#{pool}"), "SK": _s(META)}


def backend_pointer_item(version: JobVersion) -> Item:
    """The item that finds ``version`` by its backend job name with a consistent GetItem
    (the backend-name index is eventually consistent: an early event could miss it)."""
    assert version.backend_job_name, "only a version that names its backend job"
    return {
        **_backend_key(version.backend_job_name),
        "job": _s(version.job),
        "number": _n(version.number),
    }


def _job_item(job: TrainingJob) -> Item:
    when = f"{_ts(job.created_at)}#{job.name}"
    item = {
        **_job_key(job.name),
        "latest_version": _n(1),
        "body": _s(job.model_dump_json(exclude={"latest_version"})),
        f"{ALL_JOBS_INDEX}PK": _s("JOBS"),
        f"{ALL_JOBS_INDEX}SK": _s(when),
    }
    if job.channel:
        item[f"{CHANNEL_INDEX}PK"] = _s(f"CHANNEL#{job.channel}")
        item[f"{CHANNEL_INDEX}SK"] = _s(when)
    return item


def _version_state(version: JobVersion) -> dict[str, dict[str, str] | None]:
    """The attributes ``save_version`` rewrites; ``None`` means the attribute must be absent.

    Index attributes follow the state: a terminal version leaves the sparse active index, a
    version gets into the ended index once it has ``ended_at``.
    """
    tail = f"{version.job}#{version.number:06d}"
    active = not version.status.terminal
    # The same sparse index lists ended versions whose outbox isn't empty (under OUTBOX#),
    # so the reconcile finds undelivered notices without a scan.
    undelivered = not active and bool(version.outbox)
    shard = zlib.crc32(tail.encode()) % ACTIVE_SHARDS
    part = f"ACTIVE#{shard}" if active else f"OUTBOX#{shard}" if undelivered else None
    ended = _ts(version.ended_at) if version.ended_at else None
    backend = version.backend_job_name
    holds_slot = version.pool_slot and active
    return {
        "state": _s(version.model_dump_json(exclude=_STATE_EXCLUDE)),
        # Present while the version holds a place of its pool: the write that gives the
        # place back is conditional on it, so a place is never given back twice.
        "slot": _s(version.spec.pool) if holds_slot else None,
        "status": _s(version.status.value),
        f"{ACTIVE_INDEX}PK": _s(part) if part else None,
        f"{ACTIVE_INDEX}SK": _s(f"{_ts(version.created_at)}#{tail}") if part else None,
        f"{BACKEND_INDEX}PK": _s(f"BACKEND#{backend}") if backend else None,
        f"{ENDED_INDEX}PK": _s(f"ENDED#{ended[:10]}") if ended else None,
        f"{ENDED_INDEX}SK": _s(f"{ended}#{tail}") if ended else None,
    }


def _version_item(version: JobVersion) -> Item:
    state = {k: v for k, v in _version_state(version).items() if v is not None}
    return {
        **_version_key(version.job, version.number),
        "revision": _n(version.revision),
        "fixed": _s(version.model_dump_json(include=FIXED_FIELDS)),
        **state,
    }


def _approval_item(approval: Approval) -> Item:
    data = approval.model_dump(mode="json")
    item = {
        **_approval_key(approval.id),
        "body": _s(approval.model_dump_json(exclude=set(_APPROVAL_MUTABLE))),
    }
    item.update({k: _s(data[k]) for k in _APPROVAL_MUTABLE if data[k] is not None})
    return item


# -- decoding ---------------------------------------------------------------------------


def _version(item: Item) -> JobVersion:
    data = {
        **json.loads(item["fixed"]["S"]),
        **json.loads(item["state"]["S"]),
        "revision": int(item["revision"]["N"]),
    }
    return JobVersion.model_validate(data)


def _job(item: Item) -> TrainingJob:
    data = {**json.loads(item["body"]["S"]), "latest_version": int(item["latest_version"]["N"])}
    return TrainingJob.model_validate(data)


def _approval(item: Item) -> Approval:
    data = json.loads(item["body"]["S"])
    data.update({k: item[k]["S"] for k in _APPROVAL_MUTABLE if k in item})
    return Approval.model_validate(data)


# -- errors -----------------------------------------------------------------------------


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _check_failed(exc: ClientError) -> bool:
    return _code(exc) == "ConditionalCheckFailedException"


def _cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item outcome of a cancelled transaction (``"None"`` for items that were fine).

    Re-raises ``exc`` when it is not a cancellation: that is not ours to interpret.
    """
    if _code(exc) != "TransactionCanceledException":
        raise exc
    return [r.get("Code") or "None" for r in exc.response.get("CancellationReasons", [])]


def _backoff(attempt: int) -> None:
    # "Full jitter": concurrent losers spread out instead of colliding again in lockstep.
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


class DynamoStore:
    """A :class:`~bot.ports.JobStore` over one DynamoDB table.

    ``client`` is a low-level boto3 DynamoDB client (thread-safe; built with adaptive retries
    when not given). ``clock`` bounds the days :meth:`list_ended_since` looks at.
    """

    def __init__(self, table_name: str, *, client: Any = None, clock: Clock | None = None) -> None:
        self.table_name = table_name
        self._client = client if client is not None else default_client()
        self._clock = clock or SystemClock()

    # -- low-level helpers ------------------------------------------------------------

    def _get(self, key: Item) -> Item | None:
        response = self._client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return response.get("Item")

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        """Every item a Query matches, following pagination."""
        kwargs["TableName"] = self.table_name
        while True:
            page = self._client.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_new(self, item: Item) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

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
        latest = 0 if new_job is not None else self._latest_version(draft.job)
        for attempt in range(MAX_ALLOCATION_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            stored = draft.model_copy(update={"number": latest + 1, "revision": 1})
            try:
                self._client.transact_write_items(TransactItems=self._allocation(stored, new_job))
            except ClientError as exc:
                codes = _cancellation_codes(exc)
                if stored.request_key is not None and codes[2] == _CHECK_FAILED:
                    return self._replayed(stored.request_key, exc), False
                if codes[0] == _CHECK_FAILED:
                    latest = self._counter_moved(draft.job, new_job, exc)
                elif not set(codes) <= _RETRYABLE | {"None"}:
                    raise
                continue
            return stored, True
        raise Conflict(
            f"Too many versions of `{draft.job}` are being started at once.",
            hint="Try again in a moment.",
        )

    def _allocation(self, stored: JobVersion, new_job: TrainingJob | None) -> list[dict]:
        """The transaction items: [job counter or new job, version, request-key guard]."""
        if new_job is not None:
            first = self._put_new(_job_item(new_job))
        else:
            first = {
                "Update": {
                    "TableName": self.table_name,
                    "Key": _job_key(stored.job),
                    "UpdateExpression": "SET latest_version = :next",
                    "ConditionExpression": "latest_version = :latest",
                    "ExpressionAttributeValues": {
                        ":latest": _n(stored.number - 1),
                        ":next": _n(stored.number),
                    },
                    # The winner's counter comes back with the failure: no re-read needed.
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        items = [first, self._put_new(_version_item(stored))]
        if stored.request_key is not None:
            guard = {
                **_guard_key(stored.request_key),
                "job": _s(stored.job),
                "number": _n(stored.number),
            }
            items.append(self._put_new(guard))
        return items

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

    def _by_request_key(self, request_key: str) -> JobVersion | None:
        guard = self._get(_guard_key(request_key))
        if guard is None:
            return None
        return self.get_version(guard["job"]["S"], int(guard["number"]["N"]))

    def _replayed(self, request_key: str, exc: ClientError) -> JobVersion:
        version = self._by_request_key(request_key)
        if version is None:  # the guard failed, so it exists; guards are never deleted
            raise Conflict(f"Request `{request_key}` is in an inconsistent state.") from exc
        return version

    def get_job(self, name: str) -> TrainingJob:
        item = self._get(_job_key(name))
        if item is None:
            raise NotFound(f"No job named `{name}`.")
        return _job(item)

    def list_jobs(self, *, channel: str | None = None, limit: int = 50) -> list[TrainingJob]:
        """Newest first; all channels when ``channel`` is None."""
        if limit < 1:
            return []  # Query rejects Limit=0
        index, partition = (
            (ALL_JOBS_INDEX, "JOBS") if channel is None else (CHANNEL_INDEX, f"CHANNEL#{channel}")
        )
        items = self._query(
            IndexName=index,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": f"{index}PK"},
            ExpressionAttributeValues={":pk": _s(partition)},
            ScanIndexForward=False,
            Limit=limit,
        )
        jobs: list[TrainingJob] = []
        for item in items:
            if len(jobs) >= limit:
                break
            jobs.append(_job(item))
        return jobs

    def get_version(self, job: str, number: int) -> JobVersion:
        item = self._get(_version_key(job, number))
        if item is None:
            raise NotFound(f"No version {number} of job `{job}`.")
        return _version(item)

    def list_versions(self, job: str) -> list[JobVersion]:
        """Oldest first. ``NotFound`` if the job does not exist.

        One query reads the job's whole partition: its META item and every ``V#`` item.
        """
        items = list(
            self._query(
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": _s(f"JOB#{job}")},
                ConsistentRead=True,
            )
        )
        if not any(item["SK"]["S"] == META for item in items):
            raise NotFound(f"No job named `{job}`.")
        return [_version(item) for item in items if item["SK"]["S"].startswith("V#")]

    def _version_update(self, version: JobVersion, *, releasing: bool = False) -> dict:
        """The Update (compare-and-set on ``revision``) that writes ``version``'s state;
        ``releasing`` also requires the stored version to hold a pool place."""
        state = _version_state(version)
        names = {f"#{k}": k for k in state}
        present = {k: v for k, v in state.items() if v is not None}
        sets = ["revision = :next", *(f"#{k} = :{k}" for k in present)]
        removes = [f"#{k}" for k, v in state.items() if v is None]
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        condition = "revision = :revision"
        if releasing:
            condition += " AND attribute_exists(#slot)"
        return {
            "TableName": self.table_name,
            "Key": _version_key(version.job, version.number),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                ":revision": _n(version.revision),
                ":next": _n(version.revision + 1),
                **{f":{k}": v for k, v in present.items()},
            },
        }

    def _transact(self, items: list[dict]) -> None:
        """One transaction, retried while DynamoDB says "try again". A false condition
        raises the ``ClientError`` (read it with ``_cancellation_codes``)."""
        for attempt in range(MAX_TRANSACT_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                codes = _cancellation_codes(exc)
                if attempt + 1 == MAX_TRANSACT_ATTEMPTS or not set(codes) <= _RETRYABLE | {
                    "None"
                }:
                    raise
                continue
            return

    def save_version(self, version: JobVersion) -> JobVersion:
        """Compare-and-set on ``revision``; fields fixed at creation are kept as stored.

        A version that ends while holding a pool place gives it back in the same
        transaction (the pool's counter goes down by one).
        """
        if version.pool_slot and version.status.terminal:
            return self._save_releasing(version.model_copy(update={"pool_slot": False}))
        try:
            response = self._client.update_item(
                **self._version_update(version),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _check_failed(exc):
                raise
            self._raise_stale(version, exc)
        return _version(response["Attributes"])

    def _save_releasing(self, version: JobVersion) -> JobVersion:
        release = {
            "Update": {
                "TableName": self.table_name,
                "Key": _pool_key(version.spec.pool),
                "UpdateExpression": "ADD active :minus_one",
                "ExpressionAttributeValues": {":minus_one": _n(-1)},
            }
        }
        try:
            self._transact([{"Update": self._version_update(version, releasing=True)}, release])
        except ClientError as exc:
            if _cancellation_codes(exc)[0] != _CHECK_FAILED:
                raise
            self._raise_stale(version, exc)
        return version.model_copy(update={"revision": version.revision + 1})

    def claim_launch(self, version: JobVersion, *, slots: int | None = None) -> JobVersion | None:
        """See :meth:`bot.ports.JobStore.claim_launch`. One transaction: the version
        (compare-and-set), the ``BACKEND#<name>`` pointer (must be new) and, with ``slots``,
        the pool's counter (``active < slots``)."""
        if slots is not None:
            version = version.model_copy(update={"pool_slot": True})
        items = [{"Update": self._version_update(version)},
                 self._put_new(backend_pointer_item(version))]
        if slots is not None:
            items.append({
                "Update": {
                    "TableName": self.table_name,
                    "Key": _pool_key(version.spec.pool),
                    "UpdateExpression": "SET active = if_not_exists(active, :zero) + :one",
                    "ConditionExpression": "attribute_not_exists(active) OR active < :slots",
                    "ExpressionAttributeValues": {
                        ":zero": _n(0), ":one": _n(1), ":slots": _n(slots),
                    },
                }
            })
        try:
            self._transact(items)
        except ClientError as exc:
            codes = _cancellation_codes(exc)
            if codes[0] == _CHECK_FAILED:
                self._raise_stale(version, exc)
            if codes[1] == _CHECK_FAILED:
                raise Conflict(
                    f"Backend job name `{version.backend_job_name}` is already in use."
                ) from exc
            if len(codes) > 2 and codes[2] == _CHECK_FAILED:
                return None  # every place of the pool is held
            raise
        return version.model_copy(update={"revision": version.revision + 1})

    def _raise_stale(self, version: JobVersion, exc: ClientError) -> NoReturn:
        old = exc.response.get("Item") or self._get(_version_key(version.job, version.number))
        if old is None:
            raise NotFound(f"No version {version.number} of job `{version.job}`.") from exc
        raise StaleWrite(
            f"{version.label} changed meanwhile (revision {old['revision']['N']}, "
            f"written from {version.revision})."
        ) from exc

    def find_by_backend_name(self, backend_job_name: str) -> JobVersion | None:
        """Through the ``BACKEND#<name>`` pointer written with the launch's claim, then the
        version, both consistent reads. Versions named before pointers existed are found
        through the backend-name index (keys only)."""
        pointer = self._get(_backend_key(backend_job_name))
        if pointer is not None:
            item = self._get(_version_key(pointer["job"]["S"], int(pointer["number"]["N"])))
            return None if item is None else _version(item)
        items = self._query(
            IndexName=BACKEND_INDEX,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": f"{BACKEND_INDEX}PK"},
            ExpressionAttributeValues={":pk": _s(f"BACKEND#{backend_job_name}")},
        )
        for key in items:
            item = self._get({"PK": key["PK"], "SK": key["SK"]})
            if item is not None:
                return _version(item)
        return None

    def list_active(self) -> list[JobVersion]:
        """Non-terminal versions, oldest first: every shard of the sparse active index."""
        return self._list_sparse("ACTIVE")

    def list_undelivered(self) -> list[JobVersion]:
        """Ended versions with an outbox, oldest first (the same index, ``OUTBOX#`` keys)."""
        return self._list_sparse("OUTBOX")

    def _list_sparse(self, prefix: str) -> list[JobVersion]:
        items: list[Item] = []
        for shard in range(ACTIVE_SHARDS):
            items += self._query(
                IndexName=ACTIVE_INDEX,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": f"{ACTIVE_INDEX}PK"},
                ExpressionAttributeValues={":pk": _s(f"{prefix}#{shard}")},
            )
        items.sort(key=lambda item: item[f"{ACTIVE_INDEX}SK"]["S"])
        return [_version(item) for item in items]

    def list_ended_since(self, since: datetime) -> list[JobVersion]:
        """Versions with ``ended_at >= since``, earliest end first.

        One query per UTC day from ``since`` to tomorrow (tomorrow absorbs clock skew between
        the writer and this reader), so callers should ask for short windows.
        """
        lower = _ts(since)
        day = datetime.fromisoformat(lower[:10]).date()
        last = max(day, self._clock.now().astimezone(UTC).date()) + timedelta(days=1)
        versions: list[JobVersion] = []
        while day <= last:
            versions += map(
                _version,
                self._query(
                    IndexName=ENDED_INDEX,
                    KeyConditionExpression="#pk = :pk AND #sk >= :since",
                    ExpressionAttributeNames={
                        "#pk": f"{ENDED_INDEX}PK",
                        "#sk": f"{ENDED_INDEX}SK",
                    },
                    ExpressionAttributeValues={
                        ":pk": _s(f"ENDED#{day.isoformat()}"),
                        ":since": _s(lower),
                    },
                ),
            )
            day += timedelta(days=1)
        return versions

    # -- presets ----------------------------------------------------------------------

    def create_preset(self, preset: Preset) -> Preset:
        """``Conflict`` if a preset of that name exists in the scope."""
        item = {**_preset_key(preset.scope, preset.name), "body": _s(preset.model_dump_json())}
        try:
            self._client.put_item(**self._put_new(item)["Put"])
        except ClientError as exc:
            if not _check_failed(exc):
                raise
            raise Conflict(f"A preset named `{preset.name}` already exists.") from exc
        return preset

    def get_preset(self, scope: str, name: str) -> Preset:
        item = self._get(_preset_key(scope, name))
        if item is None:
            raise NotFound(f"No preset named `{name}`.")
        return Preset.model_validate_json(item["body"]["S"])

    def list_presets(self, scope: str) -> list[Preset]:
        """Sorted by name (the sort key's byte order)."""
        items = self._query(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": _s(f"PRESET#{scope}")},
            ConsistentRead=True,
        )
        return [Preset.model_validate_json(item["body"]["S"]) for item in items]

    def delete_preset(self, scope: str, name: str) -> None:
        """``NotFound`` if there is no such preset."""
        try:
            self._client.delete_item(
                TableName=self.table_name,
                Key=_preset_key(scope, name),
                ConditionExpression="attribute_exists(PK)",
            )
        except ClientError as exc:
            if not _check_failed(exc):
                raise
            raise NotFound(f"No preset named `{name}`.") from exc

    # -- approvals --------------------------------------------------------------------

    def create_approval(self, approval: Approval) -> Approval:
        """``Conflict`` if an approval with that id exists."""
        try:
            self._client.put_item(**self._put_new(_approval_item(approval))["Put"])
        except ClientError as exc:
            if not _check_failed(exc):
                raise
            raise Conflict(f"Approval `{approval.id}` already exists.") from exc
        return approval

    def get_approval(self, approval_id: str) -> Approval:
        item = self._get(_approval_key(approval_id))
        if item is None:
            raise NotFound(f"No approval request `{approval_id}`.")
        return _approval(item)

    def _decide_update(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime, note: str
    ) -> dict:
        return {
            "TableName": self.table_name,
            "Key": _approval_key(approval_id),
            "UpdateExpression": "SET #d = :d, #by = :by, #at = :at, #note = :note",
            "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(#d)",
            "ExpressionAttributeNames": {
                "#d": "decision",
                "#by": "decided_by",
                "#at": "decided_at",
                "#note": "decision_note",
            },
            "ExpressionAttributeValues": {
                ":d": _s(decision.value),
                ":by": _s(by),
                ":at": _s(at.isoformat()),
                ":note": _s(note),
            },
        }

    def decide_approval(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime, note: str = ""
    ) -> Approval:
        """Record the decision if none was recorded yet; ``Conflict`` naming who decided."""
        try:
            response = self._client.update_item(
                **self._decide_update(approval_id, decision, by=by, at=at, note=note),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _check_failed(exc):
                raise
            self._raise_decided(approval_id, exc)
        return _approval(response["Attributes"])

    def decide_approval_and_version(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime,
        version: JobVersion, note: str = "",
    ) -> tuple[Approval, JobVersion]:
        """See :meth:`bot.ports.JobStore.decide_approval_and_version`: one transaction, the
        approval conditional on being undecided, the version on its revision."""
        items = [
            {"Update": self._decide_update(approval_id, decision, by=by, at=at, note=note)},
            {"Update": self._version_update(version)},
        ]
        try:
            self._transact(items)
        except ClientError as exc:
            codes = _cancellation_codes(exc)
            if codes[0] == _CHECK_FAILED:
                self._raise_decided(approval_id, exc)
            if codes[1] == _CHECK_FAILED:
                self._raise_stale(version, exc)
            raise
        return self.get_approval(approval_id), version.model_copy(
            update={"revision": version.revision + 1})

    def _raise_decided(self, approval_id: str, exc: ClientError) -> NoReturn:
        old = exc.response.get("Item") or self._get(_approval_key(approval_id))
        if old is None:
            raise NotFound(f"No approval request `{approval_id}`.") from exc
        earlier = _approval(old)
        raise Conflict(
            f"This request was already {earlier.decision} by {earlier.decided_by}."
        ) from exc

    def set_approval_message(self, approval_id: str, *, channel: str, ts: str) -> Approval:
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=_approval_key(approval_id),
                UpdateExpression="SET #channel = :channel, #ts = :ts",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#channel": "channel", "#ts": "message_ts"},
                ExpressionAttributeValues={":channel": _s(channel), ":ts": _s(ts)},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _check_failed(exc):
                raise
            raise NotFound(f"No approval request `{approval_id}`.") from exc
        return _approval(response["Attributes"])

    def __repr__(self) -> str:
        return f"DynamoStore({self.table_name!r})"
