"""The conditional writes, as request parameters (pure, no I/O).

Each function returns what the low-level client takes, for one table: a ``Put``/``Update``
entry of ``TransactWriteItems`` or the keyword arguments of ``UpdateItem``/``DeleteItem``.
Every write carries its condition: nothing here writes blind.
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.adapters.dynamodb.items import (
    algorithm_pointer_item,
    algorithm_version_item,
    guard_item,
    holdings,
    job_item,
    model_source_item,
    model_state,
    model_version_item,
    sweep_backend_item,
    sweep_guard_item,
    sweep_item,
    sweep_state,
    version_item,
    version_state,
)
from bot.adapters.dynamodb.keys import (
    Item,
    algorithm_key,
    approval_key,
    job_key,
    model_group_key,
    model_version_key,
    number,
    pool_key,
    preset_key,
    sweep_key,
    text,
    version_key,
)
from bot.domain import Algorithm, Decision, JobVersion, ModelStatus, ModelVersion, TrainingJob
from bot.domain.sweep import Sweep

__all__ = [
    "algorithm_hide_update",
    "algorithm_pointer_put",
    "algorithm_registration",
    "allocation",
    "approval_message_update",
    "decide_update",
    "model_registration",
    "model_update",
    "pool_claim",
    "pool_release",
    "preset_delete",
    "put_new",
    "sweep_backend_claim",
    "sweep_creation",
    "sweep_name_released",
    "sweep_update",
    "version_update",
]


def put_new(table: str, item: Item) -> dict[str, Any]:
    """A ``Put`` that fails when an item with that key exists."""
    return {
        "Put": {
            "TableName": table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(PK)",
        }
    }


def allocation(table: str, stored: JobVersion, new_job: TrainingJob | None) -> list[dict]:
    """The transaction that stores version ``stored.number``: [job counter or new job,
    version, request-key guard (only with a request key)]. The counter moves from n-1 to n
    only if it is still n-1."""
    if new_job is not None:
        first = put_new(table, job_item(new_job))
    else:
        first = {
            "Update": {
                "TableName": table,
                "Key": job_key(stored.job),
                "UpdateExpression": "SET latest_version = :next",
                "ConditionExpression": "latest_version = :latest",
                "ExpressionAttributeValues": {
                    ":latest": number(stored.number - 1),
                    ":next": number(stored.number),
                },
                # The winner's counter comes back with the failure: no re-read needed.
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
    items = [first, put_new(table, version_item(stored))]
    if stored.request_key is not None:
        items.append(put_new(table, guard_item(stored)))
    return items


def _revision_update(table: str, key: Item, state: dict[str, dict[str, str] | None],
                     revision: int, condition: str = "",
                     values: dict[str, dict[str, str]] | None = None) -> dict:
    """The Update that writes ``state`` (``None``: remove the attribute) and moves the
    revision on, if the stored revision is ``revision`` (and ``condition`` holds, which may
    name the state's attributes as ``#name``/``:name``, and ``values``)."""
    names = {f"#{k}": k for k in state}
    present = {k: v for k, v in state.items() if v is not None}
    sets = ["revision = :next", *(f"#{k} = :{k}" for k in present)]
    removes = [f"#{k}" for k, v in state.items() if v is None]
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": expression,
        "ConditionExpression": "revision = :revision" + (f" AND {condition}" if condition else ""),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {
            ":revision": number(revision),
            ":next": number(revision + 1),
            **{f":{k}": v for k, v in present.items()},
            **(values or {}),
        },
    }


def version_update(table: str, version: JobVersion, *, held: JobVersion | None = None,
                   charging: bool = False) -> dict:
    """The Update (compare-and-set on ``revision``) that writes ``version``'s state, if the
    stored version holds what ``held`` (by default ``version``) holds of the store's: its
    pool place, its caps' places and its charge (:func:`~.items.holdings`); ``charging``:
    if it was never charged instead."""
    parts, values = [], {}
    for name, value in holdings(held or version).items():
        if value is None or (name == "charge" and charging):
            parts.append(f"attribute_not_exists(#{name})")
        else:
            parts.append(f"#{name} = :held_{name}")
            values[f":held_{name}"] = value
    return _revision_update(table, version_key(version.job, version.number),
                            version_state(version), version.revision, " AND ".join(parts),
                            values)


