"""Registered algorithms in SQLite: immutable versions by content digest, a pointer per id.

``algorithm_versions`` holds every version ever registered, keyed (scope, id, digest), as the
algorithm's JSON with ``source.hidden`` false; ``algorithms`` holds per (scope, id) the current
digest and whether the id is hidden. Hidden belongs to the id, not to a version: every
algorithm read here carries the id's flag as it is now.

Each function runs in the caller's connection; writes expect a write transaction around them.
"""

from __future__ import annotations

import sqlite3

from bot.domain import Algorithm, AlgorithmSource, NotFound

__all__ = ["get", "hide", "listed", "register"]

_SELECT = (
    "SELECT v.body, a.hidden FROM algorithm_versions v "
    "JOIN algorithms a ON a.scope = v.scope AND a.id = v.id "
)


def _source(algorithm: Algorithm) -> AlgorithmSource:
    if algorithm.source is None:
        raise ValueError(f"{algorithm.id} is a preset: only an algorithm with a source is "
                         "registered")
    return algorithm.source


def _hidden(algorithm: Algorithm, hidden: bool) -> Algorithm:
    source = _source(algorithm).model_copy(update={"hidden": hidden})
    return algorithm.model_copy(update={"source": source})


def _from_row(row: sqlite3.Row) -> Algorithm:
    return _hidden(Algorithm.model_validate_json(row["body"]), bool(row["hidden"]))


def register(conn: sqlite3.Connection, scope: str, algorithm: Algorithm) -> tuple[Algorithm, bool]:
    """See :meth:`bot.ports.JobStore.register_algorithm` (the caller's transaction makes the
    version and the pointer one write)."""
    digest = _source(algorithm).digest
    key = (scope, algorithm.id, digest)
    stored = _hidden(algorithm, False)
    created = conn.execute(
        "INSERT INTO algorithm_versions (scope, id, digest, body) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (*key, stored.model_dump_json()),
    ).rowcount == 1
    if not created:
        row = conn.execute(
            "SELECT body FROM algorithm_versions WHERE scope = ? AND id = ? AND digest = ?", key
        ).fetchone()
        stored = Algorithm.model_validate_json(row["body"])
    conn.execute(
        "INSERT INTO algorithms (scope, id, digest, hidden) VALUES (?, ?, ?, 0) "
        "ON CONFLICT (scope, id) DO UPDATE SET digest = excluded.digest, hidden = 0",
        key,
    )
    return stored, created


def get(conn: sqlite3.Connection, scope: str, algo_id: str,
        digest: str | None = None) -> Algorithm:
    """See :meth:`bot.ports.JobStore.get_registered_algorithm`."""
    if digest is None:
        row = conn.execute(
            _SELECT + "AND v.digest = a.digest WHERE a.scope = ? AND a.id = ?", (scope, algo_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"There is no registered algorithm `{algo_id}`.")
    else:
        row = conn.execute(
            _SELECT + "WHERE v.scope = ? AND v.id = ? AND v.digest = ?", (scope, algo_id, digest)
        ).fetchone()
        if row is None:
            raise NotFound(f"There is no version sha256:{digest[:12]}… of `{algo_id}`.")
    return _from_row(row)


def listed(conn: sqlite3.Connection, scope: str) -> list[Algorithm]:
    """The current version of every id in ``scope``, hidden ones included; by id."""
    rows = conn.execute(
        _SELECT + "AND v.digest = a.digest WHERE a.scope = ? ORDER BY a.id", (scope,)
    )
    return [_from_row(row) for row in rows]


def hide(conn: sqlite3.Connection, scope: str, algo_id: str, *, hidden: bool) -> Algorithm:
    """Set the id's hidden flag; its current version, as it is now. ``NotFound`` if the id
    was never registered."""
    cursor = conn.execute(
        "UPDATE algorithms SET hidden = ? WHERE scope = ? AND id = ?",
        (int(hidden), scope, algo_id),
    )
    if cursor.rowcount == 0:
        raise NotFound(f"There is no registered algorithm `{algo_id}`.")
    return get(conn, scope, algo_id)
