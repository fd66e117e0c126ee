"""The sweep part of the JobStore contract, run against every store.

A sweep is created with its job (no versions yet: its trials are the job's versions, added
later), once per request key; a save is compare-and-set on ``revision`` and never rewrites
what creation fixed; a sweep is listed as active while it runs or has something to tell the
channel, and found by its backend (tuning) job's name at once. Trial versions carry their
trial number (fixed) and whether they were pruned (not).
"""

from __future__ import annotations

import functools
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.dynamodb.store import DynamoStore
from bot.adapters.sqlite import SqliteStore
from bot.adapters.sqlite.migrations import MIGRATIONS
from bot.catalog import load_algorithms
from bot.domain import Conflict, NotFound, StaleWrite, Status, TrainingJob
from bot.domain.sweep import SWEEP_FIXED_FIELDS, Sweep, SweepStatus, trial_request_key
from bot.domain.sweep_space import SweepSpec, build_sweep_spec
from bot.ports import JobStore
from tests.contract.conftest import TABLE
from tests.contract.test_job_store import T0, claim, concurrently, draft, start
from tests.contract.test_model_registry import WithoutReturnedItems

ALGORITHMS = Path(__file__).resolve().parents[2] / "algorithms"


@functools.cache
def spec(trials: int = 4) -> SweepSpec:
    algorithm = load_algorithms(ALGORITHMS)["tabular-classification"]
    return build_sweep_spec(
        algorithm,
        {"learning_rate": "0.01..0.5:log", "max_iter": "50..400", "early_stopping": "true|false"},
        trials=trials, parallel=2, pool="cpu-small")


def sweep(name: str = "tune", *, at: datetime = T0, **fields: Any) -> Sweep:
    values: dict[str, Any] = {
        "name": name,
        "spec": spec(),
        "requested_by": "UREQ",
        "created_at": at,
        "updated_at": at,
        "origin": "preset fast",
        "channel": "C1",
        **fields,
    }
    return Sweep(**values)


def job_of(s: Sweep) -> TrainingJob:
    return TrainingJob(name=s.name, owner=s.requested_by, channel=s.channel,
                       created_at=s.created_at)


def create(store: JobStore, name: str = "tune", **fields: Any) -> Sweep:
    s = sweep(name, **fields)
    stored, created = store.create_sweep(s, job=job_of(s))
    assert created
    return stored


# -- creating -----------------------------------------------------------------------------


def test_a_new_sweep_is_revision_one_with_its_job_and_no_versions(store: JobStore) -> None:
    stored, created = store.create_sweep(sweep(revision=7), job=job_of(sweep()))

    assert created
    assert stored == sweep(revision=1)
    assert store.get_sweep("tune") == stored
    job = store.get_job("tune")
    assert (job.owner, job.channel, job.created_at, job.latest_version) == ("UREQ", "C1", T0, 0)
    assert store.list_versions("tune") == []
    assert "tune" in [j.name for j in store.list_jobs()]


def test_a_sweeps_trials_are_its_jobs_versions_from_one(store: JobStore) -> None:
    create(store)

    first, _ = store.add_version(draft("tune", trial=0))
    second, _ = store.add_version(draft("tune", trial=1))

    assert (first.number, second.number) == (1, 2)
    assert store.get_job("tune").latest_version == 2
    assert [v.trial for v in store.list_versions("tune")] == [0, 1]


def test_a_sweep_cannot_take_the_name_of_an_existing_job(store: JobStore) -> None:
    start(store, "demo")
    create(store, "tune")

    with pytest.raises(Conflict):
        store.create_sweep(sweep("demo"), job=job_of(sweep("demo")))
    with pytest.raises(Conflict):
        store.create_sweep(sweep("tune", origin="again"), job=job_of(sweep("tune")))
    with pytest.raises(NotFound):
        store.get_sweep("demo")
    assert store.get_job("demo").latest_version == 1
    assert store.get_sweep("tune").origin == "preset fast"


