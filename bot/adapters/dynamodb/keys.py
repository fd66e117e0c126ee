"""The single table's keys: every partition and sort key trainbot writes or queries.

Items and queries both build their keys here, so a writer and a reader can't disagree on a
prefix. The layout is drawn in :mod:`bot.adapters.dynamodb_schema`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ACTIVE",
    "ACTIVE_SWEEPS",
    "ALL_JOBS",
    "BUDGETS",
    "META",
    "MODEL_GROUPS",
    "OUTBOX",
    "SWEEP",
    "VERSION_PREFIX",
    "Item",
    "algorithm_key",
    "algorithm_version_key",
    "algorithms_partition",
    "approval_key",
    "backend_key",
    "backend_partition",
    "budget_key",
    "cap_key",
    "channel_partition",
    "ended_partition",
    "guard_key",
    "job_key",
    "job_partition",
    "ledger_key",
    "ledger_partition",
    "model_group_key",
    "model_partition",
    "model_source_key",
    "model_version_key",
    "notice_key",
    "number",
    "pool_key",
    "preset_key",
    "preset_partition",
    "sparse_partition",
    "sweep_backend_key",
    "sweep_guard_key",
    "sweep_key",
    "text",
    "timestamp",
    "trained_partition",
    "version_key",
    "version_tail",
]

Item = dict[str, dict[str, Any]]
"""An item in the low-level client's form: attribute name → ``{"S": …}`` / ``{"N": …}``."""

META = "META"
VERSION_PREFIX = "V#"
ALL_JOBS = "JOBS"  # the all-jobs index's one partition
# The sparse index's partitions: versions that run, and ended ones with undelivered notices.
ACTIVE = "ACTIVE"
OUTBOX = "OUTBOX"
MODEL_GROUPS = "MODELS"  # one item per model group (its counter): listing them is one Query
# The active index's one partition of sweeps that run or have an outbox (sweeps are few).
ACTIVE_SWEEPS = "SWEEPS#ACTIVE"
# The sort key of a sweep's request-key guard and backend-name pointer: beside the versions'
# (``META``) in the same partitions, never the same item.
SWEEP = "SWEEP"
BUDGETS = "BUDGETS"  # every budget, one item each (sort key: <scope>#<subject>)


def text(value: str) -> dict[str, str]:
    """A string attribute value."""
    return {"S": value}


def number(value: int) -> dict[str, str]:
    """A number attribute value (the client sends numbers as text)."""
    return {"N": str(value)}


