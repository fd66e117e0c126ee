"""Sweeps in the single table: created with their job, saved by compare-and-set.

Items (keys in :mod:`.keys`)::

    item           PK                  SK       what
    sweep          SWEEP#<name>        META     ``fixed`` (set at creation), ``state``,
                                                ``revision``, ``status``, ``backend_name``;
                                                GSI1PK=SWEEPS#ACTIVE, GSI1SK=<created_at>#<name>
                                                while it runs or its outbox isn't empty
    sweep guard    REQ#<request key>   SWEEP    ``sweep``: the sweep created under that key
    sweep backend  BACKEND#<name>      SWEEP    ``sweep``: the sweep whose backend (tuning)
                                                job has that name

The guard and the pointer sit in the partitions of the versions' ones (``REQ#``/``BACKEND#``)
under their own sort key, so a sweep's key or name never clashes with a version's. Creating
a sweep is one transaction of its job (counter at 0), the sweep, the guard and (when named
already) the pointer; a save is one conditional UpdateItem, or a transaction with the pointer
when it names the backend job for the first time. Active sweeps are one Query of the active
index's ``SWEEPS#ACTIVE`` partition (sparse: the attributes go when the sweep is done).
"""

from __future__ import annotations

from typing import Any, NoReturn

from botocore.exceptions import ClientError

from bot.adapters.dynamodb.items import sweep_from_item, sweep_state
from bot.adapters.dynamodb.keys import (
    ACTIVE_SWEEPS,
    Item,
    number,
    sweep_backend_key,
    sweep_guard_key,
    sweep_key,
)
from bot.adapters.dynamodb.reads import TableReads
from bot.adapters.dynamodb.transactions import (
    CHECK_FAILED,
    cancellation_codes,
    check_failed,
    conditional_update,
    transact,
)
from bot.adapters.dynamodb.writes import (
    sweep_backend_claim,
    sweep_creation,
    sweep_name_released,
    sweep_update,
)
from bot.adapters.dynamodb_schema import ACTIVE_INDEX
from bot.domain import Conflict, NotFound, StaleWrite, TrainingJob
from bot.domain.sweep import Sweep

__all__ = ["Sweeps"]

_JOB, _SWEEP = range(2)  # the creation transaction's first items
# A claim takes over the pointer of a sweep that gave its backend name up; should the name
# change hands again meanwhile, it tries again, this many times in all.
_MAX_TAKEOVERS = 3


def _reason_item(exc: ClientError, index: int) -> Item | None:
    """The item that failed the transaction's ``index``-th condition, when DynamoDB sent it."""
    reasons = exc.response.get("CancellationReasons", [])
    return reasons[index].get("Item") if len(reasons) > index else None


