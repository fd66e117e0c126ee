"""Models as rows and back: JSON next to the few columns that queries and constraints need.

A version's JSON is split in two: the fields fixed at creation (``fixed``) and the mutable
state (``state``), so ``save_version`` cannot rewrite a version's spec or lineage even by
mistake.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from bot.domain import Approval, JobVersion, TrainingJob
from bot.domain.approval import APPROVAL_MUTABLE_FIELDS
from bot.domain.job import VERSION_FIXED_FIELDS

__all__ = [
    "APPROVAL_MUTABLE",
    "FIXED_FIELDS",
    "STATE_EXCLUDE",
    "VERSION_COLUMNS",
    "approval_from_row",
    "job_from_row",
    "timestamp",
    "undelivered",
    "version_from_row",
]

FIXED_FIELDS = VERSION_FIXED_FIELDS
STATE_EXCLUDE = FIXED_FIELDS | {"revision"}
APPROVAL_MUTABLE = APPROVAL_MUTABLE_FIELDS

VERSION_COLUMNS = "fixed, state, revision"


def timestamp(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in the indexes."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_from_row(row: sqlite3.Row) -> JobVersion:
    data = {**json.loads(row["fixed"]), **json.loads(row["state"]), "revision": row["revision"]}
    return JobVersion.model_validate(data)


def undelivered(version: JobVersion) -> int:
    """The ``undelivered`` column: 1 while an ended version's outbox isn't empty."""
    return int(version.status.terminal and bool(version.outbox))


def job_from_row(row: sqlite3.Row) -> TrainingJob:
    return TrainingJob.model_validate(
        {**json.loads(row["body"]), "latest_version": row["latest_version"]}
    )


def approval_from_row(row: sqlite3.Row) -> Approval:
    data = json.loads(row["body"])
    data.update({k: row[k] for k in APPROVAL_MUTABLE if row[k] is not None})
    return Approval.model_validate(data)
