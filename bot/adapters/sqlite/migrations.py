"""The SQLite schema, as the list of upgrades that builds it.

``PRAGMA user_version`` counts the upgrades a file has had. Append, never edit: a file written
by an older trainbot replays only what it lacks.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.domain import ConfigError

__all__ = ["MIGRATIONS", "upgrade"]

# Each entry upgrades the schema by one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            name TEXT PRIMARY KEY,
            channel TEXT,
            created_at TEXT NOT NULL,
            latest_version INTEGER NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX jobs_by_channel ON jobs (channel, created_at)",
        "CREATE INDEX jobs_by_time ON jobs (created_at)",
        """CREATE TABLE versions (
            job TEXT NOT NULL REFERENCES jobs (name),
            number INTEGER NOT NULL,
            revision INTEGER NOT NULL,
            status TEXT NOT NULL,
            terminal INTEGER NOT NULL,
            backend_job_name TEXT,
            request_key TEXT,
            created_at TEXT NOT NULL,
            ended_at TEXT,
            fixed TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (job, number)
        )""",
        "CREATE UNIQUE INDEX versions_by_backend_name ON versions (backend_job_name)",
        "CREATE UNIQUE INDEX versions_by_request_key ON versions (request_key)",
        "CREATE INDEX versions_active ON versions (created_at) WHERE terminal = 0",
        "CREATE INDEX versions_by_ended_at ON versions (ended_at)",
        """CREATE TABLE presets (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (scope, name)
        )""",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            decision TEXT,
            decided_by TEXT,
            decided_at TEXT,
            decision_note TEXT NOT NULL DEFAULT '',
            channel TEXT,
            message_ts TEXT,
            body TEXT NOT NULL
        )""",
    ),
    (
        # 1 while an ended version's outbox holds what the channel must still hear.
        "ALTER TABLE versions ADD COLUMN undelivered INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX versions_undelivered ON versions (created_at) WHERE undelivered = 1",
    ),
    (
        # Registered algorithms: every version ever registered (immutable, by content
        # digest), and per id the current one and whether it is hidden from new starts.
        """CREATE TABLE algorithm_versions (
            scope TEXT NOT NULL,
            id TEXT NOT NULL,
            digest TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (scope, id, digest)
        )""",
        """CREATE TABLE algorithms (
            scope TEXT NOT NULL,
            id TEXT NOT NULL,
            digest TEXT NOT NULL,
            hidden INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (scope, id),
            FOREIGN KEY (scope, id, digest) REFERENCES algorithm_versions (scope, id, digest)
        )""",
    ),
    (
        # Registered models: version ``number`` of a group, from one training version, once
        # per group. What registration fixed (``fixed``) apart from what a save rewrites
        # (``state``, ``status``), so a save can't rewrite a model's artifact or lineage.
        """CREATE TABLE model_versions (
            model_group TEXT NOT NULL,
            number INTEGER NOT NULL,
            job TEXT NOT NULL,
            version INTEGER NOT NULL,
            status TEXT NOT NULL,
            fixed TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (model_group, number),
            UNIQUE (model_group, job, version)
        )""",
        "CREATE INDEX model_versions_by_training_version ON model_versions (job, version)",
    ),
    (
        # Sweeps: one row per sweep, beside its job (created in the same transaction). What
        # creation fixed (``fixed``) apart from what a save rewrites (``state``), as versions.
        # ``active`` is 1 while the sweep runs or its outbox holds what the channel must
        # still hear: the partial index lists those without reading the ended ones.
        """CREATE TABLE sweeps (
            name TEXT PRIMARY KEY REFERENCES jobs (name),
            revision INTEGER NOT NULL,
            status TEXT NOT NULL,
            terminal INTEGER NOT NULL,
            active INTEGER NOT NULL,
            backend_name TEXT,
            request_key TEXT,
            created_at TEXT NOT NULL,
            fixed TEXT NOT NULL,
            state TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX sweeps_by_backend_name ON sweeps (backend_name)",
        "CREATE UNIQUE INDEX sweeps_by_request_key ON sweeps (request_key)",
        "CREATE INDEX sweeps_active ON sweeps (created_at, name) WHERE active = 1",
    ),
    (
        # Spend: the ledger's counters, one row per (period, key), moved in the writes that
        # claim and end versions; budgets; notices told once (or claimed until
        # ``lease_until``). Caps' places are counted among the active versions, no table.
        """CREATE TABLE ledger (
            period TEXT NOT NULL,
            key TEXT NOT NULL,
            committed_usd REAL NOT NULL DEFAULT 0,
            spent_usd REAL NOT NULL DEFAULT 0,
            spot_saving_usd REAL NOT NULL DEFAULT 0,
            versions INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (period, key)
        )""",
        """CREATE TABLE budgets (
            scope TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (scope, subject)
        )""",
        """CREATE TABLE notices (
            key TEXT PRIMARY KEY,
            told INTEGER NOT NULL DEFAULT 0,
            lease_until TEXT
        )""",
        # Small documents kept by compare-and-set (a period's top jobs).
        """CREATE TABLE records (
            key TEXT PRIMARY KEY,
            revision INTEGER NOT NULL,
            body TEXT NOT NULL
        )""",
    ),
)


def upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the upgrades the file lacks, in ``conn``'s (write) transaction.

    ``ConfigError`` for a file from a newer trainbot: it is never downgraded.
    """
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise ConfigError(
            f"{path} has schema version {current}; this trainbot knows {len(MIGRATIONS)}.",
            hint="Upgrade trainbot, or point TRAINBOT_HOME at another folder.",
        )
    for statements in MIGRATIONS[current:]:
        for statement in statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