def test_a_plain_job_cannot_take_a_sweeps_name(store: JobStore) -> None:
    create(store)

    with pytest.raises(Conflict):
        start(store, "tune")
    assert store.list_versions("tune") == []


def test_the_job_must_be_the_sweeps_job(store: JobStore) -> None:
    with pytest.raises(ValueError):
        store.create_sweep(sweep("tune"), job=job_of(sweep("other")))


def test_a_request_key_creates_one_sweep_and_a_replay_writes_nothing(store: JobStore) -> None:
    first = create(store, request_key="slack-1")

    again, created = store.create_sweep(sweep(request_key="slack-1", origin="retry"),
                                        job=job_of(sweep()))
    other, other_created = store.create_sweep(sweep("elsewhere", request_key="slack-1"),
                                              job=job_of(sweep("elsewhere")))

    assert not created and not other_created
    assert again == other == first
    with pytest.raises(NotFound):
        store.get_job("elsewhere")


def test_a_replay_returns_the_sweep_as_it_is_now(store: JobStore) -> None:
    first = create(store, request_key="slack-1")
    moved = store.save_sweep(first.model_copy(update={"best_told": 2}))

    again, created = store.create_sweep(sweep(request_key="slack-1"), job=job_of(sweep()))

    assert not created
    assert again == moved


def test_a_sweeps_request_key_is_apart_from_versions_keys(store: JobStore) -> None:
    v1 = start(store, "demo", request_key="slack-1")

    stored, created = store.create_sweep(sweep(request_key="slack-1"), job=job_of(sweep()))

    assert created and stored.request_key == "slack-1"
    assert store.add_version(draft("demo", request_key="slack-1")) == (v1, False)


def test_concurrent_creations_with_one_key_create_one_sweep(store: JobStore) -> None:
    results = concurrently(
        6, lambda i: store.create_sweep(sweep(request_key="slack-9", origin=f"try {i}"),
                                        job=job_of(sweep())))

    assert sorted(created for _, created in results) == [False] * 5 + [True]
    winner = next(s for s, created in results if created)
    assert all(s == winner for s, _ in results)
    assert store.get_sweep("tune") == winner
    assert store.get_job("tune").latest_version == 0


def test_missing_sweeps_are_not_found(store: JobStore) -> None:
    start(store, "demo")

    with pytest.raises(NotFound):
        store.get_sweep("ghost")
    with pytest.raises(NotFound):
        store.get_sweep("demo")  # a plain job is not a sweep


# -- saving -------------------------------------------------------------------------------


def test_save_sweep_is_compare_and_set_on_revision(store: JobStore) -> None:
    s1 = create(store)
    later = T0 + timedelta(minutes=3)

    s2 = store.save_sweep(s1.model_copy(update={"message_ts": "1.2", "updated_at": later}))

    assert s2.revision == 2 and s2.message_ts == "1.2"
    assert store.get_sweep("tune") == s2
    with pytest.raises(StaleWrite):
        store.save_sweep(s1.model_copy(update={"card_error": "channel_not_found"}))
    assert store.get_sweep("tune") == s2
    assert store.save_sweep(s2).revision == 3


def test_save_sweep_of_a_missing_sweep_is_not_found(store: JobStore) -> None:
    start(store, "demo")

    with pytest.raises(NotFound):
        store.save_sweep(sweep("ghost", revision=1))
    with pytest.raises(NotFound):
        store.save_sweep(sweep("demo", revision=1))


def test_a_sweep_round_trips_every_changeable_field(store: JobStore) -> None:
    s1 = create(store, status=SweepStatus.AWAITING_APPROVAL)
    at = T0 + timedelta(hours=1)
    rich = s1.model_copy(update={
        "status": SweepStatus.STOPPING, "updated_at": at, "backend_name": "tb-tune-4f2a",
        "approval_id": "appr-1", "approved_by": "UBOSS", "estimated_cost_usd": 1.2345,
        "message_ts": "1700000000.000100", "card_error": "not_in_channel", "best_told": 3,
        "stopped_by": "UREQ", "failure_reason": "capacité ✓", "outbox": ["new-best"],
    })

    saved = store.save_sweep(rich)

    assert saved == rich.model_copy(update={"revision": 2})
    assert store.get_sweep("tune") == saved


