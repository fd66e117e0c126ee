"""Models as items and back.

Models are kept as JSON strings (no ``Decimal`` round trips for floats); only keys and index
keys are separate attributes. Index attributes are derived from the model on every write, so
an index can never disagree with the item it points at.

Version items hold two JSON attributes: ``fixed`` (written once, when the version is created)
and ``state`` (what ``save_version`` replaces), so a save can never rewrite a spec or lineage.
"""

from __future__ import annotations

import json
import zlib

from bot.adapters.dynamodb.keys import (
    ACTIVE,
    ACTIVE_SWEEPS,
    ALL_JOBS,
    OUTBOX,
    Item,
    algorithm_key,
    algorithm_version_key,
    approval_key,
    backend_key,
    backend_partition,
    channel_partition,
    ended_partition,
    guard_key,
    job_key,
    model_source_key,
    model_version_key,
    number,
    preset_key,
    sparse_partition,
    sweep_backend_key,
    sweep_guard_key,
    sweep_key,
    text,
    timestamp,
    trained_partition,
    version_key,
    version_tail,
)
from bot.adapters.dynamodb_schema import (
    ACTIVE_INDEX,
    ACTIVE_SHARDS,
    ALL_JOBS_INDEX,
    BACKEND_INDEX,
    CHANNEL_INDEX,
    ENDED_INDEX,
    MODELS_OF_INDEX,
)
from bot.domain import Algorithm, Approval, JobVersion, ModelVersion, Preset, TrainingJob
from bot.domain.approval import APPROVAL_MUTABLE_FIELDS
from bot.domain.job import VERSION_FIXED_FIELDS
from bot.domain.model import MODEL_MUTABLE_FIELDS
from bot.domain.sweep import SWEEP_FIXED_FIELDS, Sweep

__all__ = [
    "APPROVAL_MUTABLE",
    "FIXED_FIELDS",
    "MODEL_MUTABLE",
    "algorithm_from_item",
    "algorithm_pointer_item",
    "algorithm_version_item",
    "approval_from_item",
    "approval_item",
    "backend_pointer_item",
    "guard_item",
    "holdings",
    "job_from_item",
    "job_item",
    "model_from_item",
    "model_source_item",
    "model_state",
    "model_version_item",
    "preset_from_item",
    "preset_item",
    "sweep_backend_item",
    "sweep_from_item",
    "sweep_guard_item",
    "sweep_item",
    "sweep_state",
    "version_from_item",
    "version_item",
    "version_state",
    "with_hidden",
]

FIXED_FIELDS = VERSION_FIXED_FIELDS
_STATE_EXCLUDE = FIXED_FIELDS | {"revision"}
APPROVAL_MUTABLE = APPROVAL_MUTABLE_FIELDS
# What ``save_model_version`` writes; every other field is kept as registered.
MODEL_MUTABLE = MODEL_MUTABLE_FIELDS
_MODEL_STATE = MODEL_MUTABLE - {"status"}
_SWEEP_STATE_EXCLUDE = SWEEP_FIXED_FIELDS | {"revision"}


# -- encoding ---------------------------------------------------------------------------


def backend_pointer_item(version: JobVersion) -> Item:
    """The item that finds ``version`` by its backend job name with a consistent GetItem
    (the backend-name index is eventually consistent: an early event could miss it)."""
    assert version.backend_job_name, "only a version that names its backend job"
    return {
        **backend_key(version.backend_job_name),
        "job": text(version.job),
        "number": number(version.number),
    }


def guard_item(version: JobVersion) -> Item:
    """The item that finds ``version`` by the request key it was stored under."""
    assert version.request_key is not None, "only a version stored under a request key"
    return {
        **guard_key(version.request_key),
        "job": text(version.job),
        "number": number(version.number),
    }


def job_item(job: TrainingJob, *, latest_version: int = 1) -> Item:
    """A new job's item: its version counter starts at 1 (the version stored with it), or at
    0 for a sweep's job (its trials are added later)."""
    when = f"{timestamp(job.created_at)}#{job.name}"
    item = {
        **job_key(job.name),
        "latest_version": number(latest_version),
        "body": text(job.model_dump_json(exclude={"latest_version"})),
        f"{ALL_JOBS_INDEX}PK": text(ALL_JOBS),
        f"{ALL_JOBS_INDEX}SK": text(when),
    }
    if job.channel:
        item[f"{CHANNEL_INDEX}PK"] = text(channel_partition(job.channel))
        item[f"{CHANNEL_INDEX}SK"] = text(when)
    return item


