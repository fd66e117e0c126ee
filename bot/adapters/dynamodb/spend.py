"""Spend in the single table: caps' counters, the ledger, budgets and notices.

Items (keys in :mod:`.keys`)::

    item     PK                 SK                  what
    cap      CAP#<cap>          META                ``active``: the places of the cap
                                                    (``user:U1``, ``pool-channel:gpu-1:C1``…)
                                                    held by versions
    ledger   LEDGER#<period>    <key>               ``committed_usd``, ``spent_usd``,
                                                    ``spot_saving_usd``, ``versions`` of one
                                                    key (``total``, ``user:U1``…) in one period
                                                    (``2026-11``, ``2026-W48``)
    budget   BUDGETS            <scope>#<subject>   ``body``: the budget
    notice   NOTICE#<key>       META                ``told`` once told; else ``lease_until``,
                                                    the end of the live claim

A cap's place is taken in the transaction of the launch's claim (``active < limit``) and
given back in the transaction that ends the version, as a pool's place is (``POOL#``). The
ledger counters move in those same transactions (``ADD``: no read, no lost update); reading
some keys is one BatchGetItem, listing a period one Query of its partition, listing budgets
one Query of theirs. Amounts are written rounded to 6 decimals, and DynamoDB adds numbers as
decimals, so a charge taken back leaves exactly zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bot.adapters.dynamodb.keys import (
    BUDGETS,
    Item,
    budget_key,
    cap_key,
    ledger_key,
    ledger_partition,
    notice_key,
    number,
    record_key,
    text,
    timestamp,
)
from bot.adapters.dynamodb.reads import TableReads
from bot.adapters.dynamodb.transactions import backoff, check_failed
from bot.domain import JobVersion, NotFound
from bot.domain.cost import Budget, BudgetScope, LedgerEntry

__all__ = [
    "Spend",
    "cap_claim",
    "cap_release",
    "charge_items",
    "settle_items",
]

# BatchGetItem takes at most 100 keys; what it leaves unprocessed is asked for again.
_BATCH = 100
_MAX_BATCH_ROUNDS = 10


def _amount(usd: float) -> dict[str, str]:
    """A USD amount as a DynamoDB number, rounded to 6 decimals (never ``-0``)."""
    value = f"{round(usd, 6) + 0.0:.6f}".rstrip("0").rstrip(".")
    return {"N": "0" if value in ("", "-0") else value}


def _usd(item: Item, name: str) -> float:
    return round(float(item[name]["N"]), 6) + 0.0 if name in item else 0.0


def cap_claim(table: str, cap: str, *, limit: int) -> dict[str, Any]:
    """Take one of the cap's ``limit`` places: fails when all are held."""
    return {
        "Update": {
            "TableName": table,
            "Key": cap_key(cap),
            "UpdateExpression": "SET active = if_not_exists(active, :zero) + :one",
            "ConditionExpression": "attribute_not_exists(active) OR active < :limit",
            "ExpressionAttributeValues": {
                ":zero": number(0), ":one": number(1), ":limit": number(limit),
            },
        }
    }


def cap_release(table: str, cap: str) -> dict[str, Any]:
    """Give one place of the cap back. Unconditional: it goes in a transaction with the
    version update that requires the version to hold the place."""
    return {
        "Update": {
            "TableName": table,
            "Key": cap_key(cap),
            "UpdateExpression": "ADD active :minus_one",
            "ExpressionAttributeValues": {":minus_one": number(-1)},
        }
    }


def _ledger_add(table: str, period: str, key: str, *, committed: float = 0.0,
                spent: float = 0.0, saving: float = 0.0, versions: int = 0) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": ledger_key(period, key),
            "UpdateExpression": "ADD committed_usd :committed, spent_usd :spent, "
                                "spot_saving_usd :saving, versions :versions",
            "ExpressionAttributeValues": {
                ":committed": _amount(committed), ":spent": _amount(spent),
                ":saving": _amount(saving), ":versions": number(versions),
            },
        }
    }


def _counters(version: JobVersion) -> Iterable[tuple[str, str]]:
    """The (period, key) counters ``version`` is charged to, each once."""
    keys = dict.fromkeys(version.charge_keys)
    return [(p, k) for p in dict.fromkeys(version.charge_periods) for k in keys]


def charge_items(table: str, version: JobVersion) -> list[dict[str, Any]]:
    """Add ``version``'s charge to the committed spend of its counters."""
    usd = version.charged_usd or 0.0
    return [_ledger_add(table, p, k, committed=usd) for p, k in _counters(version)]


def settle_items(table: str, version: JobVersion) -> list[dict[str, Any]]:
    """Take ``version``'s charge back from its counters and add what it cost and saved."""
    return [
        _ledger_add(table, p, k, committed=-(version.charged_usd or 0.0),
                    spent=version.actual_cost_usd or 0.0,
                    saving=version.spot_saving_usd or 0.0, versions=1)
        for p, k in _counters(version)
    ]


def _entry(period: str, key: str, item: Item | None) -> LedgerEntry:
    if item is None:
        return LedgerEntry(period=period, key=key)
    return LedgerEntry(
        period=period, key=key, committed_usd=_usd(item, "committed_usd"),
        spent_usd=_usd(item, "spent_usd"), spot_saving_usd=_usd(item, "spot_saving_usd"),
        versions=int(item["versions"]["N"]) if "versions" in item else 0)