def test_save_sweep_keeps_the_fields_fixed_at_creation(store: JobStore) -> None:
    s1 = create(store, request_key="slack-1")
    tampered = s1.model_copy(update={
        "spec": spec(trials=9), "requested_by": "UOTHER", "created_at": T0 + timedelta(days=1),
        "origin": "forged", "request_key": "other", "backend": "sagemaker",
        "status": SweepStatus.STOPPING,
    })
    changed = {k for k in SWEEP_FIXED_FIELDS if getattr(tampered, k) != getattr(s1, k)}
    assert changed == SWEEP_FIXED_FIELDS - {"name"}  # every fixed field but the key

    saved = store.save_sweep(tampered)

    assert saved.status is SweepStatus.STOPPING
    assert saved == s1.model_copy(update={"status": SweepStatus.STOPPING, "revision": 2})
    assert store.get_sweep("tune") == saved
    assert store.create_sweep(sweep(request_key="slack-1"), job=job_of(sweep())) == (saved, False)


def test_concurrent_saves_of_one_revision_have_one_winner(store: JobStore) -> None:
    s1 = create(store)

    def save(i: int) -> Sweep | None:
        try:
            return store.save_sweep(s1.model_copy(update={"best_told": i}))
        except StaleWrite:
            return None

    winners = [s for s in concurrently(2, save) if s is not None]
    assert len(winners) == 1 and winners[0].revision == 2
    assert store.get_sweep("tune") == winners[0]

    s1 = winners[0]
    winners = [s for s in concurrently(6, save) if s is not None]
    assert len(winners) == 1 and winners[0].revision == 3
    assert store.get_sweep("tune") == winners[0]


# -- active sweeps ------------------------------------------------------------------------


def test_an_ended_sweep_stays_active_until_its_outbox_is_empty(store: JobStore) -> None:
    s1 = create(store)
    assert store.list_active_sweeps() == [s1]

    ended = store.save_sweep(s1.transition(SweepStatus.COMPLETED, at=T0 + timedelta(hours=2)))

    assert ended.status.terminal and ended.outbox == ["ended"]
    assert store.list_active_sweeps() == [ended]
    told = store.save_sweep(ended.model_copy(update={"outbox": []}))
    assert store.list_active_sweeps() == []
    assert store.get_sweep("tune") == told


def test_list_active_sweeps_is_oldest_first_and_holds_no_done_sweep(store: JobStore) -> None:
    late = create(store, "late", at=T0 + timedelta(hours=2))
    early = create(store, "early", at=T0)
    pending = create(store, "pending", at=T0 + timedelta(hours=1),
                     status=SweepStatus.AWAITING_APPROVAL)
    twin = create(store, "a-twin", at=T0 + timedelta(hours=2))
    done = create(store, "done", at=T0 - timedelta(days=1))
    rejected = store.save_sweep(done.transition(SweepStatus.REJECTED, at=T0))
    store.save_sweep(rejected.model_copy(update={"outbox": []}))

    assert store.list_active_sweeps() == [early, pending, twin, late]


def test_list_active_sweeps_lists_no_plain_version(store: JobStore) -> None:
    start(store, "demo")

    assert store.list_active_sweeps() == []
    assert [v.job for v in store.list_active()] == ["demo"]


# -- backend names ------------------------------------------------------------------------


