"""The registered-algorithm part of the JobStore contract, run against every store.

A registered version is content-addressed and immutable: ``(scope, id, digest)`` is stored
once. Each id has a current version (the last registered) and a hidden flag that belongs to
the id, so every algorithm read back carries the id's flag as it is now.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.dynamodb.store import DynamoStore
from bot.adapters.sqlite import SqliteStore
from bot.adapters.sqlite.migrations import MIGRATIONS
from bot.domain import Algorithm, AlgorithmSource, NotFound
from bot.ports import JobStore
from tests.contract.conftest import TABLE
from tests.contract.test_job_store import T0, concurrently

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "algorithms" / "tabular-classification" / "manifest.yml"
PRESET = Algorithm.model_validate(yaml.safe_load(MANIFEST.read_text(encoding="utf-8")))


def registered(algo_id: str = "team-clf", digest: str = "a", *, owner: str = "U1",
               minutes: int = 0, hidden: bool = False) -> Algorithm:
    """A team's algorithm built from a real manifest; ``digest`` is one hex digit, repeated."""
    source = AlgorithmSource(kind="script", digest=digest * 64,
                             location=f"file:///algos/{algo_id}/{digest}", owner=owner,
                             registered_at=T0 + timedelta(minutes=minutes), hidden=hidden)
    return PRESET.model_copy(update={"id": algo_id, "source": source})


def hidden(algorithm: Algorithm, flag: bool = True) -> Algorithm:
    assert algorithm.source is not None
    return algorithm.model_copy(
        update={"source": algorithm.source.model_copy(update={"hidden": flag})})


def digest(algorithm: Algorithm) -> str:
    assert algorithm.source is not None
    return algorithm.source.digest


# -- registering --------------------------------------------------------------------------


def test_a_registered_algorithm_round_trips_and_is_current(store: JobStore) -> None:
    algo = registered()

    stored, created = store.register_algorithm("T1", algo)

    assert created
    assert stored == algo
    assert store.get_registered_algorithm("T1", "team-clf") == algo
    assert store.get_registered_algorithm("T1", "team-clf", "a" * 64) == algo


def test_registering_the_same_digest_again_stores_nothing_new(store: JobStore) -> None:
    first, _ = store.register_algorithm("T1", registered(owner="U1"))

    again, created = store.register_algorithm("T1", registered(owner="U2", minutes=5))

    assert not created
    assert again == first  # the version stored first, owner and time included
    assert store.get_registered_algorithm("T1", "team-clf") == first
    assert store.list_registered_algorithms("T1") == [first]


def test_a_new_digest_becomes_current_and_the_old_stays_readable(store: JobStore) -> None:
    old, _ = store.register_algorithm("T1", registered(digest="a"))

    new, created = store.register_algorithm("T1", registered(digest="b", minutes=1))

    assert created
    assert store.get_registered_algorithm("T1", "team-clf") == new
    assert store.get_registered_algorithm("T1", "team-clf", "a" * 64) == old
    assert store.list_registered_algorithms("T1") == [new]


def test_registering_an_older_digest_again_makes_it_current(store: JobStore) -> None:
    old, _ = store.register_algorithm("T1", registered(digest="a"))
    store.register_algorithm("T1", registered(digest="b", minutes=1))

    again, created = store.register_algorithm("T1", registered(digest="a", minutes=2))

    assert (again, created) == (old, False)
    assert store.get_registered_algorithm("T1", "team-clf") == old


def test_the_hidden_flag_of_what_is_registered_is_not_stored(store: JobStore) -> None:
    stored, _ = store.register_algorithm("T1", registered(hidden=True))

    assert stored == registered()
    assert store.get_registered_algorithm("T1", "team-clf") == registered()


def test_a_preset_cannot_be_registered(store: JobStore) -> None:
    with pytest.raises(ValueError, match="preset"):
        store.register_algorithm("T1", PRESET)


# -- hiding -------------------------------------------------------------------------------