def pool_claim(table: str, pool: str, *, slots: int) -> dict[str, Any]:
    """Take one of the pool's ``slots`` places: fails when all are held."""
    return {
        "Update": {
            "TableName": table,
            "Key": pool_key(pool),
            "UpdateExpression": "SET active = if_not_exists(active, :zero) + :one",
            "ConditionExpression": "attribute_not_exists(active) OR active < :slots",
            "ExpressionAttributeValues": {
                ":zero": number(0), ":one": number(1), ":slots": number(slots),
            },
        }
    }


def pool_release(table: str, pool: str) -> dict[str, Any]:
    """Give one place of the pool back. Unconditional: it goes in a transaction with the
    version update that requires the version to hold the place."""
    return {
        "Update": {
            "TableName": table,
            "Key": pool_key(pool),
            "UpdateExpression": "ADD active :minus_one",
            "ExpressionAttributeValues": {":minus_one": number(-1)},
        }
    }


def decide_update(
    table: str, approval_id: str, decision: Decision, *, by: str, at: datetime, note: str
) -> dict:
    """Record a decision on an approval that exists and has none yet."""
    return {
        "TableName": table,
        "Key": approval_key(approval_id),
        "UpdateExpression": "SET #d = :d, #by = :by, #at = :at, #note = :note",
        "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(#d)",
        "ExpressionAttributeNames": {
            "#d": "decision",
            "#by": "decided_by",
            "#at": "decided_at",
            "#note": "decision_note",
        },
        "ExpressionAttributeValues": {
            ":d": text(decision.value),
            ":by": text(by),
            ":at": text(at.isoformat()),
            ":note": text(note),
        },
    }


def approval_message_update(table: str, approval_id: str, *, channel: str, ts: str) -> dict:
    """Where the approval's card is, on an approval that exists."""
    return {
        "TableName": table,
        "Key": approval_key(approval_id),
        "UpdateExpression": "SET #channel = :channel, #ts = :ts",
        "ConditionExpression": "attribute_exists(PK)",
        "ExpressionAttributeNames": {"#channel": "channel", "#ts": "message_ts"},
        "ExpressionAttributeValues": {":channel": text(channel), ":ts": text(ts)},
    }


def preset_delete(table: str, scope: str, name: str) -> dict[str, Any]:
    """Delete a preset that exists."""
    return {
        "TableName": table,
        "Key": preset_key(scope, name),
        "ConditionExpression": "attribute_exists(PK)",
    }


def algorithm_pointer_put(table: str, scope: str, algorithm: Algorithm) -> dict[str, Any]:
    """Make ``algorithm`` its id's current version, shown. Unconditional on purpose: the
    last registration wins, and the version it points at is never deleted."""
    return {"TableName": table, "Item": algorithm_pointer_item(scope, algorithm)}