def test_a_backend_name_finds_its_sweep_once_saved(store: JobStore) -> None:
    s1 = create(store)
    assert store.find_sweep_by_backend_name("tb-tune-4f2a") is None

    named = store.save_sweep(s1.model_copy(update={"backend": "sagemaker",
                                                   "backend_name": "tb-tune-4f2a"}))
    assert store.find_sweep_by_backend_name("tb-tune-4f2a") == named
    moved = store.save_sweep(named.model_copy(update={"status": SweepStatus.STOPPING}))

    assert store.find_sweep_by_backend_name("tb-tune-4f2a") == moved
    assert moved.revision == 3 and moved.backend == "optuna"  # backend is fixed at creation
    assert store.find_sweep_by_backend_name("tb-tune-zzzz") is None


def test_a_backend_name_names_one_sweep(store: JobStore) -> None:
    first = store.save_sweep(create(store, "first").model_copy(update={"backend_name": "tb-x"}))
    second = create(store, "second")

    with pytest.raises(Conflict):
        store.save_sweep(second.model_copy(update={"backend_name": "tb-x"}))

    assert store.get_sweep("second") == second
    assert store.find_sweep_by_backend_name("tb-x") == first
    with pytest.raises(Conflict):
        store.create_sweep(sweep("third", backend_name="tb-x"), job=job_of(sweep("third")))
    with pytest.raises(NotFound):
        store.get_sweep("third")


def test_a_backend_name_given_up_is_free_for_another_sweep(store: JobStore) -> None:
    first = store.save_sweep(create(store, "first").model_copy(update={"backend_name": "tb-x"}))
    renamed = store.save_sweep(first.model_copy(update={"backend_name": "tb-y"}))
    assert store.find_sweep_by_backend_name("tb-x") is None
    assert store.find_sweep_by_backend_name("tb-y") == renamed

    second = store.save_sweep(create(store, "second").model_copy(update={"backend_name": "tb-x"}))

    assert store.find_sweep_by_backend_name("tb-x") == second
    with pytest.raises(Conflict):
        store.save_sweep(renamed.model_copy(update={"backend_name": "tb-x"}))
    unnamed = store.save_sweep(renamed.model_copy(update={"backend_name": None}))
    assert store.find_sweep_by_backend_name("tb-y") is None
    third = create(store, "third", backend_name="tb-y")
    assert store.find_sweep_by_backend_name("tb-y") == third
    assert store.get_sweep("first") == unnamed


def test_a_backend_name_given_at_creation_is_found(store: JobStore) -> None:
    stored = create(store, backend_name="tb-born")

    assert store.find_sweep_by_backend_name("tb-born") == stored


def test_a_sweeps_backend_name_is_apart_from_versions(store: JobStore) -> None:
    v1 = store.claim_launch(claim(start(store, "demo"), "tb-same"))
    s1 = store.save_sweep(create(store).model_copy(update={"backend_name": "tb-same"}))

    assert store.find_by_backend_name("tb-same") == v1
    assert store.find_sweep_by_backend_name("tb-same") == s1


def test_concurrent_sweeps_naming_one_backend_job_have_one_winner(store: JobStore) -> None:
    sweeps = [create(store, f"s{i}") for i in range(4)]

    def name(i: int) -> Sweep | None:
        try:
            return store.save_sweep(sweeps[i].model_copy(update={"backend_name": "tb-one"}))
        except Conflict:
            return None

    saved = concurrently(4, name)

    winners = [s for s in saved if s is not None]
    assert len(winners) == 1
    assert store.find_sweep_by_backend_name("tb-one") == winners[0]


def test_a_name_given_up_and_claimed_again_at_once_has_one_holder(store: JobStore) -> None:
    named = store.save_sweep(create(store, "s0").model_copy(update={"backend_name": "tb-x"}))
    sweeps = [store.save_sweep(named.model_copy(update={"backend_name": "tb-y"})),
              *(create(store, f"s{i}") for i in range(1, 4))]

    def name(i: int) -> Sweep | None:
        try:
            return store.save_sweep(sweeps[i].model_copy(update={"backend_name": "tb-x"}))
        except Conflict:
            return None

    winners = [s for s in concurrently(4, name) if s is not None]

    assert len(winners) == 1
    assert store.find_sweep_by_backend_name("tb-x") == winners[0]
    holders = [store.get_sweep(f"s{i}").backend_name for i in range(4)]
    assert holders.count("tb-x") == 1


