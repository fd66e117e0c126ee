"""The embedded :class:`~bot.ports.JobStore`: one SQLite file in WAL mode.

Every write that can race runs in ``BEGIN IMMEDIATE`` (one writer at a time, across threads and
processes) or is a single conditional ``UPDATE``; readers never block writers (WAL). The schema
is in :mod:`.migrations`, the rows in :mod:`.rows`, registered algorithms in :mod:`.algorithms`,
registered models in :mod:`.model_versions`, sweeps in :mod:`.sweeps`, spend (caps' places,
the ledger, budgets, notices) in :mod:`.spend`.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

from bot.adapters.sqlite import algorithms, model_versions, spend, sweeps
from bot.adapters.sqlite.migrations import upgrade
from bot.adapters.sqlite.rows import (
    APPROVAL_MUTABLE,
    FIXED_FIELDS,
    STATE_EXCLUDE,
    VERSION_COLUMNS,
    approval_from_row,
    job_from_row,
    timestamp,
    undelivered,
    version_from_row,
)
from bot.domain import (
    Algorithm,
    Approval,
    ConfigError,
    Conflict,
    Decision,
    JobVersion,
    ModelStatus,
    ModelVersion,
    NotFound,
    Preset,
    StaleWrite,
    TrainingJob,
)
from bot.domain.cost import Budget, BudgetScope, Full, LedgerEntry
from bot.domain.sweep import Sweep

__all__ = ["SqliteStore"]


class _Connection:
    """Holds one thread's connection; weak-referenceable, unlike sqlite3.Connection."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class SqliteStore:
    """A :class:`~bot.ports.JobStore` in one SQLite file (created with its folder if missing).

    Safe to share between threads (each thread gets its own connection) and between
    processes on one machine (SQLite's locking; ``busy_timeout`` waits for the writer).
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        # Weak, so a finished thread's connection is closed when the thread's locals go.
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._migrate()

    # -- connections and transactions -------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        holder: _Connection | None = getattr(self._local, "holder", None)
        if holder is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (the sqlite3 module's
            # implicit transactions would start deferred ones, which can deadlock writers).
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,  # only so close() may close every thread's one
                timeout=self._busy_timeout_ms / 1000,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys = ON")
            holder = _Connection(conn)
            self._local.holder = holder
            self._open.add(holder)
        return holder.conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database's write lock up front."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        conn = self._conn()
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ConfigError(f"{self.path}: SQLite could not use WAL mode (got {mode!r}).")
        # Inside the write lock, so two processes opening a new file migrate it once.
        with self._write():
            upgrade(conn, self.path)

    def close(self) -> None:
        """Close every thread's connection. The store must not be used afterwards."""
        for holder in list(self._open):
            holder.conn.close()
        self._open.clear()

    # -- jobs and versions ------------------------------------------------------------

    def add_version(
        self, draft: JobVersion, *, new_job: TrainingJob | None = None
    ) -> tuple[JobVersion, bool]:
        """See :meth:`bot.ports.JobStore.add_version`."""
        if new_job is not None and new_job.name != draft.job:
            raise ValueError(f"new_job {new_job.name!r} is not the draft's job {draft.job!r}")
        draft = draft.model_copy(update=spend.NOTHING_HELD)  # only claims and ends move them
        with self._write() as conn:
            if draft.request_key is not None:
                row = conn.execute(
                    f"SELECT {VERSION_COLUMNS} FROM versions WHERE request_key = ?",
                    (draft.request_key,),
                ).fetchone()
                if row is not None:
                    return version_from_row(row), False
            number = self._next_number(conn, draft.job, new_job)
            stored = draft.model_copy(update={"number": number, "revision": 1})
            self._insert_version(conn, stored)
        return stored, True

    def _next_number(self, conn: sqlite3.Connection, job: str, new_job: TrainingJob | None) -> int:
        row = conn.execute("SELECT latest_version FROM jobs WHERE name = ?", (job,)).fetchone()
        if new_job is not None:
            if row is not None:
                raise Conflict(f"A job named `{job}` already exists.")
            conn.execute(
                "INSERT INTO jobs (name, channel, created_at, latest_version, body) "
                "VALUES (?, ?, ?, 1, ?)",
                (
                    job,
                    new_job.channel,
                    timestamp(new_job.created_at),
                    new_job.model_dump_json(exclude={"latest_version"}),
                ),
            )
            return 1
        if row is None:
            raise NotFound(f"No job named `{job}`.")
        number = row["latest_version"] + 1
        conn.execute("UPDATE jobs SET latest_version = ? WHERE name = ?", (number, job))
        return number

    def _insert_version(self, conn: sqlite3.Connection, version: JobVersion) -> None:
        try:
            conn.execute(
                "INSERT INTO versions (job, number, revision, status, terminal, undelivered, "
                "backend_job_name, request_key, created_at, ended_at, fixed, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    version.job,
                    version.number,
                    version.revision,
                    version.status.value,
                    int(version.status.terminal),
                    undelivered(version),
                    version.backend_job_name,
                    version.request_key,
                    timestamp(version.created_at),
                    timestamp(version.ended_at) if version.ended_at else None,
                    version.model_dump_json(include=set(FIXED_FIELDS)),
                    version.model_dump_json(exclude=set(STATE_EXCLUDE)),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{version.label} clashes with a stored version: {exc}") from exc

    def find_by_request_key(self, request_key: str) -> JobVersion | None:
        row = self._conn().execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE request_key = ?", (request_key,)
        ).fetchone()
        return version_from_row(row) if row is not None else None

    def get_job(self, name: str) -> TrainingJob:
        row = self._conn().execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"No job named `{name}`.")
        return job_from_row(row)

    def list_jobs(self, *, channel: str | None = None, limit: int = 50) -> list[TrainingJob]:
        """Newest first; all channels when ``channel`` is None."""
        if channel is None:
            sql, args = "SELECT * FROM jobs", tuple[str, ...]()
        else:
            sql, args = "SELECT * FROM jobs WHERE channel = ?", (channel,)
        rows = self._conn().execute(
            f"{sql} ORDER BY created_at DESC, name DESC LIMIT ?", (*args, limit)
        )
        return [job_from_row(row) for row in rows]

    def get_version(self, job: str, number: int) -> JobVersion:
        row = (
            self._conn()
            .execute(
                f"SELECT {VERSION_COLUMNS} FROM versions WHERE job = ? AND number = ?",
                (job, number),
            )
            .fetchone()
        )
        if row is None:
            raise NotFound(f"No version {number} of job `{job}`.")
        return version_from_row(row)

    def list_versions(self, job: str) -> list[JobVersion]:
        """Oldest first. ``NotFound`` if the job does not exist."""
        conn = self._conn()
        rows = conn.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE job = ? ORDER BY number", (job,)
        ).fetchall()
        if not rows:
            self.get_job(job)  # NotFound, or a job without versions
        return [version_from_row(row) for row in rows]

    def save_version(self, version: JobVersion) -> JobVersion:
        """Compare-and-set on ``revision``; fields fixed at creation are kept as stored, and
        what the version holds of the store's (:data:`.spend.OWNED`) too.

        A version that ends gives back its places (``pool_slot``, ``caps`` cleared) and
        settles its charge to the ledger, in this write.
        """
        with self._write() as conn:
            return self._update_version(conn, version)

    def claim_launch(self, version: JobVersion, *, slots: int | None = None,
                     caps: Mapping[str, int] | None = None) -> JobVersion | Full:
        """See :meth:`bot.ports.JobStore.claim_launch`: the places held are counted inside
        the write lock, so two claims can't both see the last free one (:mod:`.spend`)."""
        with self._write() as conn:
            claimed = spend.claim(conn, version, self._stored(conn, version),
                                  slots=slots, caps=caps)
            if isinstance(claimed, Full):
                return claimed
            return self._update_version(conn, claimed, kept=True)

    def _stored(self, conn: sqlite3.Connection, version: JobVersion) -> JobVersion:
        """The stored version, if it still has ``version``'s revision (else ``StaleWrite``)."""
        row = conn.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE job = ? AND number = ?",
            (version.job, version.number),
        ).fetchone()
        if row is None:
            raise NotFound(f"No version {version.number} of job `{version.job}`.")
        if row["revision"] != version.revision:
            raise StaleWrite(f"{version.label} changed meanwhile (revision {row['revision']}, "
                             f"written from {version.revision}).")
        return version_from_row(row)

    def _update_version(self, conn: sqlite3.Connection, version: JobVersion, *,
                        kept: bool = False) -> JobVersion:
        """Write ``version`` holding what the stored one holds (unless ``kept`` already);
        the write that ends it gives its places back and settles its charge."""
        if not kept:
            version = spend.kept(version, self._stored(conn, version))
        version = spend.end(conn, version)
        try:
            rows = conn.execute(
                "UPDATE versions SET revision = revision + 1, status = ?, terminal = ?, "
                "undelivered = ?, backend_job_name = ?, ended_at = ?, state = ? "
                f"WHERE job = ? AND number = ? AND revision = ? RETURNING {VERSION_COLUMNS}",
                (
                    version.status.value,
                    int(version.status.terminal),
                    undelivered(version),
                    version.backend_job_name,
                    timestamp(version.ended_at) if version.ended_at else None,
                    version.model_dump_json(exclude=set(STATE_EXCLUDE)),
                    version.job,
                    version.number,
                    version.revision,
                ),
            ).fetchall()
        except sqlite3.IntegrityError as exc:
            raise Conflict(
                f"Backend job name `{version.backend_job_name}` is already in use."
            ) from exc
        if not rows:
            stored = self.get_version(version.job, version.number)  # NotFound if absent
            raise StaleWrite(
                f"{version.label} changed meanwhile (revision {stored.revision}, "
                f"written from {version.revision})."
            )
        return version_from_row(rows[0])

    def find_by_backend_name(self, backend_job_name: str) -> JobVersion | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {VERSION_COLUMNS} FROM versions WHERE backend_job_name = ?",
                (backend_job_name,),
            )
            .fetchone()
        )
        return None if row is None else version_from_row(row)

    def list_active(self) -> list[JobVersion]:
        """Non-terminal versions, oldest first (the partial index ``versions_active``)."""
        rows = self._conn().execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE terminal = 0 "
            "ORDER BY created_at, job, number"
        )
        return [version_from_row(row) for row in rows]

    def list_undelivered(self) -> list[JobVersion]:
        """Ended versions with an outbox, oldest first (the partial index
        ``versions_undelivered``)."""
        rows = self._conn().execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE undelivered = 1 "
            "ORDER BY created_at, job, number"
        )
        return [version_from_row(row) for row in rows]

    def list_ended_since(self, since: datetime) -> list[JobVersion]:
        """Versions with ``ended_at >= since``, earliest end first."""
        rows = self._conn().execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE ended_at >= ? "
            "ORDER BY ended_at, job, number",
            (timestamp(since),),
        )
        return [version_from_row(row) for row in rows]

    # -- presets ----------------------------------------------------------------------

    def create_preset(self, preset: Preset) -> Preset:
        """``Conflict`` if a preset of that name exists in the scope."""
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO presets (scope, name, body) VALUES (?, ?, ?)",
                    (preset.scope, preset.name, preset.model_dump_json()),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"A preset named `{preset.name}` already exists.") from exc
        return preset

    def get_preset(self, scope: str, name: str) -> Preset:
        row = (
            self._conn()
            .execute("SELECT body FROM presets WHERE scope = ? AND name = ?", (scope, name))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"No preset named `{name}`.")
        return Preset.model_validate_json(row["body"])

    def list_presets(self, scope: str) -> list[Preset]:
        """Sorted by name (byte order, as DynamoDB sorts)."""
        rows = self._conn().execute(
            "SELECT body FROM presets WHERE scope = ? ORDER BY name", (scope,)
        )
        return [Preset.model_validate_json(row["body"]) for row in rows]

    def delete_preset(self, scope: str, name: str) -> None:
        """``NotFound`` if there is no such preset."""
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM presets WHERE scope = ? AND name = ?", (scope, name))
        if cursor.rowcount == 0:
            raise NotFound(f"No preset named `{name}`.")

    # -- registered algorithms --------------------------------------------------------

    def register_algorithm(self, scope: str, algorithm: Algorithm) -> tuple[Algorithm, bool]:
        """See :meth:`bot.ports.JobStore.register_algorithm`: the version (if new) and the
        id's pointer to it, in one transaction."""
        with self._write() as conn:
            return algorithms.register(conn, scope, algorithm)

    def get_registered_algorithm(self, scope: str, algo_id: str,
                                 digest: str | None = None) -> Algorithm:
        return algorithms.get(self._conn(), scope, algo_id, digest)

    def list_registered_algorithms(self, scope: str) -> list[Algorithm]:
        """The current version of every id, hidden ones included; by id (byte order)."""
        return algorithms.listed(self._conn(), scope)

    def hide_algorithm(self, scope: str, algo_id: str, *, hidden: bool = True) -> Algorithm:
        with self._write() as conn:
            return algorithms.hide(conn, scope, algo_id, hidden=hidden)

    # -- registered models ------------------------------------------------------------

    def add_model_version(self, model: ModelVersion) -> tuple[ModelVersion, bool]:
        """See :meth:`bot.ports.JobStore.add_model_version`: numbered in the write lock."""
        with self._write() as conn:
            return model_versions.add(conn, model)

    def get_model_version(self, group: str, number: int) -> ModelVersion:
        return model_versions.get(self._conn(), group, number)

    def list_model_groups(self) -> list[str]:
        return model_versions.groups(self._conn())

    def list_model_versions(self, group: str) -> list[ModelVersion]:
        return model_versions.listed(self._conn(), group)

    def models_of(self, job: str, version: int) -> list[ModelVersion]:
        """By group (the index ``model_versions_by_training_version``)."""
        return model_versions.of_training_version(self._conn(), job, version)

    def save_model_version(self, model: ModelVersion, *,
                           expect_status: ModelStatus | None = None) -> ModelVersion:
        """See :meth:`bot.ports.JobStore.save_model_version`; fields fixed at registration
        are kept as stored."""
        with self._write() as conn:
            return model_versions.save(conn, model, expect_status=expect_status)

    # -- sweeps (in :mod:`.sweeps`) ----------------------------------------------------

    def create_sweep(self, sweep: Sweep, *, job: TrainingJob) -> tuple[Sweep, bool]:
        """See :meth:`bot.ports.JobStore.create_sweep`: the job and the sweep, one
        transaction."""
        with self._write() as conn:
            return sweeps.create(conn, sweep, job)

    def get_sweep(self, name: str) -> Sweep:
        return sweeps.get(self._conn(), name)

    def save_sweep(self, sweep: Sweep) -> Sweep:
        """Compare-and-set on ``revision``; fields fixed at creation are kept as stored."""
        with self._write() as conn:
            return sweeps.save(conn, sweep)

    def list_active_sweeps(self) -> list[Sweep]:
        """Through the partial index ``sweeps_active``."""
        return sweeps.active(self._conn())

    def find_sweep_by_backend_name(self, backend_name: str) -> Sweep | None:
        return sweeps.by_backend_name(self._conn(), backend_name)

    # -- spend (in :mod:`.spend`) ------------------------------------------------------

    def get_ledger(self, period: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        return spend.get_ledger(self._conn(), period, keys)

    def list_ledger(self, period: str, dimension: str | None = None) -> list[LedgerEntry]:
        return spend.list_ledger(self._conn(), period, dimension)

    def put_budget(self, budget: Budget) -> Budget:
        with self._write() as conn:
            return spend.put_budget(conn, budget)

    def get_budget(self, scope: BudgetScope, subject: str) -> Budget | None:
        return spend.get_budget(self._conn(), scope, subject)

    def list_budgets(self) -> list[Budget]:
        return spend.list_budgets(self._conn())

    def delete_budget(self, scope: BudgetScope, subject: str) -> None:
        with self._write() as conn:
            spend.delete_budget(conn, scope, subject)

    def claim_notice(self, key: str, *, now: datetime, lease: timedelta) -> bool:
        with self._write() as conn:
            return spend.claim_notice(conn, key, now=now, lease=lease)

    def settle_notice(self, key: str, *, told: bool) -> None:
        with self._write() as conn:
            spend.settle_notice(conn, key, told=told)

    def get_record(self, key: str) -> tuple[dict | None, int]:
        return spend.get_record(self._conn(), key)

    def put_record(self, key: str, value: dict, *, revision: int) -> bool:
        with self._write() as conn:
            return spend.put_record(conn, key, value, revision=revision)

    # -- approvals --------------------------------------------------------------------

    def create_approval(self, approval: Approval) -> Approval:
        """``Conflict`` if an approval with that id exists."""
        data = approval.model_dump(mode="json")
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO approvals (id, decision, decided_by, decided_at, "
                    "decision_note, channel, message_ts, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        approval.id,
                        *(data[k] for k in APPROVAL_MUTABLE),
                        approval.model_dump_json(exclude=set(APPROVAL_MUTABLE)),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"Approval `{approval.id}` already exists.") from exc
        return approval

    def get_approval(self, approval_id: str) -> Approval:
        row = (
            self._conn().execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        )
        if row is None:
            raise NotFound(f"No approval request `{approval_id}`.")
        return approval_from_row(row)

    def decide_approval(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime, note: str = ""
    ) -> Approval:
        """Record the decision if none was recorded yet; ``Conflict`` otherwise."""
        with self._write() as conn:
            self._decide(conn, approval_id, decision, by=by, at=at, note=note)
        return self.get_approval(approval_id)

    def _decide(self, conn: sqlite3.Connection, approval_id: str, decision: Decision, *,
                by: str, at: datetime, note: str) -> None:
        """Record the decision in ``conn``'s transaction if none was; ``Conflict`` (which
        rolls the transaction back) otherwise."""
        cursor = conn.execute(
            "UPDATE approvals SET decision = ?, decided_by = ?, decided_at = ?, "
            "decision_note = ? WHERE id = ? AND decision IS NULL",
            (decision.value, by, at.isoformat(), note, approval_id),
        )
        if cursor.rowcount == 0:
            self._raise_decided(approval_id)

    def decide_approval_and_version(
        self, approval_id: str, decision: Decision, *, by: str, at: datetime,
        version: JobVersion, note: str = "",
    ) -> tuple[Approval, JobVersion]:
        """See :meth:`bot.ports.JobStore.decide_approval_and_version`: one transaction."""
        with self._write() as conn:
            self._decide(conn, approval_id, decision, by=by, at=at, note=note)
            saved = self._update_version(conn, version)
        return self.get_approval(approval_id), saved

    def _raise_decided(self, approval_id: str) -> NoReturn:
        earlier = self.get_approval(approval_id)  # NotFound if absent
        raise Conflict(f"This request was already {earlier.decision} by {earlier.decided_by}.")

    def set_approval_message(self, approval_id: str, *, channel: str, ts: str) -> Approval:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE approvals SET channel = ?, message_ts = ? WHERE id = ?",
                (channel, ts, approval_id),
            )
        if cursor.rowcount == 0:
            raise NotFound(f"No approval request `{approval_id}`.")
        return self.get_approval(approval_id)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