class Spend:
    """The ledger, budgets and notices of :class:`~bot.adapters.dynamodb.store.DynamoStore`
    (caps' places and charges move in the store's version writes, with
    :func:`cap_claim`, :func:`charge_items`…)."""

    def __init__(self, client: Any, reads: TableReads) -> None:
        self._client = client
        self._reads = reads
        self._table = reads.table_name

    # -- ledger -----------------------------------------------------------------------

    def get_ledger(self, period: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """One consistent BatchGetItem per 100 keys (and again for what it left)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Item] = {}
        for start in range(0, len(wanted), _BATCH):
            request = {self._table: {
                "Keys": [ledger_key(period, k) for k in wanted[start:start + _BATCH]],
                "ConsistentRead": True}}
            for attempt in range(_MAX_BATCH_ROUNDS):
                if attempt:
                    backoff(attempt)
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item["SK"]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RuntimeError(f"DynamoDB kept {period} ledger keys unprocessed")
        return {k: _entry(period, k, found.get(k)) for k in wanted}

    def list_ledger(self, period: str, dimension: str | None = None) -> list[LedgerEntry]:
        """One Query of the period's partition (of the keys that begin with the dimension),
        by key."""
        prefix = None if dimension is None else dimension.rstrip(":")
        entries = [_entry(period, item["SK"]["S"], item) for item in
                   self._reads.query_partition(ledger_partition(period), prefix=prefix)]
        return [e for e in entries if prefix is None or e.dimension == prefix]

    # -- budgets ----------------------------------------------------------------------

    def put_budget(self, budget: Budget) -> Budget:
        """Create or replace: the last one set wins."""
        self._client.put_item(TableName=self._table, Item={
            **budget_key(budget.scope.value, budget.subject),
            "body": text(budget.model_dump_json())})
        return budget

    def get_budget(self, scope: BudgetScope, subject: str) -> Budget | None:
        item = self._reads.get(budget_key(BudgetScope(scope).value, subject))
        return None if item is None else Budget.model_validate_json(item["body"]["S"])

    def list_budgets(self) -> list[Budget]:
        """One Query of the budgets' partition: by scope, then subject (the sort key)."""
        return [Budget.model_validate_json(item["body"]["S"])
                for item in self._reads.query_partition(BUDGETS)]

    def delete_budget(self, scope: BudgetScope, subject: str) -> None:
        try:
            self._client.delete_item(TableName=self._table,
                                     Key=budget_key(BudgetScope(scope).value, subject),
                                     ConditionExpression="attribute_exists(PK)")
        except ClientError as exc:
            if not check_failed(exc):
                raise
            raise NotFound(f"There is no {BudgetScope(scope).value} budget for "
                           f"`{subject}`.") from exc

    # -- notices ----------------------------------------------------------------------

    def claim_notice(self, key: str, *, now: datetime, lease: timedelta) -> bool:
        """One conditional UpdateItem: the notice was never told and its last claim (if
        any) ended."""
        try:
            self._client.update_item(
                TableName=self._table, Key=notice_key(key),
                UpdateExpression="SET #until = :until",
                ConditionExpression="attribute_not_exists(PK) OR "
                                    "(attribute_not_exists(#told) AND #until <= :now)",
                ExpressionAttributeNames={"#until": "lease_until", "#told": "told"},
                ExpressionAttributeValues={":until": text(timestamp(now + lease)),
                                           ":now": text(timestamp(now))})
        except ClientError as exc:
            if not check_failed(exc):
                raise
            return False
        return True

    def settle_notice(self, key: str, *, told: bool) -> None:
        """Told: marked for ever. Not told: the claim goes (a notice told meanwhile stays
        told)."""
        if told:
            self._client.update_item(
                TableName=self._table, Key=notice_key(key),
                UpdateExpression="SET #told = :told REMOVE #until",
                ExpressionAttributeNames={"#until": "lease_until", "#told": "told"},
                ExpressionAttributeValues={":told": {"BOOL": True}})
            return
        try:
            self._client.delete_item(TableName=self._table, Key=notice_key(key),
                                     ConditionExpression="attribute_not_exists(#told)",
                                     ExpressionAttributeNames={"#told": "told"})
        except ClientError as exc:
            if not check_failed(exc):
                raise

    # -- small documents by compare-and-set -----------------------------------------------

    def get_record(self, key: str) -> tuple[dict | None, int]:
        """One consistent GetItem."""
        found = self._client.get_item(TableName=self._table, Key=record_key(key),
                                      ConsistentRead=True).get("Item")
        if found is None:
            return None, 0
        return json.loads(found["body"]["S"]), int(found["revision"]["N"])

    def put_record(self, key: str, value: dict, *, revision: int) -> bool:
        """One conditional PutItem on the revision read."""
        condition = ("attribute_not_exists(PK)" if revision == 0 else "revision = :rev")
        values = {} if revision == 0 else {":rev": {"N": str(revision)}}
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**record_key(key), "revision": {"N": str(revision + 1)},
                      "body": text(json.dumps(value, sort_keys=True))},
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}))
        except ClientError as exc:
            if not check_failed(exc):
                raise
            return False
        return True