def test_hiding_keeps_every_version_readable_with_the_flag(store: JobStore) -> None:
    old, _ = store.register_algorithm("T1", registered(digest="a"))
    new, _ = store.register_algorithm("T1", registered(digest="b", minutes=1))

    shown = store.hide_algorithm("T1", "team-clf")

    assert shown == hidden(new)
    assert store.get_registered_algorithm("T1", "team-clf") == hidden(new)
    assert store.get_registered_algorithm("T1", "team-clf", "a" * 64) == hidden(old)
    assert store.get_registered_algorithm("T1", "team-clf", "b" * 64) == hidden(new)


def test_list_includes_hidden_ids_with_their_flag(store: JobStore) -> None:
    store.register_algorithm("T1", registered("alpha"))
    store.register_algorithm("T1", registered("beta"))
    store.hide_algorithm("T1", "alpha")

    listed = store.list_registered_algorithms("T1")

    assert listed == [hidden(registered("alpha")), registered("beta")]


def test_an_id_is_shown_again_by_hide_false(store: JobStore) -> None:
    store.register_algorithm("T1", registered())
    store.hide_algorithm("T1", "team-clf")

    assert store.hide_algorithm("T1", "team-clf", hidden=False) == registered()
    assert store.get_registered_algorithm("T1", "team-clf") == registered()


@pytest.mark.parametrize("digest_char", ["a", "b"])
def test_registering_shows_a_hidden_id_again(store: JobStore, digest_char: str) -> None:
    store.register_algorithm("T1", registered(digest="a"))
    store.hide_algorithm("T1", "team-clf")

    stored, _ = store.register_algorithm("T1", registered(digest=digest_char))

    assert stored.source is not None and not stored.source.hidden
    assert store.get_registered_algorithm("T1", "team-clf") == stored
    assert store.list_registered_algorithms("T1") == [stored]


# -- listing, missing, scopes -------------------------------------------------------------


def test_list_holds_the_current_version_of_each_id_sorted_by_id(store: JobStore) -> None:
    for algo_id in ("zeta", "alpha", "m-1", "m0"):
        store.register_algorithm("T1", registered(algo_id, digest="a"))
    current = store.register_algorithm("T1", registered("zeta", digest="c", minutes=1))[0]

    listed = store.list_registered_algorithms("T1")

    assert [a.id for a in listed] == ["alpha", "m-1", "m0", "zeta"]
    assert listed[-1] == current


def test_missing_ids_and_versions_are_not_found(store: JobStore) -> None:
    store.register_algorithm("T1", registered(digest="a"))

    with pytest.raises(NotFound, match="There is no registered algorithm `nope`"):
        store.get_registered_algorithm("T1", "nope")
    with pytest.raises(NotFound, match="version sha256:bbbbbbbbbbbb… of `team-clf`"):
        store.get_registered_algorithm("T1", "team-clf", "b" * 64)
    with pytest.raises(NotFound, match="version sha256:aaaaaaaaaaaa… of `nope`"):
        store.get_registered_algorithm("T1", "nope", "a" * 64)
    with pytest.raises(NotFound, match="There is no registered algorithm `nope`"):
        store.hide_algorithm("T1", "nope")
    assert store.list_registered_algorithms("T-empty") == []


def test_scopes_are_isolated(store: JobStore) -> None:
    ours, _ = store.register_algorithm("T1", registered(digest="a"))
    theirs, created = store.register_algorithm("T2", registered(digest="a", owner="U9"))
    store.hide_algorithm("T2", "team-clf")

    assert created  # the same id and digest in another scope is another registration
    assert store.get_registered_algorithm("T1", "team-clf") == ours
    assert store.list_registered_algorithms("T1") == [ours]
    assert store.list_registered_algorithms("T2") == [hidden(theirs)]
    with pytest.raises(NotFound):
        store.get_registered_algorithm("T3", "team-clf", "a" * 64)


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_registrations_of_one_digest_create_it_once(store: JobStore) -> None:
    results = concurrently(8, lambda i: store.register_algorithm(
        "T1", registered(owner=f"U{i}", minutes=i)))

    assert sum(created for _, created in results) == 1
    winner = next(stored for stored, created in results if created)
    assert all(stored == winner for stored, _ in results)
    assert store.list_registered_algorithms("T1") == [winner]


