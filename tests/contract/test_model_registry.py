"""The model-registry part of the JobStore contract, run against every store.

A completed training version is registered as version 1, 2, … of a model group (numbers
allocated atomically, per group), once per group however often it is asked; a save writes the
fields that change after registration (the package, the card, the decision), and a decision
taken with ``expect_status`` is taken once.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.adapters.dynamodb.store import DynamoStore
from bot.adapters.sqlite import SqliteStore
from bot.adapters.sqlite.migrations import MIGRATIONS
from bot.domain import Conflict, ModelStatus, ModelVersion, NotFound
from bot.ports import JobStore
from tests.contract.conftest import TABLE, AtomicRequests
from tests.contract.test_job_store import T0, concurrently, start

DECIDED_AT = T0 + timedelta(hours=2)


def model(group: str = "churn", job: str = "demo", version: int = 1, **fields: Any
          ) -> ModelVersion:
    """What the service hands to ``add_model_version`` (``number`` is the store's to pick)."""
    values: dict[str, Any] = {
        "group": group,
        "number": 1,
        "job": job,
        "version": version,
        "algorithm": "tabular-classification",
        "algorithm_version": "1.2.0",
        "algorithm_digest": "d" * 64,
        "artifact": f"s3://trainbot-artifacts/{job}/v{version}/model.tar.gz",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainbot:1.2.0",
        "metrics": {"accuracy": 0.9375, "loss": 0.125},
        "objective_metric": "accuracy",
        "objective_value": 0.9375,
        "lineage": {"job": job, "version": str(version), "data.train": "s3://d/train/"},
        "registered_by": "UREQ",
        "registered_at": T0 + timedelta(hours=1),
        **fields,
    }
    return ModelVersion(**values)


def decide(stored: ModelVersion, status: ModelStatus = ModelStatus.APPROVED,
           by: str = "UBOSS") -> ModelVersion:
    return stored.model_copy(update={"status": status, "decided_by": by,
                                     "decided_at": DECIDED_AT, "note": "looks good"})


# -- registering --------------------------------------------------------------------------


def test_a_registered_model_round_trips_as_version_one(store: JobStore) -> None:
    stored, created = store.add_model_version(model(number=7))

    assert created
    assert stored == model()  # the number is the store's: 1 for a new group
    assert stored.status is ModelStatus.PENDING
    assert store.get_model_version("churn", 1) == stored


def test_versions_are_numbered_from_one_per_group(store: JobStore) -> None:
    numbers = [store.add_model_version(model(version=v))[0].number for v in (1, 2, 3)]
    other = store.add_model_version(model("fraud", version=4))[0]

    assert numbers == [1, 2, 3]
    assert other.number == 1
    assert [m.version for m in store.list_model_versions("churn")] == [1, 2, 3]
    assert [m.version for m in store.list_model_versions("fraud")] == [4]


def test_registering_a_training_version_again_returns_the_stored_one(store: JobStore) -> None:
    first, _ = store.add_model_version(model())

    again, created = store.add_model_version(
        model(registered_by="UOTHER", registered_at=T0 + timedelta(days=1), note="retry"))

    assert not created
    assert again == first
    assert store.list_model_versions("churn") == [first]
    assert store.list_model_groups() == ["churn"]


def test_a_registered_version_is_replayed_even_after_it_was_decided(store: JobStore) -> None:
    first, _ = store.add_model_version(model())
    decided = store.save_model_version(decide(first), expect_status=ModelStatus.PENDING)

    again, created = store.add_model_version(model())

    assert (again, created) == (decided, False)


def test_the_same_training_version_in_another_group_is_its_own_v1(store: JobStore) -> None:
    store.add_model_version(model("churn", version=1))
    store.add_model_version(model("churn", version=2))

    other, created = store.add_model_version(model("fraud", version=2))

    assert created
    assert (other.group, other.number) == ("fraud", 1)
    assert store.models_of("demo", 2) == [store.get_model_version("churn", 2), other]


# -- reading ------------------------------------------------------------------------------


def test_list_model_groups_is_sorted_and_holds_each_group_once(store: JobStore) -> None:
    assert store.list_model_groups() == []
    for group, version in (("zeta", 1), ("alpha", 2), ("m-1", 3), ("alpha", 4), ("m0", 5)):
        store.add_model_version(model(group, version=version))

    assert store.list_model_groups() == ["alpha", "m-1", "m0", "zeta"]


def test_models_of_lists_the_models_of_one_training_version_by_group(store: JobStore) -> None:
    start(store)
    store.add_model_version(model("zeta", version=1))
    store.add_model_version(model("alpha", version=1))
    store.add_model_version(model("alpha", version=2))
    store.add_model_version(model("alpha", job="other", version=1))

    found = store.models_of("demo", 1)

    assert [(m.group, m.number, m.job, m.version) for m in found] == [
        ("alpha", 1, "demo", 1), ("zeta", 1, "demo", 1)]
    assert store.models_of("demo", 3) == []
    assert store.models_of("nope", 1) == []


def test_missing_groups_and_versions_are_not_found(store: JobStore) -> None:
    stored, _ = store.add_model_version(model())

    with pytest.raises(NotFound, match="version 2 of model `churn`"):
        store.get_model_version("churn", 2)
    with pytest.raises(NotFound, match="model `nope`"):
        store.get_model_version("nope", 1)
    with pytest.raises(NotFound, match="model `nope`"):
        store.list_model_versions("nope")
    with pytest.raises(NotFound):
        store.save_model_version(stored.model_copy(update={"number": 2}))
    with pytest.raises(NotFound):
        store.save_model_version(decide(stored.model_copy(update={"group": "nope"})),
                                 expect_status=ModelStatus.PENDING)


# -- saving and deciding ------------------------------------------------------------------


def test_save_writes_the_fields_that_change_after_registration(store: JobStore) -> None:
    stored, _ = store.add_model_version(model())
    changed = stored.model_copy(update={
        "package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1",
        "channel": "C1", "message_ts": "1700000000.000100"})

    saved = store.save_model_version(changed)

    assert saved == changed
    assert store.get_model_version("churn", 1) == changed
    assert store.list_model_versions("churn") == [changed]
    assert store.models_of("demo", 1) == [changed]


def test_save_keeps_what_registration_fixed(store: JobStore) -> None:
    stored, _ = store.add_model_version(model())
    tampered = decide(stored).model_copy(update={
        "artifact": "s3://elsewhere/model.tar.gz", "metrics": {"accuracy": 1.0},
        "lineage": {}, "registered_by": "UEVIL", "algorithm_version": "9.9.9"})

    saved = store.save_model_version(tampered)

    assert saved == decide(stored)
    assert store.get_model_version("churn", 1) == decide(stored)


def test_a_decision_is_taken_once(store: JobStore) -> None:
    stored, _ = store.add_model_version(model())
    approved = store.save_model_version(decide(stored), expect_status=ModelStatus.PENDING)

    with pytest.raises(Conflict, match="already approved by UBOSS"):
        store.save_model_version(decide(stored, ModelStatus.REJECTED, by="UOTHER"),
                                 expect_status=ModelStatus.PENDING)

    assert approved == decide(stored)
    assert store.get_model_version("churn", 1) == approved


def test_a_decided_model_can_still_be_saved_without_expect_status(store: JobStore) -> None:
    stored, _ = store.add_model_version(model())
    approved = store.save_model_version(decide(stored), expect_status=ModelStatus.PENDING)
    carded = approved.model_copy(update={"channel": "C1", "message_ts": "1.5"})

    assert store.save_model_version(carded) == carded
    assert store.get_model_version("churn", 1) == carded


def test_concurrent_decisions_have_one_winner(store: JobStore) -> None:
    stored, _ = store.add_model_version(model())
    statuses = (ModelStatus.APPROVED, ModelStatus.REJECTED)

    def attempt(i: int) -> ModelVersion | None:
        try:
            return store.save_model_version(decide(stored, statuses[i % 2], by=f"U{i}"),
                                            expect_status=ModelStatus.PENDING)
        except Conflict:
            return None

    winners = [w for w in concurrently(10, attempt) if w is not None]

    assert len(winners) == 1
    assert store.get_model_version("churn", 1) == winners[0]


# -- concurrency of registration ----------------------------------------------------------


def test_concurrent_registrations_in_one_group_number_without_gaps(store: JobStore) -> None:
    results = concurrently(8, lambda i: store.add_model_version(model(version=i + 1)))

    assert all(created for _, created in results)
    assert sorted(m.number for m, _ in results) == list(range(1, 9))
    listed = store.list_model_versions("churn")
    assert [m.number for m in listed] == list(range(1, 9))
    assert sorted(m.version for m in listed) == list(range(1, 9))


def test_concurrent_registrations_of_one_training_version_store_it_once(
    store: JobStore,
) -> None:
    results = concurrently(8, lambda i: store.add_model_version(model(registered_by=f"U{i}")))

    assert sum(created for _, created in results) == 1
    winner = next(m for m, created in results if created)
    assert all(m == winner for m, _ in results)
    assert store.list_model_versions("churn") == [winner]


# -- SQLite: a migration, one file --------------------------------------------------------


def test_sqlite_models_survive_reopening_the_file(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "trainbot.db")
    v1, _ = first.add_model_version(model(version=1))
    approved = first.save_model_version(decide(v1), expect_status=ModelStatus.PENDING)
    first.close()

    second = SqliteStore(tmp_path / "trainbot.db")

    assert second.list_model_versions("churn") == [approved]
    assert second.add_model_version(model(version=2))[0].number == 2
    assert second.add_model_version(model(version=1)) == (approved, False)
    second.close()


def test_sqlite_adds_the_registry_to_a_file_from_before_it(tmp_path: Path) -> None:
    path = tmp_path / "trainbot.db"
    before = len(MIGRATIONS) - 1
    with sqlite3.connect(path) as conn:
        for statements in MIGRATIONS[:before]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {before}")
    old = SqliteStore(path)  # a file with a job in it, as the previous trainbot left it
    version = start(old)
    old.close()

    store = SqliteStore(path)

    assert store.get_version("demo", 1) == version
    assert store.add_model_version(model())[1]
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_sqlite_models_of_uses_the_training_version_index(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "trainbot.db").close()

    with sqlite3.connect(tmp_path / "trainbot.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT fixed FROM model_versions WHERE job = ? AND version = ?",
            ("demo", 1),
        ).fetchall()
    assert "model_versions_by_training_version" in " ".join(str(row) for row in plan)


# -- DynamoDB: items by key, lists by one Query -------------------------------------------


def _raw(client: Any, pk: str, sk: str) -> dict[str, Any]:
    return client.get_item(TableName=TABLE, Key={"PK": {"S": pk}, "SK": {"S": sk}})["Item"]


def test_dynamodb_keeps_a_version_a_source_and_a_counter_item(dynamodb: Any) -> None:
    client, _ = dynamodb
    store = DynamoStore(TABLE, client=client)
    store.add_model_version(model(version=1))
    store.add_model_version(model(version=2))

    version = _raw(client, "MODEL#churn", "V#000002")
    assert version["status"] == {"S": "PendingManualApproval"}
    assert (version["GSI1PK"], version["GSI1SK"]) == ({"S": "TRAINED#demo#000002"},
                                                      {"S": "churn"})
    assert _raw(client, "MODEL#churn", "FROM#demo#000002")["number"] == {"N": "2"}
    assert _raw(client, "MODELS", "churn")["latest_number"] == {"N": "2"}


def test_dynamodb_lists_with_one_query_however_many_models(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)

    def reads() -> Counter[str]:
        calls.clear()
        store.list_model_groups()
        store.list_model_versions("g0")
        store.models_of("demo", 1)
        return Counter(calls)

    store.add_model_version(model("g0", version=1))
    few = reads()
    for group in ("g0", "g1", "g2", "g3"):
        for version in range(1, 9):
            store.add_model_version(model(group, version=version))
    many = reads()

    assert few == many == Counter({"Query": 3})
    assert len(store.list_model_versions("g0")) == 8
    assert [m.group for m in store.models_of("demo", 1)] == ["g0", "g1", "g2", "g3"]


def test_dynamodb_registers_with_one_transaction_and_replays_without_writing(
    dynamodb: Any,
) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)
    store.add_model_version(model(version=1))
    calls.clear()

    store.add_model_version(model(version=2))
    assert calls["TransactWriteItems"] == 1

    calls.clear()
    assert not store.add_model_version(model(version=2))[1]
    assert dict(calls) == {"GetItem": 2}  # the training version's item, then the version