def version_state(version: JobVersion) -> dict[str, dict[str, str] | None]:
    """The attributes ``save_version`` rewrites; ``None`` means the attribute must be absent.

    Index attributes follow the state: a terminal version leaves the sparse active index, a
    version gets into the ended index once it has ``ended_at``.
    """
    tail = version_tail(version.job, version.number)
    active = not version.status.terminal
    # The same sparse index lists ended versions whose outbox isn't empty (under OUTBOX#),
    # so the reconcile finds undelivered notices without a scan.
    undelivered = not active and bool(version.outbox)
    shard = zlib.crc32(tail.encode()) % ACTIVE_SHARDS
    prefix = ACTIVE if active else OUTBOX if undelivered else None
    part = sparse_partition(prefix, shard) if prefix else None
    ended = timestamp(version.ended_at) if version.ended_at else None
    backend = version.backend_job_name
    return {
        "state": text(version.model_dump_json(exclude=set(_STATE_EXCLUDE))),
        **holdings(version),
        "status": text(version.status.value),
        f"{ACTIVE_INDEX}PK": text(part) if part else None,
        f"{ACTIVE_INDEX}SK": text(f"{timestamp(version.created_at)}#{tail}") if part else None,
        f"{BACKEND_INDEX}PK": text(backend_partition(backend)) if backend else None,
        f"{ENDED_INDEX}PK": text(ended_partition(ended[:10])) if ended else None,
        f"{ENDED_INDEX}SK": text(f"{ended}#{tail}") if ended else None,
    }


def holdings(version: JobVersion) -> dict[str, dict[str, str] | None]:
    """What the version holds of the store's, beside its JSON, for the conditions of the
    writes that take and give it back (``None``: absent): ``slot`` while it holds a place of
    its pool, ``caps`` while it holds places of caps, ``charge`` once it was charged to the
    ledger (its amount, periods, keys and whether it was settled). Every version write
    requires them to be what the writer read, so a place is never given back twice nor a
    charge settled twice (see :mod:`.version_writes`)."""
    charge = [version.charged_usd, version.charge_periods, version.charge_keys,
              version.charge_settled]
    return {
        "slot": text(version.spec.pool) if version.pool_slot else None,
        "caps": text(json.dumps(version.caps)) if version.caps else None,
        "charge": text(json.dumps(charge)) if version.charged_usd is not None else None,
    }


def version_item(version: JobVersion) -> Item:
    state = {k: v for k, v in version_state(version).items() if v is not None}
    return {
        **version_key(version.job, version.number),
        "revision": number(version.revision),
        "fixed": text(version.model_dump_json(include=set(FIXED_FIELDS))),
        **state,
    }


def approval_item(approval: Approval) -> Item:
    data = approval.model_dump(mode="json")
    item = {
        **approval_key(approval.id),
        "body": text(approval.model_dump_json(exclude=set(APPROVAL_MUTABLE))),
    }
    item.update({k: text(data[k]) for k in APPROVAL_MUTABLE if data[k] is not None})
    return item


def preset_item(preset: Preset) -> Item:
    return {**preset_key(preset.scope, preset.name), "body": text(preset.model_dump_json())}


def with_hidden(algorithm: Algorithm, hidden: bool) -> Algorithm:
    """``algorithm`` (a registered one) with its id's hidden flag. ``ValueError`` for a
    preset: only an algorithm with a source is registered."""
    if algorithm.source is None:
        raise ValueError(f"{algorithm.id} is a preset: only an algorithm with a source is "
                         "registered")
    source = algorithm.source.model_copy(update={"hidden": hidden})
    return algorithm.model_copy(update={"source": source})


def algorithm_version_item(scope: str, algorithm: Algorithm) -> Item:
    """One registered version, as registered; hidden belongs to the id (its pointer), so the
    version is kept with ``source.hidden`` false."""
    stored = with_hidden(algorithm, False)
    assert stored.source is not None
    return {
        **algorithm_version_key(scope, stored.id, stored.source.digest),
        "body": text(stored.model_dump_json()),
    }


def algorithm_pointer_item(scope: str, algorithm: Algorithm) -> Item:
    """The id's pointer at ``algorithm``, its current version, shown. It carries the version
    whole, so listing a scope is one Query of the pointers' partition."""
    stored = with_hidden(algorithm, False)
    assert stored.source is not None
    return {
        **algorithm_key(scope, stored.id),
        "digest": text(stored.source.digest),
        "hidden": {"BOOL": False},
        "body": text(stored.model_dump_json()),
    }