def test_concurrent_registrations_of_different_digests_keep_every_version(
    store: JobStore,
) -> None:
    digests = "0123456789abcdef"[:8]

    results = concurrently(8, lambda i: store.register_algorithm(
        "T1", registered(digest=digests[i], minutes=i)))

    assert all(created for _, created in results)
    for stored, _ in results:
        assert store.get_registered_algorithm("T1", "team-clf", digest(stored)) == stored
    current = store.get_registered_algorithm("T1", "team-clf")
    assert current in [stored for stored, _ in results]
    assert store.list_registered_algorithms("T1") == [current]


# -- SQLite: a migration, one file --------------------------------------------------------


def test_sqlite_registry_survives_reopening_the_file(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "trainbot.db")
    first.register_algorithm("T1", registered(digest="a"))
    new, _ = first.register_algorithm("T1", registered(digest="b"))
    first.hide_algorithm("T1", "team-clf")
    first.close()

    second = SqliteStore(tmp_path / "trainbot.db")

    assert second.list_registered_algorithms("T1") == [hidden(new)]
    assert second.get_registered_algorithm("T1", "team-clf", "a" * 64) == hidden(registered())
    second.close()


def test_sqlite_adds_the_registry_to_a_file_from_before_it(tmp_path: Path) -> None:
    path = tmp_path / "trainbot.db"
    with sqlite3.connect(path) as conn:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")

    store = SqliteStore(path)

    assert store.register_algorithm("T1", registered())[1]
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


# -- DynamoDB: items by key, listing by one Query -----------------------------------------


def _raw(client: Any, pk: str, sk: str) -> dict[str, Any]:
    return client.get_item(TableName=TABLE, Key={"PK": {"S": pk}, "SK": {"S": sk}})["Item"]


def test_dynamodb_keeps_a_version_item_and_a_pointer_per_id(dynamodb: Any) -> None:
    client, _ = dynamodb
    store = DynamoStore(TABLE, client=client)
    store.register_algorithm("T1", registered(digest="a"))
    store.register_algorithm("T1", registered(digest="b"))
    store.hide_algorithm("T1", "team-clf")

    assert set(_raw(client, "ALGO#T1#team-clf", "V#" + "a" * 64)) == {"PK", "SK", "body"}
    pointer = _raw(client, "ALGOS#T1", "team-clf")
    assert pointer["digest"] == {"S": "b" * 64}
    assert pointer["hidden"] == {"BOOL": True}


def test_dynamodb_lists_with_one_query_however_many_versions(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)

    def list_calls() -> Counter[str]:
        calls.clear()
        store.list_registered_algorithms("T1")
        return Counter(calls)

    for algo_id in ("alpha", "beta", "gamma"):
        store.register_algorithm("T1", registered(algo_id, digest="0"))
    few = list_calls()
    for algo_id in ("alpha", "beta", "gamma"):
        for d in "123456789abcdef":
            store.register_algorithm("T1", registered(algo_id, digest=d))
    many = list_calls()

    assert few == many == Counter({"Query": 1})
    assert [a.source.digest for a in store.list_registered_algorithms("T1") if a.source] == [
        "f" * 64] * 3


def test_dynamodb_reads_the_current_version_with_one_get(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)
    store.register_algorithm("T1", registered(digest="a"))
    store.register_algorithm("T1", registered(digest="b"))
    calls.clear()

    store.get_registered_algorithm("T1", "team-clf")
    store.get_registered_algorithm("T1", "team-clf", "b" * 64)
    assert dict(calls) == {"GetItem": 2}

    calls.clear()
    store.get_registered_algorithm("T1", "team-clf", "a" * 64)
    assert dict(calls) == {"GetItem": 2}  # the version, and the id's hidden flag