# -- trial versions -----------------------------------------------------------------------


def test_a_trial_version_round_trips_its_trial_number(store: JobStore) -> None:
    create(store)
    key = trial_request_key("tune", 3)
    v1, created = store.add_version(draft("tune", trial=3, request_key=key))
    assert created and (v1.trial, v1.pruned) == (3, False)

    claimed = store.claim_launch(claim(v1, "tb-tune-t3"))

    assert claimed is not None and claimed.trial == 3
    assert store.get_version("tune", 1) == claimed
    assert store.list_versions("tune") == [claimed]
    assert store.find_by_backend_name("tb-tune-t3") == claimed
    assert store.add_version(draft("tune", trial=3, request_key=key)) == (claimed, False)


def test_save_version_keeps_the_trial_and_writes_pruned(store: JobStore) -> None:
    create(store)
    v1, _ = store.add_version(draft("tune", trial=3))

    pruned = store.save_version(v1.model_copy(update={"trial": 5, "pruned": True}).transition(
        Status.STOPPED, at=T0 + timedelta(minutes=1)))

    assert (pruned.trial, pruned.pruned, pruned.status) == (3, True, Status.STOPPED)
    assert store.get_version("tune", 1) == pruned
    assert store.list_versions("tune") == [pruned]
    plain = start(store, "demo")
    assert plain.trial is None
    assert store.save_version(plain.model_copy(update={"trial": 1})).trial is None


# -- SQLite: a migration, one file --------------------------------------------------------


def _sweeps_migration() -> int:
    return next(i for i, statements in enumerate(MIGRATIONS)
                if "CREATE TABLE sweeps" in statements[0])


def test_sqlite_sweeps_survive_reopening_the_file(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "trainbot.db")
    named = first.save_sweep(create(first, request_key="slack-1").model_copy(
        update={"backend_name": "tb-tune"}))
    first.close()

    second = SqliteStore(tmp_path / "trainbot.db")

    assert second.get_sweep("tune") == named
    assert second.find_sweep_by_backend_name("tb-tune") == named
    assert second.list_active_sweeps() == [named]
    assert second.create_sweep(sweep(request_key="slack-1"), job=job_of(sweep())) == (
        named, False)
    second.close()


def test_sqlite_adds_sweeps_to_a_file_from_before_them(tmp_path: Path) -> None:
    path = tmp_path / "trainbot.db"
    before = _sweeps_migration()
    with sqlite3.connect(path) as conn:
        for statements in MIGRATIONS[:before]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {before}")
    with sqlite3.connect(path) as conn:
        assert not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'sweeps'").fetchall()

    store = SqliteStore(path)
    version = start(store, "demo")

    assert store.create_sweep(sweep(), job=job_of(sweep()))[1]
    assert store.get_version("demo", 1) == version
    store.close()


def test_sqlite_active_sweeps_come_from_the_partial_index(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "trainbot.db").close()

    with sqlite3.connect(tmp_path / "trainbot.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT fixed FROM sweeps WHERE active = 1 "
            "ORDER BY created_at, name"
        ).fetchall()
    assert "sweeps_active" in " ".join(str(row) for row in plan)


# -- DynamoDB: items by key, active sweeps by one Query -----------------------------------


def _raw(client: Any, pk: str, sk: str) -> dict[str, Any]:
    """The item at that key, ``{}`` when there is none."""
    key = {"PK": {"S": pk}, "SK": {"S": sk}}
    return dict(client.get_item(TableName=TABLE, Key=key).get("Item", {}))


