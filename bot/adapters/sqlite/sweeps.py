"""Sweeps in SQLite: one row per sweep, keyed by its name (which is its job's name).

A row keeps what creation fixed (``fixed``: the spec, who asked, the request key…) apart from
what a save may change (``state``), with the few columns queries and constraints need:
``revision`` for compare-and-set, ``backend_name`` and ``request_key`` (unique, so a tuning
job names one sweep and a request creates one), ``active`` for the partial index of sweeps
that run or still have something to tell the channel.

Each function runs in the caller's connection; writes expect a write transaction around them
(``BEGIN IMMEDIATE``: creating reads the job's and the key's rows, then inserts).
"""

from __future__ import annotations

import json
import sqlite3

from bot.adapters.sqlite.rows import timestamp
from bot.domain import Conflict, NotFound, StaleWrite, TrainingJob
from bot.domain.sweep import SWEEP_FIXED_FIELDS, Sweep

__all__ = ["active", "by_backend_name", "create", "get", "save"]

_STATE_EXCLUDE = SWEEP_FIXED_FIELDS | {"revision"}
_COLUMNS = "fixed, state, revision"


def _from_row(row: sqlite3.Row) -> Sweep:
    data = {**json.loads(row["fixed"]), **json.loads(row["state"]), "revision": row["revision"]}
    return Sweep.model_validate(data)


def _one(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> Sweep | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM sweeps WHERE {where}", args).fetchone()
    return None if row is None else _from_row(row)


def _active(sweep: Sweep) -> int:
    """The ``active`` column: 1 while the sweep runs or its outbox isn't empty."""
    return int(not sweep.status.terminal or bool(sweep.outbox))


def create(conn: sqlite3.Connection, sweep: Sweep, job: TrainingJob) -> tuple[Sweep, bool]:
    """See :meth:`bot.ports.JobStore.create_sweep`: the job (no versions yet) and the sweep,
    in the caller's write transaction."""
    if job.name != sweep.name:
        raise ValueError(f"job {job.name!r} is not the sweep's job {sweep.name!r}")
    if sweep.request_key is not None:
        stored = _one(conn, "request_key = ?", (sweep.request_key,))
        if stored is not None:
            return stored, False
    if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (job.name,)).fetchone() is not None:
        raise Conflict(f"A job named `{job.name}` already exists.")
    stored = sweep.model_copy(update={"revision": 1})
    conn.execute(
        "INSERT INTO jobs (name, channel, created_at, latest_version, body) "
        "VALUES (?, ?, ?, 0, ?)",
        (job.name, job.channel, timestamp(job.created_at),
         job.model_dump_json(exclude={"latest_version"})),
    )
    try:
        conn.execute(
            "INSERT INTO sweeps (name, revision, status, terminal, active, backend_name, "
            "request_key, created_at, fixed, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stored.name,
                stored.revision,
                stored.status.value,
                int(stored.status.terminal),
                _active(stored),
                stored.backend_name,
                stored.request_key,
                timestamp(stored.created_at),
                stored.model_dump_json(include=set(SWEEP_FIXED_FIELDS)),
                stored.model_dump_json(exclude=set(_STATE_EXCLUDE)),
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"{stored.label} clashes with a stored sweep: {exc}") from exc
    return stored, True


def get(conn: sqlite3.Connection, name: str) -> Sweep:
    stored = _one(conn, "name = ?", (name,))
    if stored is None:
        raise NotFound(f"There is no sweep `{name}`.")
    return stored


def save(conn: sqlite3.Connection, sweep: Sweep) -> Sweep:
    """See :meth:`bot.ports.JobStore.save_sweep`: one ``UPDATE`` conditional on the revision,
    which writes the state and never the fixed fields."""
    try:
        row = conn.execute(
            "UPDATE sweeps SET revision = revision + 1, status = ?, terminal = ?, active = ?, "
            f"backend_name = ?, state = ? WHERE name = ? AND revision = ? RETURNING {_COLUMNS}",
            (
                sweep.status.value,
                int(sweep.status.terminal),
                _active(sweep),
                sweep.backend_name,
                sweep.model_dump_json(exclude=set(_STATE_EXCLUDE)),
                sweep.name,
                sweep.revision,
            ),
        ).fetchone()
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"Backend name `{sweep.backend_name}` is already in use.") from exc
    if row is None:
        stored = get(conn, sweep.name)  # NotFound if absent
        raise StaleWrite(f"{sweep.label} changed meanwhile (revision {stored.revision}, "
                         f"written from {sweep.revision}).")
    return _from_row(row)


def active(conn: sqlite3.Connection) -> list[Sweep]:
    """Sweeps that run or have an outbox, oldest first (the partial index ``sweeps_active``)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM sweeps WHERE active = 1 ORDER BY created_at, name")
    return [_from_row(row) for row in rows]


def by_backend_name(conn: sqlite3.Connection, backend_name: str) -> Sweep | None:
    return _one(conn, "backend_name = ?", (backend_name,))