def timestamp(moment: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order in the indexes."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job_partition(job: str) -> str:
    """The job's META item and all its ``V#`` items share this partition."""
    return f"JOB#{job}"


def preset_partition(scope: str) -> str:
    return f"PRESET#{scope}"


def algorithms_partition(scope: str) -> str:
    """The scope's registered ids, one pointer item each (sort key: the id), for listing."""
    return f"ALGOS#{scope}"


def backend_partition(backend_job_name: str) -> str:
    """The backend pointer's PK, and the backend-name index's key."""
    return f"BACKEND#{backend_job_name}"


def channel_partition(channel: str) -> str:
    return f"CHANNEL#{channel}"


def ended_partition(day: str) -> str:
    """The ended index's partition for a UTC day, ``YYYY-MM-DD``."""
    return f"ENDED#{day}"


def sparse_partition(prefix: str, shard: int) -> str:
    """``ACTIVE#<shard>`` or ``OUTBOX#<shard>``."""
    return f"{prefix}#{shard}"


def model_partition(group: str) -> str:
    """A model group's ``V#`` items and its ``FROM#`` idempotency items."""
    return f"MODEL#{group}"


def trained_partition(job: str, version: int) -> str:
    """The models-of index's partition: the model versions of one training version."""
    return f"TRAINED#{version_tail(job, version)}"


def version_tail(job: str, number: int) -> str:
    """``<job>#<000001>``: ends the index sort keys, so equal times sort by version."""
    return f"{job}#{number:06d}"


def job_key(job: str) -> Item:
    return {"PK": text(job_partition(job)), "SK": text(META)}


def version_key(job: str, number: int) -> Item:
    return {"PK": text(job_partition(job)), "SK": text(f"{VERSION_PREFIX}{number:06d}")}


def guard_key(request_key: str) -> Item:
    return {"PK": text(f"REQ#{request_key}"), "SK": text(META)}


def preset_key(scope: str, name: str) -> Item:
    return {"PK": text(preset_partition(scope)), "SK": text(name)}


def algorithm_key(scope: str, algo_id: str) -> Item:
    """An id's pointer: its current version and whether it is hidden."""
    return {"PK": text(algorithms_partition(scope)), "SK": text(algo_id)}


def algorithm_version_key(scope: str, algo_id: str, digest: str) -> Item:
    """One registered version of an id, by its content digest (ids hold no ``#``)."""
    return {"PK": text(f"ALGO#{scope}#{algo_id}"), "SK": text(f"{VERSION_PREFIX}{digest}")}


def approval_key(approval_id: str) -> Item:
    return {"PK": text(f"APPROVAL#{approval_id}"), "SK": text(META)}


def backend_key(backend_job_name: str) -> Item:
    return {"PK": text(backend_partition(backend_job_name)), "SK": text(META)}


def pool_key(pool: str) -> Item:
    return {"PK": text(f"POOL#{pool}"), "SK": text(META)}


def model_group_key(group: str) -> Item:
    """A group's item, in the one partition of groups: its version counter."""
    return {"PK": text(MODEL_GROUPS), "SK": text(group)}


def model_version_key(group: str, number: int) -> Item:
    return {"PK": text(model_partition(group)), "SK": text(f"{VERSION_PREFIX}{number:06d}")}


def model_source_key(group: str, job: str, version: int) -> Item:
    """Which number of ``group`` was registered from ``job`` v``version``, if any."""
    return {"PK": text(model_partition(group)), "SK": text(f"FROM#{version_tail(job, version)}")}


def sweep_key(name: str) -> Item:
    """A sweep's item (its job is ``job_key(name)``, created in the same transaction)."""
    return {"PK": text(f"SWEEP#{name}"), "SK": text(META)}


def sweep_guard_key(request_key: str) -> Item:
    """Which sweep was created under ``request_key`` (a version's guard is ``META``)."""
    return {"PK": text(f"REQ#{request_key}"), "SK": text(SWEEP)}


def sweep_backend_key(backend_name: str) -> Item:
    """Which sweep named its backend (tuning) job ``backend_name``."""
    return {"PK": text(backend_partition(backend_name)), "SK": text(SWEEP)}


def cap_key(cap: str) -> Item:
    """A cap's counter (``user:U1``, ``pool-channel:gpu-1:C1``…): ``active``, the places of
    it held by versions. A pool's own cap is its ``POOL#`` item."""
    return {"PK": text(f"CAP#{cap}"), "SK": text(META)}


def ledger_partition(period: str) -> str:
    """Every ledger key of one period (``2026-11``, ``2026-W48``): listing it is one Query."""
    return f"LEDGER#{period}"


def ledger_key(period: str, key: str) -> Item:
    return {"PK": text(ledger_partition(period)), "SK": text(key)}


def budget_key(scope: str, subject: str) -> Item:
    """A budget, in the one partition of budgets, by scope then subject."""
    return {"PK": text(BUDGETS), "SK": text(f"{scope}#{subject}")}


def notice_key(notice: str) -> Item:
    """Whether a notice (``alert:channel:C1:2026-11:80``) was told, or who claims it."""
    return {"PK": text(f"NOTICE#{notice}"), "SK": text(META)}


def record_key(key: str) -> Item:
    """A small document kept by compare-and-set (``top-jobs:2026-11``)."""
    return {"PK": text(f"RECORD#{key}"), "SK": text(META)}