def test_dynamodb_keeps_a_sweep_its_job_its_guard_and_its_pointer(dynamodb: Any) -> None:
    client, _ = dynamodb
    store = DynamoStore(TABLE, client=client)
    s1 = create(store, request_key="slack-1")

    item = _raw(client, "SWEEP#tune", "META")
    assert (item["GSI1PK"], item["GSI1SK"]) == ({"S": "SWEEPS#ACTIVE"},
                                                {"S": "2026-03-01T09:30:00.000000Z#tune"})
    assert _raw(client, "JOB#tune", "META")["latest_version"] == {"N": "0"}
    assert _raw(client, "REQ#slack-1", "SWEEP") == {
        "PK": {"S": "REQ#slack-1"}, "SK": {"S": "SWEEP"}, "sweep": {"S": "tune"}}
    assert _raw(client, "BACKEND#tb-tune", "SWEEP") == {}

    named = store.save_sweep(s1.model_copy(update={"backend_name": "tb-tune"}))
    assert _raw(client, "BACKEND#tb-tune", "SWEEP")["sweep"] == {"S": "tune"}
    assert _raw(client, "BACKEND#tb-tune", "META") == {}  # a version's pointer's place
    ended = store.save_sweep(named.transition(SweepStatus.FAILED, at=T0))
    assert "GSI1PK" in _raw(client, "SWEEP#tune", "META")
    store.save_sweep(ended.model_copy(update={"outbox": []}))
    assert not {"GSI1PK", "GSI1SK"} & set(_raw(client, "SWEEP#tune", "META"))


def test_dynamodb_writes_and_reads_of_sweeps(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)

    calls.clear()
    s1 = create(store, request_key="slack-1")
    assert dict(calls) == {"GetItem": 1, "TransactWriteItems": 1}

    calls.clear()
    assert not store.create_sweep(sweep(request_key="slack-1"), job=job_of(sweep()))[1]
    assert dict(calls) == {"GetItem": 2}  # the guard, then the sweep

    calls.clear()
    s2 = store.save_sweep(s1.model_copy(update={"best_told": 1}))
    assert dict(calls) == {"UpdateItem": 1}

    calls.clear()
    s3 = store.save_sweep(s2.model_copy(update={"backend_name": "tb-tune"}))
    assert calls["TransactWriteItems"] == 1 and "Query" not in calls

    calls.clear()
    s4 = store.save_sweep(s3.model_copy(update={"best_told": 2}))
    assert dict(calls) == {"UpdateItem": 1}  # the pointer exists: no transaction again

    calls.clear()
    assert store.find_sweep_by_backend_name("tb-tune") == s4
    assert dict(calls) == {"GetItem": 2}  # consistent reads; no index that could lag

    for i in range(5):
        create(store, f"more-{i}")
    calls.clear()
    assert len(store.list_active_sweeps()) == 6
    assert dict(calls) == {"Query": 1}


def test_dynamodb_races_resolve_without_returned_items(dynamodb: Any) -> None:
    client, _ = dynamodb
    store = DynamoStore(TABLE, client=WithoutReturnedItems(client))

    created = concurrently(4, lambda i: store.create_sweep(
        sweep(request_key="slack-1"), job=job_of(sweep())))
    s1 = created[0][0]
    named = store.save_sweep(s1.model_copy(update={"backend_name": "tb-tune"}))

    assert sum(c for _, c in created) == 1
    with pytest.raises(StaleWrite):
        store.save_sweep(s1.model_copy(update={"backend_name": "tb-tune"}))
    with pytest.raises(StaleWrite):
        store.save_sweep(s1)
    with pytest.raises(NotFound):
        store.save_sweep(sweep("ghost", revision=1, backend_name="tb-ghost"))
    other = create(store, "other")
    with pytest.raises(Conflict):
        store.save_sweep(other.model_copy(update={"backend_name": "tb-tune"}))
    assert store.find_sweep_by_backend_name("tb-tune") == named
