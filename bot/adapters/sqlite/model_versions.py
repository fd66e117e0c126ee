"""Registered models in SQLite: one row per model version, keyed (group, number).

A row keeps what registration fixed (``fixed``: source training version, artifact, metrics,
lineage…) apart from what a save may change (``state``: the package, the card, the decision;
``status`` in a column of its own, so a decision is one conditional ``UPDATE``). The unique
(group, job, version) is what makes registering a training version twice store it once.

Each function runs in the caller's connection; writes expect a write transaction around them
(``BEGIN IMMEDIATE``: numbering reads the group's highest number, then inserts the next).
"""

from __future__ import annotations

import json
import sqlite3

from bot.domain import Conflict, ModelStatus, ModelVersion, NotFound
from bot.domain.model import MODEL_MUTABLE_FIELDS

__all__ = ["MODEL_MUTABLE", "add", "get", "groups", "listed", "of_training_version", "save"]

# What ``save_model_version`` writes; every other field is kept as registered.
MODEL_MUTABLE = MODEL_MUTABLE_FIELDS
_STATE = MODEL_MUTABLE - {"status"}
_COLUMNS = "fixed, state, status"


def _from_row(row: sqlite3.Row) -> ModelVersion:
    return ModelVersion.model_validate(
        {**json.loads(row["fixed"]), **json.loads(row["state"]), "status": row["status"]}
    )


def _one(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> ModelVersion | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE {where}", args).fetchone()
    return None if row is None else _from_row(row)


def add(conn: sqlite3.Connection, model: ModelVersion) -> tuple[ModelVersion, bool]:
    """See :meth:`bot.ports.JobStore.add_model_version` (inside the caller's write lock, so
    reading the highest number and inserting the next can't interleave with another add)."""
    key = (model.group, model.job, model.version)
    stored = _one(conn, "model_group = ? AND job = ? AND version = ?", key)
    if stored is not None:
        return stored, False
    latest = conn.execute(
        "SELECT COALESCE(MAX(number), 0) FROM model_versions WHERE model_group = ?",
        (model.group,),
    ).fetchone()[0]
    stored = model.model_copy(update={"number": latest + 1})
    conn.execute(
        f"INSERT INTO model_versions (model_group, number, job, version, {_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            stored.group,
            stored.number,
            stored.job,
            stored.version,
            stored.model_dump_json(exclude=set(MODEL_MUTABLE)),
            stored.model_dump_json(include=set(_STATE)),
            stored.status.value,
        ),
    )
    return stored, True


def get(conn: sqlite3.Connection, group: str, number: int) -> ModelVersion:
    stored = _one(conn, "model_group = ? AND number = ?", (group, number))
    if stored is None:
        raise NotFound(f"There is no version {number} of model `{group}`.")
    return stored


def groups(conn: sqlite3.Connection) -> list[str]:
    """Every group with a version, in byte order (the primary key's order, as DynamoDB's)."""
    rows = conn.execute("SELECT DISTINCT model_group FROM model_versions ORDER BY model_group")
    return [row[0] for row in rows]


def listed(conn: sqlite3.Connection, group: str) -> list[ModelVersion]:
    """The group's versions, oldest first; ``NotFound`` for a group with none."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM model_versions WHERE model_group = ? ORDER BY number", (group,)
    ).fetchall()
    if not rows:
        raise NotFound(f"There is no model `{group}`.")
    return [_from_row(row) for row in rows]


def of_training_version(conn: sqlite3.Connection, job: str, version: int) -> list[ModelVersion]:
    """The models registered from ``job`` v``version``, by group."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM model_versions WHERE job = ? AND version = ? "
        "ORDER BY model_group",
        (job, version),
    )
    return [_from_row(row) for row in rows]


def save(conn: sqlite3.Connection, model: ModelVersion, *,
         expect_status: ModelStatus | None) -> ModelVersion:
    """See :meth:`bot.ports.JobStore.save_model_version`: one ``UPDATE``, conditional on the
    stored status when ``expect_status`` is given."""
    condition, args = "", tuple[str, ...]()
    if expect_status is not None:
        condition, args = " AND status = ?", (expect_status.value,)
    row = conn.execute(
        f"UPDATE model_versions SET state = ?, status = ? "
        f"WHERE model_group = ? AND number = ?{condition} RETURNING {_COLUMNS}",
        (model.model_dump_json(include=set(_STATE)), model.status.value,
         model.group, model.number, *args),
    ).fetchone()
    if row is not None:
        return _from_row(row)
    stored = get(conn, model.group, model.number)  # NotFound if absent
    raise Conflict(_decided(stored))


def _decided(stored: ModelVersion) -> str:
    """Why a save expecting another status was refused."""
    if stored.pending:
        return f"{stored.label} is still pending approval."
    by = f" by {stored.decided_by}" if stored.decided_by else ""
    return f"{stored.label} was already {stored.status.value.lower()}{by}."
