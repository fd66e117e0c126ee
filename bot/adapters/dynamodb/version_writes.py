"""The writes of a version that take or give back what it holds of the store's.

A version holds places of its pool and of caps, and a charge to the ledger: ``pool_slot``,
``caps``, ``charged_usd``/``charge_periods``/``charge_keys``/``charge_settled``, the store's
fields (:data:`OWNED`). Every write of a version is compare-and-set on its revision and also
requires the stored version to hold what the writer's copy says it holds (the item's
``slot``/``caps``/``charge`` attributes, :func:`~.items.holdings`): a writer whose copy
disagrees (it changed those fields) gets the stored ones instead, so only the store moves
them, and in the same transaction as their counters:

- the launch's claim (:meth:`VersionWrites.claim`): the version, its ``BACKEND#`` pointer
  (new), one place of its pool (``POOL#``, ``active < slots``) and of each cap (``CAP#``,
  ``active < limit``), and, when it is charged for the first time, ``committed_usd`` of each
  of its ledger counters. A full pool or cap cancels the transaction: :class:`Full` names it;
- the write that ends it: the version (places cleared, ``charge_settled``), each place given
  back, each counter's committed charge taken back and its cost added to spent. The ending
  write is compare-and-set, so however often the end is reported, it happens once.

A write that gives nothing back and takes nothing is one conditional UpdateItem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from botocore.exceptions import ClientError

from bot.adapters.dynamodb.items import backend_pointer_item, version_from_item
from bot.adapters.dynamodb.keys import Item
from bot.adapters.dynamodb.reads import TableReads
from bot.adapters.dynamodb.spend import cap_claim, cap_release, charge_items, settle_items
from bot.adapters.dynamodb.transactions import (
    CHECK_FAILED,
    cancellation_codes,
    check_failed,
    transact,
)
from bot.adapters.dynamodb.writes import pool_claim, pool_release, put_new, version_update
from bot.domain import Conflict, JobVersion, NotFound, StaleWrite
from bot.domain.cost import Full

__all__ = ["NOTHING_HELD", "OWNED", "VersionWrites", "ended", "kept"]

OWNED = ("pool_slot", "caps", "charged_usd", "charge_periods", "charge_keys", "charge_settled")
# What a new version holds: nothing (a draft's own values are not the store's).
NOTHING_HELD: dict[str, object] = {
    "pool_slot": False, "caps": [], "charged_usd": None, "charge_periods": [],
    "charge_keys": [], "charge_settled": False}
# A writer's copy that disagrees with the stored holdings is written again with the stored
# ones; a second disagreement means the version changed meanwhile (StaleWrite).
_ATTEMPTS = 2


def kept(version: JobVersion, stored: JobVersion) -> JobVersion:
    """``version`` holding what ``stored`` holds."""
    return version.model_copy(update={k: getattr(stored, k) for k in OWNED})


def ended(version: JobVersion) -> JobVersion:
    """``version`` as its ending write stores it: no places held, its charge settled."""
    if not version.status.terminal:
        return version
    return version.model_copy(update={
        "pool_slot": False, "caps": [],
        "charge_settled": version.charge_settled or version.charged_usd is not None})


@dataclass
class _Plan:
    """One write: its items, what each item's failed condition means, what it stores."""

    items: list[dict] = field(default_factory=list)
    # Per item: "head", "version", "pointer", a Full (a cap's place), or None.
    meaning: list[object] = field(default_factory=list)
    result: JobVersion | None = None

    def add(self, item: dict, meaning: object = None) -> None:
        self.items.append(item)
        self.meaning.append(meaning)


@dataclass(frozen=True)
class _Claim:
    slots: int | None
    caps: Mapping[str, int]


