"""The JobStore contract: what every store adapter does, tested the same way for each.

Store-specific promises (SQLite's file, DynamoDB's indexes) are at the end of the file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.adapters.dynamodb.store import DynamoStore
from bot.adapters.sqlite import SqliteStore
from bot.adapters.sqlite.migrations import MIGRATIONS
from bot.domain import (
    Approval,
    Artifacts,
    ConfigError,
    Conflict,
    Decision,
    JobSpec,
    JobVersion,
    MetricSummary,
    NotFound,
    Preset,
    Progress,
    StaleWrite,
    Status,
    TrainingJob,
)
from bot.domain.cost import Full
from bot.ports import JobStore
from tests.contract.conftest import TABLE, AtomicRequests

T = TypeVar("T")

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SPEC = JobSpec(
    algorithm="toy",
    algorithm_version="1.0.0",
    hyperparameters={"epochs": 3, "lr": 0.1, "amp": True, "optimizer": "adam"},
    data={"train": "s3://trainbot-data/digits/"},
    pool="cpu-small",
)


def draft(job: str = "demo", *, at: datetime = T0, **fields: Any) -> JobVersion:
    values: dict[str, Any] = {
        "job": job,
        "number": 0,
        "spec": SPEC,
        "requested_by": "UREQ",
        "status": Status.QUEUED,
        "created_at": at,
        "updated_at": at,
        **fields,
    }
    return JobVersion(**values)


def new_job(name: str = "demo", *, channel: str | None = "C1", at: datetime = T0) -> TrainingJob:
    return TrainingJob(name=name, owner="UREQ", channel=channel, created_at=at)


def start(store: JobStore, job: str = "demo", **kwargs: Any) -> JobVersion:
    """Create ``job`` with its first version."""
    channel = kwargs.pop("channel", "C1")
    at = kwargs.get("at", T0)
    version, created = store.add_version(
        draft(job, **kwargs), new_job=new_job(job, channel=channel, at=at)
    )
    assert created
    return version


def preset(name: str, scope: str = "T1") -> Preset:
    return Preset(name=name, scope=scope, spec=SPEC, owner="UREQ", created_at=T0, updated_at=T0)


def approval(approval_id: str = "appr-1") -> Approval:
    return Approval(
        id=approval_id,
        job="demo",
        version=2,
        base_version=1,
        overrides={"lr": 0.01},
        pool="gpu-large",
        reason="GPU pool needs approval",
        requested_by="UREQ",
        requested_at=T0,
        expires_at=T0 + timedelta(hours=24),
    )


def concurrently(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..n-1)`` on ``n`` threads released together by a barrier."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_every_store_implements_the_port(store: JobStore) -> None:
    assert isinstance(store, JobStore)


# -- allocating versions ------------------------------------------------------------------


def test_new_job_stores_version_one_and_the_job(store: JobStore) -> None:
    v1 = start(store)

    assert (v1.number, v1.revision) == (1, 1)
    assert store.get_version("demo", 1) == v1
    job = store.get_job("demo")
    assert (job.name, job.owner, job.channel, job.created_at) == ("demo", "UREQ", "C1", T0)
    assert job.latest_version == 1


def test_add_version_allocates_the_next_numbers(store: JobStore) -> None:
    start(store)

    numbers = [store.add_version(draft(parent=1))[0].number for _ in range(2)]

    assert numbers == [2, 3]
    assert store.get_job("demo").latest_version == 3
    assert [v.number for v in store.list_versions("demo")] == [1, 2, 3]


def test_add_version_to_a_missing_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound):
        store.add_version(draft("ghost"))


def test_new_job_conflicts_when_the_job_exists(store: JobStore) -> None:
    start(store)

    with pytest.raises(Conflict):
        store.add_version(draft(), new_job=new_job())
    assert [v.number for v in store.list_versions("demo")] == [1]


def test_new_job_must_be_the_drafts_job(store: JobStore) -> None:
    with pytest.raises(ValueError):
        store.add_version(draft("demo"), new_job=new_job("other"))


def test_request_key_replay_returns_the_stored_version_and_writes_nothing(
    store: JobStore,
) -> None:
    start(store)
    first, created = store.add_version(draft(request_key="slack-1"))

    again, created_again = store.add_version(draft(request_key="slack-1"))

    assert created and not created_again
    assert again == first
    assert store.get_job("demo").latest_version == 2


def test_a_version_is_found_by_its_request_key(store: JobStore) -> None:
    assert store.find_by_request_key("slack-1") is None
    first = start(store, request_key="slack-1")
    assert store.find_by_request_key("slack-1") == first
    assert store.find_by_request_key("slack-2") is None


def test_request_key_replay_of_a_new_job_is_not_a_conflict(store: JobStore) -> None:
    first = start(store, request_key="slack-1")

    again, created = store.add_version(draft(request_key="slack-1"), new_job=new_job())

    assert not created
    assert again == first


@pytest.mark.parametrize("threads", [20, 50])
def test_concurrent_add_version_numbers_have_no_gaps_or_duplicates(
    store: JobStore, threads: int
) -> None:
    start(store)

    stored = concurrently(threads, lambda i: store.add_version(draft(parent=1))[0])

    expected = list(range(2, threads + 2))
    assert sorted(v.number for v in stored) == expected
    assert [v.number for v in store.list_versions("demo")] == [1, *expected]
    assert store.get_job("demo").latest_version == threads + 1


def test_concurrent_requests_with_one_key_store_one_version(store: JobStore) -> None:
    start(store)

    results = concurrently(5, lambda i: store.add_version(draft(request_key="slack-7")))

    assert sorted(created for _, created in results) == [False] * 4 + [True]
    assert {v.number for v, _ in results} == {2}
    assert [v.number for v in store.list_versions("demo")] == [1, 2]


def test_concurrent_new_job_requests_with_one_key_create_it_once(store: JobStore) -> None:
    results = concurrently(
        5, lambda i: store.add_version(draft(request_key="slack-9"), new_job=new_job())
    )

    assert sorted(created for _, created in results) == [False] * 4 + [True]
    assert [v.number for v in store.list_versions("demo")] == [1]


# -- reading and saving versions ----------------------------------------------------------


def test_a_version_round_trips_every_field(store: JobStore) -> None:
    start(store)
    later = T0 + timedelta(minutes=5)
    rich = store.get_version("demo", 1).model_copy(
        update={
            "backend": "local",
            "backend_job_name": "tb-demo-v1-abcd",
            "status": Status.TRAINING,
            "started_at": later,
            "updated_at": later,
            "progress": Progress(current=3, total=10, metrics={"loss": 0.123456789}),
            "metrics": {"validation:accuracy": 0.9137, "train:loss": 1e-9},
            "series": {
                "train:loss": MetricSummary(
                    first=2.3, last=0.1, min=0.1, max=2.3, count=3, points=[(0, 2.3), (2, 0.1)]
                )
            },
            "evaluation": {"confusion": [[5, 1], [0, 6]], "per_class": {"cat": 0.83}},
            "artifacts": Artifacts(model="s3://trainbot-data/out/model.tar.gz"),
            "log_tail": ["epoch 1", "épocha ✓"],
            "estimated_cost_usd": 0.0123,
            "channel": "C1",
            "message_ts": "1700000000.000100",
        }
    )

    saved = store.save_version(rich)

    assert saved == rich.model_copy(update={"revision": 2})
    assert store.get_version("demo", 1) == saved


def test_missing_versions_and_jobs_are_not_found(store: JobStore) -> None:
    start(store)

    with pytest.raises(NotFound):
        store.get_version("demo", 2)
    with pytest.raises(NotFound):
        store.get_version("ghost", 1)
    with pytest.raises(NotFound):
        store.get_job("ghost")
    with pytest.raises(NotFound):
        store.list_versions("ghost")


def test_save_version_is_compare_and_set_on_revision(store: JobStore) -> None:
    v1 = start(store)

    saved = store.save_version(v1.transition(Status.STARTING, at=T0))

    assert saved.revision == 2
    with pytest.raises(StaleWrite):
        store.save_version(v1.transition(Status.FAILED, at=T0))
    assert store.get_version("demo", 1) == saved


def test_a_stale_copy_cannot_overwrite_a_newer_status(store: JobStore) -> None:
    v1 = start(store)
    training = store.save_version(v1.transition(Status.TRAINING, at=T0))
    completed = store.save_version(training.transition(Status.COMPLETED, at=T0))

    # A late "still training" event works from the revision it read before completion.
    late = training.model_copy(update={"secondary_status": "Training", "progress": None})
    with pytest.raises(StaleWrite):
        store.save_version(late)

    # Re-reading and re-applying goes through the state machine, which won't go back.
    current = store.get_version("demo", 1)
    assert current == completed
    assert current.transition(Status.TRAINING, at=T0) is current


def test_save_version_keeps_the_fields_fixed_at_creation(store: JobStore) -> None:
    v1 = start(store, request_key="slack-1")
    tampered = v1.model_copy(
        update={
            "spec": SPEC.model_copy(update={"pool": "gpu-large"}),
            "parent": 7,
            "requested_by": "UOTHER",
            "created_at": T0 + timedelta(days=1),
            "request_key": "other",
            "status": Status.STARTING,
        }
    )

    saved = store.save_version(tampered)

    assert saved.status is Status.STARTING
    assert (saved.spec, saved.parent, saved.requested_by) == (SPEC, None, "UREQ")
    assert (saved.created_at, saved.request_key) == (T0, "slack-1")
    assert store.get_version("demo", 1) == saved


def test_save_version_of_a_missing_version_is_not_found(store: JobStore) -> None:
    v1 = start(store)

    with pytest.raises(NotFound):
        store.save_version(v1.model_copy(update={"number": 9}))


def test_find_by_backend_name(store: JobStore) -> None:
    v1 = start(store)
    start(store, "other")
    assert store.find_by_backend_name("tb-demo-v1-abcd") is None

    launched = store.save_version(
        v1.model_copy(update={"backend_job_name": "tb-demo-v1-abcd", "status": Status.STARTING})
    )
    moved = store.save_version(launched.transition(Status.TRAINING, at=T0))

    assert store.find_by_backend_name("tb-demo-v1-abcd") == moved
    assert store.find_by_backend_name("tb-demo-v1-zzzz") is None


def test_list_active_holds_only_non_terminal_versions(store: JobStore) -> None:
    start(store, status=Status.AWAITING_APPROVAL)
    store.add_version(draft(at=T0 + timedelta(minutes=1), status=Status.TRAINING))
    failed = draft(
        at=T0 + timedelta(minutes=2), status=Status.FAILED, ended_at=T0 + timedelta(minutes=3)
    )
    store.add_version(failed)
    start(store, "other", at=T0 + timedelta(minutes=4))

    active = store.list_active()

    assert [(v.job, v.number) for v in active] == [("demo", 1), ("demo", 2), ("other", 1)]


def test_list_active_drops_a_version_once_it_is_terminal(store: JobStore) -> None:
    v1 = start(store)
    training = store.save_version(v1.transition(Status.TRAINING, at=T0))
    assert store.list_active() == [training]

    store.save_version(training.transition(Status.COMPLETED, at=T0))

    assert store.list_active() == []


def test_list_undelivered_holds_ended_versions_with_an_outbox(store: JobStore) -> None:
    v1 = start(store, channel="C1")
    training = store.save_version(v1.model_copy(update={"channel": "C1"}).transition(
        Status.TRAINING, at=T0))
    assert training.outbox == []
    assert store.list_undelivered() == []
    done = store.save_version(training.transition(Status.COMPLETED, at=T0))
    assert done.outbox == ["announce"]  # the end of a run with a channel is to be announced
    store.add_version(draft(status=Status.TRAINING, at=T0 + timedelta(minutes=1),
                            outbox=["announce"]))  # not ended: the reconcile's other list

    assert store.list_undelivered() == [done]
    assert [v.number for v in store.list_active()] == [2]

    delivered = store.save_version(done.model_copy(update={"outbox": []}))

    assert store.list_undelivered() == []
    assert store.get_version("demo", 1) == delivered


def test_list_ended_since_includes_the_boundary_and_nothing_earlier(store: JobStore) -> None:
    # Relative to the real clock: DynamoDB's ended index is bucketed by day up to today.
    now = datetime.now(UTC)
    since = now - timedelta(hours=24)
    v1 = start(store, at=now - timedelta(days=3))
    for ended in (since - timedelta(seconds=1), since, now - timedelta(minutes=5)):
        store.add_version(draft(status=Status.COMPLETED, at=ended, ended_at=ended))
    store.add_version(draft(status=Status.TRAINING, at=now))
    store.save_version(v1.transition(Status.FAILED, at=now - timedelta(hours=1)))

    ended = store.list_ended_since(since)

    assert [v.number for v in ended] == [3, 1, 4]
    assert [v.ended_at for v in ended] == sorted(v.ended_at for v in ended)


def test_list_jobs_in_a_channel_newest_first(store: JobStore) -> None:
    start(store, "oldest", channel="C1", at=T0)
    start(store, "elsewhere", channel="C2", at=T0 + timedelta(minutes=1))
    start(store, "newest", channel="C1", at=T0 + timedelta(minutes=2))

    assert [j.name for j in store.list_jobs(channel="C1")] == ["newest", "oldest"]
    assert store.list_jobs(channel="C9") == []


def test_list_jobs_without_a_channel_lists_every_job_newest_first(store: JobStore) -> None:
    for minute, (name, channel) in enumerate([("a", "C1"), ("b", None), ("c", "C2")]):
        start(store, name, channel=channel, at=T0 + timedelta(minutes=minute))
    store.add_version(draft("a"))

    assert [j.name for j in store.list_jobs()] == ["c", "b", "a"]
    assert [j.name for j in store.list_jobs(limit=2)] == ["c", "b"]
    assert store.list_jobs()[-1].latest_version == 2


# -- presets ------------------------------------------------------------------------------


def test_a_preset_round_trips(store: JobStore) -> None:
    created = store.create_preset(preset("nightly"))

    assert store.get_preset("T1", "nightly") == created == preset("nightly")


def test_preset_names_are_unique_within_a_scope(store: JobStore) -> None:
    store.create_preset(preset("nightly"))

    with pytest.raises(Conflict):
        store.create_preset(preset("nightly").model_copy(update={"description": "again"}))
    store.create_preset(preset("nightly", scope="T2"))

    assert store.get_preset("T1", "nightly").description == ""
    assert [p.scope for p in (store.get_preset(s, "nightly") for s in ("T1", "T2"))] == [
        "T1",
        "T2",
    ]


def test_list_presets_is_sorted_by_name_within_the_scope(store: JobStore) -> None:
    for name in ("zeta", "Alpha", "beta", "alpha-2"):
        store.create_preset(preset(name))
    store.create_preset(preset("aaa", scope="T2"))

    assert [p.name for p in store.list_presets("T1")] == ["Alpha", "alpha-2", "beta", "zeta"]
    assert store.list_presets("T3") == []


def test_delete_preset(store: JobStore) -> None:
    store.create_preset(preset("nightly"))
    store.create_preset(preset("nightly", scope="T2"))

    store.delete_preset("T1", "nightly")

    with pytest.raises(NotFound):
        store.get_preset("T1", "nightly")
    assert store.get_preset("T2", "nightly").scope == "T2"
    store.create_preset(preset("nightly"))  # the name is free again


def test_missing_presets_are_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound):
        store.get_preset("T1", "ghost")
    with pytest.raises(NotFound):
        store.delete_preset("T1", "ghost")


# -- approvals ----------------------------------------------------------------------------


def test_an_approval_round_trips(store: JobStore) -> None:
    created = store.create_approval(approval())

    assert store.get_approval("appr-1") == created == approval()


def test_an_approval_id_is_created_once(store: JobStore) -> None:
    store.create_approval(approval())

    with pytest.raises(Conflict):
        store.create_approval(approval())


def test_decide_approval_records_the_decision_once(store: JobStore) -> None:
    store.create_approval(approval())
    at = T0 + timedelta(minutes=3)

    decided = store.decide_approval("appr-1", Decision.APPROVED, by="UBOSS", at=at, note="ok")

    assert (decided.decision, decided.decided_by, decided.decided_at) == (
        Decision.APPROVED,
        "UBOSS",
        at,
    )
    assert decided.decision_note == "ok"
    assert store.get_approval("appr-1") == decided
    with pytest.raises(Conflict, match="UBOSS"):
        store.decide_approval("appr-1", Decision.REJECTED, by="UOTHER", at=at)
    assert store.get_approval("appr-1") == decided


def test_concurrent_decisions_on_one_approval_have_one_winner(store: JobStore) -> None:
    store.create_approval(approval())

    def decide(i: int) -> str | None:
        try:
            store.decide_approval("appr-1", Decision.APPROVED, by=f"U{i}", at=T0)
        except Conflict:
            return None
        return f"U{i}"

    winners = [w for w in concurrently(10, decide) if w is not None]

    assert len(winners) == 1
    assert store.get_approval("appr-1").decided_by == winners[0]


def test_set_approval_message_keeps_the_decision(store: JobStore) -> None:
    store.create_approval(approval())
    store.decide_approval("appr-1", Decision.REJECTED, by="UBOSS", at=T0)

    updated = store.set_approval_message("appr-1", channel="C1", ts="1700000000.000200")

    assert (updated.channel, updated.message_ts) == ("C1", "1700000000.000200")
    assert (updated.decision, updated.decided_by) == (Decision.REJECTED, "UBOSS")
    assert store.get_approval("appr-1") == updated


def test_missing_approvals_are_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound):
        store.get_approval("ghost")
    with pytest.raises(NotFound):
        store.decide_approval("ghost", Decision.APPROVED, by="UBOSS", at=T0)
    with pytest.raises(NotFound):
        store.set_approval_message("ghost", channel="C1", ts="1.2")


def awaiting_v2(store: JobStore) -> JobVersion:
    """demo v1, then v2 AWAITING_APPROVAL with the request ``appr-1`` for it."""
    start(store)
    v2, _ = store.add_version(draft(status=Status.AWAITING_APPROVAL, approval_id="appr-1"))
    store.create_approval(approval())
    return v2


def test_deciding_an_approval_and_its_version_writes_both(store: JobStore) -> None:
    v2 = awaiting_v2(store)
    at = T0 + timedelta(minutes=3)
    moved = v2.transition(Status.QUEUED, at=at, message="approved by UBOSS").model_copy(
        update={"approved_by": "UBOSS"})

    decided, saved = store.decide_approval_and_version(
        "appr-1", Decision.APPROVED, by="UBOSS", at=at, version=moved)

    assert (decided.decision, decided.decided_by) == (Decision.APPROVED, "UBOSS")
    assert store.get_approval("appr-1") == decided
    assert saved == store.get_version("demo", 2)
    assert (saved.status, saved.approved_by, saved.revision) == (Status.QUEUED, "UBOSS", 2)


def test_deciding_with_a_stale_version_writes_neither(store: JobStore) -> None:
    v2 = awaiting_v2(store)
    store.save_version(v2.model_copy(update={"message_ts": "1.1"}))  # the card, meanwhile

    with pytest.raises(StaleWrite):
        store.decide_approval_and_version(
            "appr-1", Decision.APPROVED, by="UBOSS", at=T0,
            version=v2.transition(Status.QUEUED, at=T0))

    assert store.get_approval("appr-1").pending
    assert store.get_version("demo", 2).status is Status.AWAITING_APPROVAL


def test_deciding_a_decided_approval_with_its_version_writes_neither(store: JobStore) -> None:
    v2 = awaiting_v2(store)
    store.decide_approval("appr-1", Decision.REJECTED, by="UFIRST", at=T0)

    with pytest.raises(Conflict, match="UFIRST"):
        store.decide_approval_and_version(
            "appr-1", Decision.APPROVED, by="UBOSS", at=T0,
            version=v2.transition(Status.QUEUED, at=T0))

    assert store.get_version("demo", 2) == v2
    assert store.get_approval("appr-1").decided_by == "UFIRST"


# -- launches: backend names and pool places ----------------------------------------------


def claim(version: JobVersion, name: str | None = None) -> JobVersion:
    return version.model_copy(update={
        "backend_job_name": name or f"tb-{version.job}-v{version.number}", "backend": "fake"})


def test_a_claimed_backend_name_is_found_at_once(store: JobStore) -> None:
    v1 = start(store)

    claimed = store.claim_launch(claim(v1))

    assert isinstance(claimed, JobVersion) and claimed.revision == 2 and not claimed.pool_slot
    assert store.find_by_backend_name("tb-demo-v1") == claimed == store.get_version("demo", 1)


def test_a_backend_name_is_claimed_once(store: JobStore) -> None:
    v1 = start(store)
    v2, _ = store.add_version(draft())
    store.claim_launch(claim(v1, "tb-same"))

    with pytest.raises(Conflict):
        store.claim_launch(claim(v2, "tb-same"))

    assert store.get_version("demo", 2) == v2
    assert store.find_by_backend_name("tb-same").number == 1  # type: ignore[union-attr]


def test_claim_launch_is_compare_and_set(store: JobStore) -> None:
    v1 = start(store)
    store.save_version(v1.model_copy(update={"message_ts": "1.1"}))

    with pytest.raises(StaleWrite):
        store.claim_launch(claim(v1), slots=1)

    assert isinstance(store.claim_launch(claim(store.get_version("demo", 1)), slots=1),
                      JobVersion)


def test_a_pool_place_is_held_until_the_version_ends_and_given_back_once(
    store: JobStore,
) -> None:
    v1 = start(store)
    v2, _ = store.add_version(draft())
    v3, _ = store.add_version(draft())

    held = store.claim_launch(claim(v1), slots=1)
    assert isinstance(held, JobVersion) and held.pool_slot
    assert store.claim_launch(claim(v2), slots=1) == Full(cap="pool:cpu-small", limit=1)
    assert store.get_version("demo", 2) == v2  # nothing written

    ended = store.save_version(held.transition(Status.FAILED, at=T0))
    assert not ended.pool_slot
    store.save_version(ended.model_copy(update={"failure_reason": "again"}))  # a late event
    assert isinstance(store.claim_launch(claim(v2), slots=1), JobVersion)
    # the place came back only once
    assert store.claim_launch(claim(v3), slots=1) == Full(cap="pool:cpu-small", limit=1)


def test_concurrent_claims_for_the_last_place_have_one_winner(store: JobStore) -> None:
    start(store)
    versions = [store.add_version(draft())[0] for _ in range(8)]

    claimed = concurrently(8, lambda i: store.claim_launch(claim(versions[i]), slots=1))

    assert len([c for c in claimed if isinstance(c, JobVersion)]) == 1
    assert sum(v.pool_slot for v in store.list_versions("demo")) == 1


# -- SQLite: one durable file -------------------------------------------------------------


def test_sqlite_data_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "trainbot.db"
    first = SqliteStore(path)
    v1 = start(first)
    first.create_preset(preset("nightly"))
    first.create_approval(approval())
    first.close()

    second = SqliteStore(path)

    assert second.get_version("demo", 1) == v1
    assert second.get_preset("T1", "nightly") == preset("nightly")
    assert second.get_approval("appr-1") == approval()
    assert second.add_version(draft())[0].number == 2
    second.close()


def test_sqlite_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "trainbot.db").close()

    with sqlite3.connect(tmp_path / "trainbot.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert len(MIGRATIONS) >= 1


def test_sqlite_refuses_a_file_from_a_newer_schema(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "trainbot.db") as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")

    with pytest.raises(ConfigError, match="schema version"):
        SqliteStore(tmp_path / "trainbot.db")


def test_sqlite_active_versions_come_from_the_partial_index(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "trainbot.db").close()

    with sqlite3.connect(tmp_path / "trainbot.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT fixed FROM versions WHERE terminal = 0 "
            "ORDER BY created_at, job, number"
        ).fetchall()
    assert "versions_active" in " ".join(str(row) for row in plan)


# -- DynamoDB: indexes, not scans ---------------------------------------------------------


def _raw_version(client: Any, job: str, number: int) -> dict[str, Any]:
    key = {"PK": {"S": f"JOB#{job}"}, "SK": {"S": f"V#{number:06d}"}}
    return client.get_item(TableName=TABLE, Key=key)["Item"]


def test_dynamodb_terminal_versions_leave_the_active_index(dynamodb: Any) -> None:
    client, _ = dynamodb
    store = DynamoStore(TABLE, client=client)
    v1 = start(store)
    assert {"GSI1PK", "GSI1SK"} <= set(_raw_version(client, "demo", 1))
    assert "GSI4PK" not in _raw_version(client, "demo", 1)

    store.save_version(v1.transition(Status.COMPLETED, at=T0))

    item = _raw_version(client, "demo", 1)
    assert not {"GSI1PK", "GSI1SK"} & set(item)
    assert item["GSI4PK"] == {"S": "ENDED#2026-03-01"}


def test_dynamodb_reads_go_through_keys_and_indexes(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)
    start(store)

    store.list_active()
    store.list_jobs()
    store.list_ended_since(datetime.now(UTC) - timedelta(hours=1))
    store.find_by_backend_name("nope")

    setup = {"DescribeTable", "CreateTable", "UpdateContinuousBackups"}
    assert set(calls) - setup <= {"GetItem", "Query", "TransactWriteItems"}
    assert calls["Query"] >= 4 + 1 + 2  # active shards, all jobs, two days of ended versions


def test_dynamodb_scans_fail_the_suite(dynamodb: Any) -> None:
    client, calls = dynamodb

    with pytest.raises(AssertionError, match="scan"):
        AtomicRequests(client).scan(TableName=TABLE)
    assert calls.scans == 1
    calls.scans = 0  # this test scanned on purpose; the fixture fails any other test that does


def test_dynamodb_finds_a_claimed_backend_name_by_key_not_by_index(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)
    store.claim_launch(claim(start(store), "tb-early"))
    calls.clear()

    found = store.find_by_backend_name("tb-early")

    assert found is not None and found.number == 1
    assert dict(calls) == {"GetItem": 2}  # consistent reads; the index may lag the launch