def algorithm_registration(table: str, scope: str, algorithm: Algorithm) -> list[dict]:
    """The transaction that registers ``algorithm``: [the version, only if new (the item
    already stored comes back when it isn't); the id's pointer at it]."""
    version = put_new(table, algorithm_version_item(scope, algorithm))
    version["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return [version, {"Put": algorithm_pointer_put(table, scope, algorithm)}]


def algorithm_hide_update(table: str, scope: str, algo_id: str, *, hidden: bool) -> dict:
    """Hide (or show) an id that was registered."""
    return {
        "TableName": table,
        "Key": algorithm_key(scope, algo_id),
        "UpdateExpression": "SET #hidden = :hidden",
        "ConditionExpression": "attribute_exists(PK)",
        "ExpressionAttributeNames": {"#hidden": "hidden"},
        "ExpressionAttributeValues": {":hidden": {"BOOL": hidden}},
    }


def model_registration(table: str, stored: ModelVersion) -> list[dict]:
    """The transaction that stores model version ``stored.number``: [the group's counter,
    which moves from n-1 to n only if it still is n-1 (created at 1 only if the group is new);
    the version; the item that finds it by its training version, which must be new].
    Each failed condition returns the item that failed it, so no re-read is needed."""
    values = {":next": number(stored.number)}
    if stored.number == 1:
        condition = "attribute_not_exists(PK)"
    else:
        condition = "latest_number = :latest"
        values[":latest"] = number(stored.number - 1)
    counter = {
        "Update": {
            "TableName": table,
            "Key": model_group_key(stored.group),
            "UpdateExpression": "SET latest_number = :next",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }
    source = put_new(table, model_source_item(stored))
    source["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return [counter, put_new(table, model_version_item(stored)), source]


def model_update(table: str, model: ModelVersion, *,
                 expect_status: ModelStatus | None = None) -> dict[str, Any]:
    """Write the mutable fields of a model version that exists; with ``expect_status``, only
    while its stored status is that one (a decision is taken once)."""
    state = model_state(model)
    condition = "attribute_exists(PK)"
    values = {f":{k}": v for k, v in state.items()}
    if expect_status is not None:
        condition += " AND #status = :expected"
        values[":expected"] = text(expect_status.value)
    return {
        "TableName": table,
        "Key": model_version_key(model.group, model.number),
        # Both names are DynamoDB reserved words.
        "UpdateExpression": "SET #state = :state, #status = :status",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#state": "state", "#status": "status"},
        "ExpressionAttributeValues": values,
    }


def sweep_creation(table: str, stored: Sweep, job: TrainingJob) -> list[dict]:
    """The transaction that creates a sweep: [its job, which must be new (no versions yet:
    its counter at 0); the sweep; the request-key guard (only with a request key)]. Every
    item must be new. A sweep named already adds its backend name's claim
    (:func:`sweep_backend_claim`)."""
    items = [put_new(table, job_item(job, latest_version=0)), put_new(table, sweep_item(stored))]
    if stored.request_key is not None:
        guard = put_new(table, sweep_guard_item(stored))
        guard["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        items.append(guard)
    return items


def sweep_update(table: str, sweep: Sweep, *, same_backend: bool = False) -> dict:
    """The Update (compare-and-set on ``revision``) that writes ``sweep``'s state;
    ``same_backend`` also requires the stored sweep to have the same backend name already
    (then its pointer exists, and the save needs no transaction)."""
    return _revision_update(table, sweep_key(sweep.name), sweep_state(sweep), sweep.revision,
                            "#backend_name = :backend_name" if same_backend else "")


def sweep_backend_claim(table: str, sweep: Sweep, *, holder: str | None = None) -> dict[str, Any]:
    """The ``Put`` of ``sweep``'s backend-name pointer: new, or already the sweep's (the
    sweep that holds the name comes back when it is another). With ``holder``, the pointer
    must be that sweep's instead: one that no longer has the name (see
    :func:`sweep_name_released`), whose pointer is taken over."""
    return {
        "Put": {
            "TableName": table,
            "Item": sweep_backend_item(sweep),
            "ConditionExpression": ("#sweep = :holder" if holder is not None
                                    else "attribute_not_exists(PK) OR #sweep = :holder"),
            "ExpressionAttributeNames": {"#sweep": "sweep"},
            "ExpressionAttributeValues": {":holder": text(holder or sweep.name)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def sweep_name_released(table: str, holder: str, backend_name: str) -> dict[str, Any]:
    """A ``ConditionCheck`` that sweep ``holder`` no longer has ``backend_name``: in one
    transaction with the pointer's take-over, the name can't be taken back meanwhile."""
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": sweep_key(holder),
            "ConditionExpression": "attribute_not_exists(#name) OR #name <> :name",
            "ExpressionAttributeNames": {"#name": "backend_name"},
            "ExpressionAttributeValues": {":name": text(backend_name)},
        }
    }