def test_dynamodb_decides_with_one_conditional_update(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)
    stored, _ = store.add_model_version(model())
    calls.clear()

    store.save_model_version(decide(stored), expect_status=ModelStatus.PENDING)

    assert dict(calls) == {"UpdateItem": 1}
    assert _raw(client, "MODEL#churn", "V#000001")["status"] == {"S": "Approved"}


class WithoutReturnedItems(AtomicRequests):
    """A client whose failed conditions come back without the item that failed them, as from
    an endpoint that ignores ``ReturnValuesOnConditionCheckFailure``: the store reads it."""

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name not in ("transact_write_items", "update_item"):
            return call

        def stripped(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except ClientError as exc:
                exc.response.pop("Item", None)
                for reason in exc.response.get("CancellationReasons", []):
                    reason.pop("Item", None)
                raise

        return stripped


def test_dynamodb_races_resolve_without_returned_items(dynamodb: Any) -> None:
    client, _ = dynamodb
    store = DynamoStore(TABLE, client=WithoutReturnedItems(client))

    same = concurrently(6, lambda i: store.add_model_version(model(registered_by=f"U{i}")))
    others = concurrently(6, lambda i: store.add_model_version(model(version=i + 2)))
    stored = same[0][0]
    decided = store.save_model_version(decide(stored), expect_status=ModelStatus.PENDING)

    assert sum(created for _, created in same) == 1
    assert all(m == stored for m, _ in same)
    assert sorted(m.number for m, _ in others) == list(range(2, 8))
    with pytest.raises(Conflict, match="already approved by UBOSS"):
        store.save_model_version(decide(stored), expect_status=ModelStatus.PENDING)
    with pytest.raises(NotFound):
        store.save_model_version(decided.model_copy(update={"number": 9}))