class Sweeps:
    """The sweep part of :class:`~bot.adapters.dynamodb.store.DynamoStore`."""

    def __init__(self, client: Any, reads: TableReads) -> None:
        self._client = client
        self._reads = reads
        self._table = reads.table_name

    def create(self, sweep: Sweep, job: TrainingJob) -> tuple[Sweep, bool]:
        """See :meth:`bot.ports.JobStore.create_sweep`: one transaction; a false condition
        on the guard means the request was served already, on the job that the name is
        taken."""
        if job.name != sweep.name:
            raise ValueError(f"job {job.name!r} is not the sweep's job {sweep.name!r}")
        if sweep.request_key is not None:
            replayed = self._by_request_key(sweep.request_key)
            if replayed is not None:
                return replayed, False
        stored = sweep.model_copy(update={"revision": 1})
        try:
            self._transact_claiming(sweep_creation(self._table, stored, job), stored)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if stored.request_key is not None and codes[2] == CHECK_FAILED:
                return self._replayed(stored.request_key, exc), False
            if CHECK_FAILED in (codes[_JOB], codes[_SWEEP]):
                raise Conflict(f"A job named `{job.name}` already exists.") from exc
            raise
        return stored, True

    def _by_request_key(self, request_key: str) -> Sweep | None:
        guard = self._reads.get(sweep_guard_key(request_key))
        return None if guard is None else self.get(guard["sweep"]["S"])

    def _replayed(self, request_key: str, exc: ClientError) -> Sweep:
        guard = _reason_item(exc, 2)
        if guard is not None:
            return self.get(guard["sweep"]["S"])
        stored = self._by_request_key(request_key)
        if stored is None:  # the guard failed, so it exists; guards are never deleted
            raise Conflict(f"Request `{request_key}` is in an inconsistent state.") from exc
        return stored

    def get(self, name: str) -> Sweep:
        item = self._reads.get(sweep_key(name))
        if item is None:
            raise NotFound(f"There is no sweep `{name}`.")
        return sweep_from_item(item)

    def save(self, sweep: Sweep) -> Sweep:
        """See :meth:`bot.ports.JobStore.save_sweep`. One conditional UpdateItem while the
        stored sweep already has the backend name (or there is none); the save that names
        the backend job first is a transaction with its pointer, which must be new (or the
        sweep's)."""
        if not sweep.backend_name:
            return sweep_from_item(conditional_update(
                self._client, sweep_update(self._table, sweep),
                lambda exc: self._raise_stale(sweep, exc)))
        try:
            response = self._client.update_item(
                **sweep_update(self._table, sweep, same_backend=True),
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return sweep_from_item(response["Attributes"])
        except ClientError as exc:
            if not check_failed(exc):
                raise
            old = exc.response.get("Item") or self._reads.get(sweep_key(sweep.name))
            if old is None or int(old["revision"]["N"]) != sweep.revision:
                self._raise_stale(sweep, exc, old)
        return self._save_naming(sweep, old)

    def _save_naming(self, sweep: Sweep, old: Item) -> Sweep:
        """Save ``sweep`` (read at the stored revision, ``old``) with its new backend name's
        pointer, in one transaction."""
        try:
            self._transact_claiming([{"Update": sweep_update(self._table, sweep)}], sweep)
        except ClientError as exc:
            if cancellation_codes(exc)[0] != CHECK_FAILED:
                raise
            self._raise_stale(sweep, exc)
        # The fixed fields never change after creation: the ones read are the ones stored.
        state = {k: v for k, v in sweep_state(sweep).items() if v is not None}
        return sweep_from_item({**old, **state, "revision": number(sweep.revision + 1)})

    def _transact_claiming(self, items: list[dict], sweep: Sweep) -> None:
        """Run ``items`` in one transaction with the claim of ``sweep``'s backend name (when
        it has one): a new pointer, the sweep's own, or the pointer of a sweep that has given
        the name up since (its item checked in the same transaction, so it can't take the
        name back meanwhile). ``Conflict`` while another sweep has the name; a false
        condition of ``items`` raises the ``ClientError`` for the caller to read."""
        name = sweep.backend_name
        if not name:
            transact(self._client, items)
            return
        holder: str | None = None
        for _ in range(_MAX_TAKEOVERS):
            claim = [sweep_backend_claim(self._table, sweep, holder=holder)]
            if holder is not None:
                claim.append(sweep_name_released(self._table, holder, name))
            try:
                transact(self._client, items + claim)
                return
            except ClientError as exc:
                codes = cancellation_codes(exc)
                if CHECK_FAILED in codes[:len(items)] or CHECK_FAILED not in codes[len(items):]:
                    raise
                pointer = (_reason_item(exc, len(items))
                           or self._reads.get(sweep_backend_key(name)))
                holder = None if pointer is None else pointer["sweep"]["S"]
                if holder == sweep.name:
                    holder = None
                elif holder is not None and self._has_name(holder, name):
                    raise Conflict(f"Backend name `{name}` is already in use.") from exc
        raise Conflict(f"Backend name `{name}` is being claimed by several sweeps at once.",
                       hint="Try again in a moment.")

    def _has_name(self, holder: str, backend_name: str) -> bool:
        item = self._reads.get(sweep_key(holder))
        return item is not None and item.get("backend_name") == {"S": backend_name}

    def _raise_stale(self, sweep: Sweep, exc: ClientError, old: Item | None = None) -> NoReturn:
        old = old or exc.response.get("Item") or self._reads.get(sweep_key(sweep.name))
        if old is None:
            raise NotFound(f"There is no sweep `{sweep.name}`.") from exc
        raise StaleWrite(f"{sweep.label} changed meanwhile (revision {old['revision']['N']}, "
                         f"written from {sweep.revision}).") from exc

    def active(self) -> list[Sweep]:
        """One Query of the active index's sweeps partition: oldest first (its sort key)."""
        items = self._reads.query_index(ACTIVE_INDEX, ACTIVE_SWEEPS)
        return [sweep_from_item(item) for item in items]

    def by_backend_name(self, backend_name: str) -> Sweep | None:
        """The pointer, then the sweep: two consistent GetItems. A pointer outlives a sweep's
        change of name; the sweep must still have it."""
        pointer = self._reads.get(sweep_backend_key(backend_name))
        if pointer is None:
            return None
        item = self._reads.get(sweep_key(pointer["sweep"]["S"]))
        sweep = None if item is None else sweep_from_item(item)
        return sweep if sweep is not None and sweep.backend_name == backend_name else None
