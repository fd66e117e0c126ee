"""Spend in SQLite: caps' places, the ledger, budgets and notices.

A version holds places of its pool and of caps, and a charge to the ledger: ``pool_slot``,
``caps``, ``charged_usd``/``charge_periods``/``charge_keys``/``charge_settled``, the store's
fields (:data:`OWNED`). A write keeps them as stored (:func:`kept`); only the launch's claim
(:func:`claim`) takes places and charges, and only the write that ends the version
(:func:`end`) gives them back and settles, each in the caller's write transaction
(``BEGIN IMMEDIATE``), so two claims can't both see the last place and an end is settled
once (the version's write is compare-and-set on its revision).

The places held are counted, not kept as counters: the active versions (the partial index
``versions_active``) whose state holds the pool place or the cap. The ledger is one row per
(period, key), moved by upserts that round to 6 decimals; budgets and notices are a row each.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.adapters.sqlite.rows import timestamp
from bot.domain import JobVersion, NotFound
from bot.domain.cost import Budget, BudgetScope, Full, LedgerEntry

__all__ = [
    "NOTHING_HELD",
    "OWNED",
    "claim",
    "claim_notice",
    "delete_budget",
    "end",
    "get_budget",
    "get_ledger",
    "get_record",
    "kept",
    "list_budgets",
    "list_ledger",
    "put_budget",
    "put_record",
    "settle_notice",
]

OWNED = ("pool_slot", "caps", "charged_usd", "charge_periods", "charge_keys", "charge_settled")
# What a new version holds: nothing (a draft's own values are not the store's).
NOTHING_HELD: dict[str, object] = {
    "pool_slot": False, "caps": [], "charged_usd": None, "charge_periods": [],
    "charge_keys": [], "charge_settled": False}


def kept(version: JobVersion, stored: JobVersion) -> JobVersion:
    """``version`` holding what ``stored`` holds."""
    return version.model_copy(update={k: getattr(stored, k) for k in OWNED})


def claim(conn: sqlite3.Connection, version: JobVersion, stored: JobVersion, *,
          slots: int | None, caps: Mapping[str, int] | None) -> JobVersion | Full:
    """``version`` (read at ``stored``'s revision) holding a place of its pool (with
    ``slots``) and of each of ``caps``, and charged when ``stored`` never was; or the first
    full cap, with nothing written."""
    claimed = kept(version, stored)
    if slots is not None and not claimed.pool_slot:
        held = conn.execute(
            "SELECT COUNT(*) FROM versions WHERE terminal = 0 "
            "AND json_extract(state, '$.pool_slot') = 1 "
            "AND json_extract(fixed, '$.spec.pool') = ?",
            (claimed.spec.pool,),
        ).fetchone()[0]
        if held >= slots:
            return Full(cap=f"pool:{claimed.spec.pool}", limit=slots)
        claimed = claimed.model_copy(update={"pool_slot": True})
    wanted = {k: v for k, v in (caps or {}).items() if k not in claimed.caps}
    if wanted:
        marks = ", ".join("?" * len(wanted))
        held_caps = dict(conn.execute(
            "SELECT held.value, COUNT(*) FROM versions, json_each(versions.state, '$.caps') "
            f"AS held WHERE versions.terminal = 0 AND held.value IN ({marks}) "
            "GROUP BY held.value",
            tuple(wanted),
        ).fetchall())
        for cap, limit in wanted.items():
            if held_caps.get(cap, 0) >= limit:
                return Full(cap=cap, limit=limit)
        claimed = claimed.model_copy(update={"caps": [*claimed.caps, *wanted]})
    if stored.charged_usd is None and version.charged_usd is not None:
        claimed = claimed.model_copy(update={
            "charged_usd": version.charged_usd, "charge_settled": False,
            "charge_periods": list(dict.fromkeys(version.charge_periods)),
            "charge_keys": list(dict.fromkeys(version.charge_keys))})
        _add(conn, claimed, committed=version.charged_usd)
    return claimed


def end(conn: sqlite3.Connection, version: JobVersion) -> JobVersion:
    """``version`` as the write that ends it stores it: its places given back, its charge
    settled (committed taken back, cost and saving added, the version counted)."""
    if not version.status.terminal:
        return version
    settle = version.charged_usd is not None and not version.charge_settled
    if settle:
        _add(conn, version, committed=-(version.charged_usd or 0.0),
             spent=version.actual_cost_usd or 0.0, saving=version.spot_saving_usd or 0.0,
             versions=1)
    return version.model_copy(update={
        "pool_slot": False, "caps": [], "charge_settled": version.charge_settled or settle})


def _add(conn: sqlite3.Connection, version: JobVersion, *, committed: float = 0.0,
         spent: float = 0.0, saving: float = 0.0, versions: int = 0) -> None:
    """Add to every counter ``version`` is charged to (each once)."""
    rows = [(period, key, committed, spent, saving, versions)
            for period in dict.fromkeys(version.charge_periods)
            for key in dict.fromkeys(version.charge_keys)]
    conn.executemany(
        "INSERT INTO ledger (period, key, committed_usd, spent_usd, spot_saving_usd, versions) "
        "VALUES (?, ?, ROUND(?, 6), ROUND(?, 6), ROUND(?, 6), ?) "
        "ON CONFLICT (period, key) DO UPDATE SET "
        "committed_usd = ROUND(committed_usd + excluded.committed_usd, 6), "
        "spent_usd = ROUND(spent_usd + excluded.spent_usd, 6), "
        "spot_saving_usd = ROUND(spot_saving_usd + excluded.spot_saving_usd, 6), "
        "versions = versions + excluded.versions",
        rows,
    )


def _usd(value: float) -> float:
    return round(value, 6) + 0.0  # never -0.0


def _entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(period=row["period"], key=row["key"],
                       committed_usd=_usd(row["committed_usd"]),
                       spent_usd=_usd(row["spent_usd"]),
                       spot_saving_usd=_usd(row["spot_saving_usd"]), versions=row["versions"])


_LEDGER = "SELECT period, key, committed_usd, spent_usd, spot_saving_usd, versions FROM ledger"


def get_ledger(conn: sqlite3.Connection, period: str,
               keys: Sequence[str]) -> dict[str, LedgerEntry]:
    wanted = list(dict.fromkeys(keys))
    found: dict[str, LedgerEntry] = {}
    for start in range(0, len(wanted), 500):  # under SQLite's limit of bound parameters
        chunk = wanted[start:start + 500]
        rows = conn.execute(
            f"{_LEDGER} WHERE period = ? AND key IN ({', '.join('?' * len(chunk))})",
            (period, *chunk))
        found.update((row["key"], _entry(row)) for row in rows)
    return {k: found.get(k) or LedgerEntry(period=period, key=k) for k in wanted}


def list_ledger(conn: sqlite3.Connection, period: str,
                dimension: str | None = None) -> list[LedgerEntry]:
    """By key (byte order, as DynamoDB sorts); of a dimension: its bare key and its
    ``<dimension>:`` keys."""
    if dimension is None:
        rows = conn.execute(f"{_LEDGER} WHERE period = ? ORDER BY key", (period,))
    else:
        name = dimension.rstrip(":")
        # key >= 'pool:' AND key < 'pool;' is the range of keys that start with 'pool:'.
        rows = conn.execute(
            f"{_LEDGER} WHERE period = ? AND (key = ? OR (key >= ? AND key < ?)) ORDER BY key",
            (period, name, f"{name}:", f"{name};"))
    return [_entry(row) for row in rows]


def put_budget(conn: sqlite3.Connection, budget: Budget) -> Budget:
    conn.execute("INSERT OR REPLACE INTO budgets (scope, subject, body) VALUES (?, ?, ?)",
                 (budget.scope.value, budget.subject, budget.model_dump_json()))
    return budget


def get_budget(conn: sqlite3.Connection, scope: BudgetScope, subject: str) -> Budget | None:
    row = conn.execute("SELECT body FROM budgets WHERE scope = ? AND subject = ?",
                       (BudgetScope(scope).value, subject)).fetchone()
    return None if row is None else Budget.model_validate_json(row["body"])


def list_budgets(conn: sqlite3.Connection) -> list[Budget]:
    rows = conn.execute("SELECT body FROM budgets ORDER BY scope, subject")
    return [Budget.model_validate_json(row["body"]) for row in rows]


def delete_budget(conn: sqlite3.Connection, scope: BudgetScope, subject: str) -> None:
    cursor = conn.execute("DELETE FROM budgets WHERE scope = ? AND subject = ?",
                          (BudgetScope(scope).value, subject))
    if cursor.rowcount == 0:
        raise NotFound(f"There is no {BudgetScope(scope).value} budget for `{subject}`.")


def claim_notice(conn: sqlite3.Connection, key: str, *, now: datetime,
                 lease: timedelta) -> bool:
    """In the caller's write transaction: never told, and no claim or an ended one."""
    row = conn.execute("SELECT told, lease_until FROM notices WHERE key = ?",
                       (key,)).fetchone()
    if row is not None and (row["told"] or (row["lease_until"] or "") > timestamp(now)):
        return False
    conn.execute("INSERT OR REPLACE INTO notices (key, told, lease_until) VALUES (?, 0, ?)",
                 (key, timestamp(now + lease)))
    return True


def settle_notice(conn: sqlite3.Connection, key: str, *, told: bool) -> None:
    if told:
        conn.execute("INSERT INTO notices (key, told, lease_until) VALUES (?, 1, NULL) "
                     "ON CONFLICT (key) DO UPDATE SET told = 1, lease_until = NULL", (key,))
    else:
        conn.execute("DELETE FROM notices WHERE key = ? AND told = 0", (key,))


def get_record(conn: sqlite3.Connection, key: str) -> tuple[dict | None, int]:
    row = conn.execute("SELECT revision, body FROM records WHERE key = ?", (key,)).fetchone()
    return (None, 0) if row is None else (json.loads(row["body"]), int(row["revision"]))


def put_record(conn: sqlite3.Connection, key: str, value: dict, *, revision: int) -> bool:
    body = json.dumps(value, sort_keys=True)
    if revision == 0:
        done = conn.execute("INSERT INTO records (key, revision, body) VALUES (?, 1, ?) "
                            "ON CONFLICT (key) DO NOTHING", (key, body)).rowcount
    else:
        done = conn.execute("UPDATE records SET revision = revision + 1, body = ? "
                            "WHERE key = ? AND revision = ?", (body, key, revision)).rowcount
    return bool(done)