class VersionWrites:
    """Version writes of :class:`~bot.adapters.dynamodb.store.DynamoStore`."""

    def __init__(self, client: Any, reads: TableReads) -> None:
        self._client = client
        self._reads = reads
        self._table = reads.table_name

    def save(self, version: JobVersion) -> JobVersion:
        """See :meth:`bot.ports.JobStore.save_version`."""
        saved = self._write(version)
        assert isinstance(saved, JobVersion)
        return saved

    def claim(self, version: JobVersion, *, slots: int | None,
              caps: Mapping[str, int] | None) -> JobVersion | Full:
        """See :meth:`bot.ports.JobStore.claim_launch`."""
        return self._write(version, claim=_Claim(slots, dict(caps or {})))

    def save_after(self, head: dict, version: JobVersion,
                   refused: Callable[[ClientError], NoReturn]) -> JobVersion:
        """Save ``version`` in one transaction after ``head`` (an ``Update``); ``refused``
        raises when ``head``'s condition is false."""
        saved = self._write(version, head=(head, refused))
        assert isinstance(saved, JobVersion)
        return saved

    def _write(self, version: JobVersion, *, claim: _Claim | None = None,
               head: tuple[dict, Callable[[ClientError], NoReturn]] | None = None,
               ) -> JobVersion | Full:
        stored: JobVersion | None = None
        for _ in range(_ATTEMPTS):
            plan = self._plan(version, stored, claim)
            old: Item | Full | None
            if head is None and len(plan.items) == 1:
                old = self._update(plan)
            else:
                if head is not None:
                    plan.items.insert(0, head[0])
                    plan.meaning.insert(0, "head")
                old = self._transact(plan, head[1] if head else None)
            if old is None:
                assert plan.result is not None
                return plan.result
            if isinstance(old, Full):
                return old
            if int(old["revision"]["N"]) != version.revision:
                self._stale(version, old)
            stored = version_from_item(old)  # same revision, other holdings: take them
        raise StaleWrite(f"{version.label} changed meanwhile; read it again.")

    def _plan(self, version: JobVersion, stored: JobVersion | None,
              claim: _Claim | None) -> _Plan:
        """The items that write ``version``, holding what ``stored`` holds when that is
        known (else what ``version`` says it holds)."""
        held = version if stored is None else kept(version, stored)
        target, charging = held, False
        places = _Plan()
        if claim is not None:
            # A claim charges a version never charged: at first try, one whose copy carries
            # a charge (the condition then requires the stored one to have none).
            charging = version.charged_usd is not None and (
                stored is None or stored.charged_usd is None)
            if charging:
                target = held.model_copy(update={
                    "charged_usd": version.charged_usd, "charge_settled": False,
                    "charge_periods": list(dict.fromkeys(version.charge_periods)),
                    "charge_keys": list(dict.fromkeys(version.charge_keys))})
            target, places = self._places(target, claim, charging)
        written = ended(target)
        plan = _Plan()
        plan.add({"Update": version_update(self._table, written, held=held, charging=charging)},
                 "version")
        for item, meaning in zip(places.items, places.meaning, strict=True):
            plan.add(item, meaning)
        if target.status.terminal:
            if target.pool_slot:
                plan.add(pool_release(self._table, target.spec.pool))
            for cap in target.caps:
                plan.add(cap_release(self._table, cap))
            if target.charged_usd is not None and not target.charge_settled:
                for item in settle_items(self._table, target):
                    plan.add(item)
        plan.result = written.model_copy(update={"revision": version.revision + 1})
        return plan

    def _places(self, version: JobVersion, claim: _Claim,
                charging: bool) -> tuple[JobVersion, _Plan]:
        """What a claim adds: the backend-name pointer, the places ``version`` doesn't hold
        yet, the charge; and ``version`` holding them."""
        places = _Plan()
        places.add(put_new(self._table, backend_pointer_item(version)), "pointer")
        if claim.slots is not None and not version.pool_slot:
            places.add(pool_claim(self._table, version.spec.pool, slots=claim.slots),
                       Full(cap=f"pool:{version.spec.pool}", limit=claim.slots))
            version = version.model_copy(update={"pool_slot": True})
        for cap, limit in claim.caps.items():
            if cap not in version.caps:
                places.add(cap_claim(self._table, cap, limit=limit), Full(cap=cap, limit=limit))
                version = version.model_copy(update={"caps": [*version.caps, cap]})
        if charging:
            for item in charge_items(self._table, version):
                places.add(item)
        return version, places

    def _update(self, plan: _Plan) -> Item | None:
        """The plan's one Update; the stored item when its condition was false."""
        request = plan.items[0]["Update"]
        try:
            response = self._client.update_item(
                **request, ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            if not check_failed(exc):
                raise
            key = request["Key"]
            return exc.response.get("Item") or self._reads.get(key) or self._missing(key, exc)
        plan.result = version_from_item(response["Attributes"])
        return None

    def _transact(self, plan: _Plan,
                  refused: Callable[[ClientError], NoReturn] | None) -> Item | Full | None:
        """Run the plan's transaction: None when it was written; the stored version item
        when its condition was false; the first full cap; or the port's error."""
        try:
            transact(self._client, plan.items)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            failed = [m for m, code in zip(plan.meaning, codes, strict=False)
                      if code == CHECK_FAILED]
            if "head" in failed and refused is not None:
                refused(exc)
            if "version" in failed:
                key = plan.items[plan.meaning.index("version")]["Update"]["Key"]
                return self._reads.get(key) or self._missing(key, exc)
            if "pointer" in failed:
                assert plan.result is not None
                raise Conflict(f"Backend job name `{plan.result.backend_job_name}` is "
                               "already in use.") from exc
            full = next((m for m in failed if isinstance(m, Full)), None)
            if full is not None:
                return full
            raise
        return None

    def _missing(self, key: Item, exc: ClientError) -> NoReturn:
        job, number = key["PK"]["S"].partition("#")[2], key["SK"]["S"].partition("#")[2]
        raise NotFound(f"No version {int(number)} of job `{job}`.") from exc

    def _stale(self, version: JobVersion, old: Item) -> NoReturn:
        raise StaleWrite(f"{version.label} changed meanwhile (revision {old['revision']['N']}, "
                         f"written from {version.revision}).")
