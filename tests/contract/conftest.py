"""Fixtures for the adapter contract suites: every JobStore runs the same tests."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bot.adapters.dynamodb.store import DynamoStore
from bot.adapters.dynamodb_schema import ensure_tables
from bot.adapters.sqlite import SqliteStore
from bot.ports import JobStore

TABLE = "trainbot-contract"


class AtomicRequests:
    """A DynamoDB client whose requests take effect one at a time, as they do in DynamoDB.

    moto applies a request in several steps and undoes a cancelled transaction by restoring
    a deep copy of the whole table, so two threads' requests can interleave and erase each
    other's writes, which DynamoDB never does. Serialising each request removes only that:
    threads still interleave between requests, and that is where a store's races live.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


class DynamoCalls(Counter[str]):
    """DynamoDB operations a test made, by name, and the Scans that were attempted."""

    scans = 0


@pytest.fixture
def dynamodb() -> Iterator[tuple[Any, DynamoCalls]]:
    """A moto DynamoDB client with the trainbot table, and a count of the calls made on it.

    Any Scan fails the test at once (``JobStore`` promises none) and again at teardown, in
    case the store swallowed the first failure.
    """
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        ensure_tables(client, TABLE)
        calls = DynamoCalls()

        def count(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        def no_scan(**_: Any) -> None:
            calls.scans += 1
            raise AssertionError("the store scanned the table; JobStore promises no scans")

        client.meta.events.register("before-call.dynamodb.*", count)
        client.meta.events.register("before-call.dynamodb.Scan", no_scan)
        yield client, calls
        assert calls.scans == 0, "the store tried to scan the table"


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    store = SqliteStore(tmp_path / "trainbot.db")
    yield store
    store.close()


def _dynamodb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    client, _ = request.getfixturevalue("dynamodb")
    yield DynamoStore(TABLE, client=AtomicRequests(client))


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    from tests.fakes import MemoryStore

    yield MemoryStore()


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[JobStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "dynamodb": _dynamodb,
}


@pytest.fixture(params=list(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    """Each JobStore adapter, empty."""
    yield from STORES[request.param](request, tmp_path)