def model_state(model: ModelVersion) -> Item:
    """The attributes ``save_model_version`` rewrites: the status (its own attribute, for the
    decision's condition) and the other mutable fields as JSON."""
    return {
        "state": text(model.model_dump_json(include=set(_MODEL_STATE))),
        "status": text(model.status.value),
    }


def model_version_item(model: ModelVersion) -> Item:
    """A registered model version, findable by its training version (the models-of index)."""
    return {
        **model_version_key(model.group, model.number),
        "fixed": text(model.model_dump_json(exclude=set(MODEL_MUTABLE))),
        **model_state(model),
        f"{MODELS_OF_INDEX}PK": text(trained_partition(model.job, model.version)),
        f"{MODELS_OF_INDEX}SK": text(model.group),
    }


def model_source_item(model: ModelVersion) -> Item:
    """The item that finds ``model`` by the training version it was registered from."""
    return {
        **model_source_key(model.group, model.job, model.version),
        "number": number(model.number),
    }


def sweep_state(sweep: Sweep) -> dict[str, dict[str, str] | None]:
    """The attributes ``save_sweep`` rewrites; ``None`` means the attribute must be absent.

    The sweep is in the active index's ``SWEEPS#ACTIVE`` partition while it runs or its
    outbox isn't empty; ``backend_name`` is an attribute of its own, for the condition that
    tells a save that names the backend job for the first time from the ones after it.
    """
    listed = not sweep.status.terminal or bool(sweep.outbox)
    return {
        "state": text(sweep.model_dump_json(exclude=set(_SWEEP_STATE_EXCLUDE))),
        "status": text(sweep.status.value),
        "backend_name": text(sweep.backend_name) if sweep.backend_name else None,
        f"{ACTIVE_INDEX}PK": text(ACTIVE_SWEEPS) if listed else None,
        f"{ACTIVE_INDEX}SK": (text(f"{timestamp(sweep.created_at)}#{sweep.name}") if listed
                              else None),
    }


def sweep_item(sweep: Sweep) -> Item:
    state = {k: v for k, v in sweep_state(sweep).items() if v is not None}
    return {
        **sweep_key(sweep.name),
        "revision": number(sweep.revision),
        "fixed": text(sweep.model_dump_json(include=set(SWEEP_FIXED_FIELDS))),
        **state,
    }


def sweep_guard_item(sweep: Sweep) -> Item:
    """The item that finds ``sweep`` by the request key it was created under."""
    assert sweep.request_key is not None, "only a sweep created under a request key"
    return {**sweep_guard_key(sweep.request_key), "sweep": text(sweep.name)}


def sweep_backend_item(sweep: Sweep) -> Item:
    """The item that finds ``sweep`` by its backend job's name with a consistent GetItem."""
    assert sweep.backend_name, "only a sweep that names its backend job"
    return {**sweep_backend_key(sweep.backend_name), "sweep": text(sweep.name)}


# -- decoding ---------------------------------------------------------------------------


def version_from_item(item: Item) -> JobVersion:
    data = {
        **json.loads(item["fixed"]["S"]),
        **json.loads(item["state"]["S"]),
        "revision": int(item["revision"]["N"]),
    }
    return JobVersion.model_validate(data)


def job_from_item(item: Item) -> TrainingJob:
    data = {**json.loads(item["body"]["S"]), "latest_version": int(item["latest_version"]["N"])}
    return TrainingJob.model_validate(data)


def approval_from_item(item: Item) -> Approval:
    data = json.loads(item["body"]["S"])
    data.update({k: item[k]["S"] for k in APPROVAL_MUTABLE if k in item})
    return Approval.model_validate(data)


def preset_from_item(item: Item) -> Preset:
    return Preset.model_validate_json(item["body"]["S"])


def algorithm_from_item(item: Item, pointer: Item | None = None) -> Algorithm:
    """A pointer item, or a version item with its id's ``pointer`` (the hidden flag)."""
    hidden = (pointer or item)["hidden"]["BOOL"]
    return with_hidden(Algorithm.model_validate_json(item["body"]["S"]), hidden)


def model_from_item(item: Item) -> ModelVersion:
    data = {
        **json.loads(item["fixed"]["S"]),
        **json.loads(item["state"]["S"]),
        "status": item["status"]["S"],
    }
    return ModelVersion.model_validate(data)


def sweep_from_item(item: Item) -> Sweep:
    data = {
        **json.loads(item["fixed"]["S"]),
        **json.loads(item["state"]["S"]),
        "revision": int(item["revision"]["N"]),
    }
    return Sweep.model_validate(data)
