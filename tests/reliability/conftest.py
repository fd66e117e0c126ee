"""Shared pieces of the reliability and security suite.

- ``service_deps``: Deps over a real store with a fake compute, for service-level races;
- ``fast_harness``: the integration Harness (real Bolt app over signed HTTP, local Slack)
  without the local TensorBoard server, whose start costs seconds of CPU per test;
- ``block_kit_problems``: everything the stand-in received that breaks Slack's limits;
- the ``dynamodb`` fixture of the contract suite (moto, with its no-Scan guard), reused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Catalog, load_pools
from bot.config import RerunApproval
from bot.domain import Algorithm, ResourcePool
from bot.localslack.server import LocalSlack
from bot.ports import Chat, Compute, JobStore
from bot.services.authz import Policy
from bot.services.context import Deps
from tests.contract.conftest import TABLE, AtomicRequests, dynamodb
from tests.fakes import FakeClock, FakeCompute, RecordingChat
from tests.integration.slack_harness import Harness

__all__ = [
    "MAX_BLOCKS",
    "MAX_TEXT",
    "TOY",
    "block_kit_problems",
    "dynamodb",
    "fast_harness",
    "make_store",
    "service_deps",
]

MAX_BLOCKS = 50
MAX_TEXT = 3000
# Web API methods and stand-in routes that carry a message body the user sees.
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "_local.response")

TOY = Algorithm.model_validate({
    "id": "toy", "title": "Toy", "version": "1.0.0", "framework": "pytorch",
    "framework_version": "2.5", "entry_point": "train.py",
    "hyperparameters": [
        {"name": "epochs", "type": "int", "default": 3, "min": 1, "max": 100},
        {"name": "lr", "type": "float", "default": 0.1, "min": 0.0, "max": 10},
        {"name": "optimizer", "type": "choice", "choices": ["adam", "sgd"], "default": "adam"},
        {"name": "note", "type": "str", "default": ""},
    ],
    "channels": [{"name": "train", "default": "builtin:digits"}],
    "metrics": [{"name": "validation:accuracy", "regex": "acc=([0-9.]+)"}],
    "objective": {"metric": "validation:accuracy", "goal": "maximize"},
})


def service_deps(
    store: JobStore,
    *,
    compute: Compute | None = None,
    chat: Chat | None = None,
    policy: Policy | None = None,
    pools: list[ResourcePool] | None = None,
) -> Deps:
    """Deps over ``store`` with the toy algorithm, the bundled pools (plus ``pools``)."""
    catalog_pools = {p.id: p for p in pools or []} | load_pools()
    return Deps(
        store=store,
        compute=compute or FakeCompute(),
        catalog=Catalog(algorithms={"toy": TOY}, pools=catalog_pools),
        clock=FakeClock(),
        policy=policy or Policy(approvers=["UAPPROVER"], admins=["UADMIN"],
                                rerun_approval=RerunApproval.NEVER),
        chat=chat or RecordingChat(),
    )


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    """A fresh SQLite file or a moto DynamoDB table (requests applied atomically, as AWS does)."""
    if kind == "sqlite":
        from bot.adapters.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "trainbot.db")
        request.addfinalizer(store.close)
        return store
    from bot.adapters.dynamodb.store import DynamoStore

    client, _ = request.getfixturevalue("dynamodb")
    return DynamoStore(TABLE, client=AtomicRequests(client))


def fast_harness(tmp: Path, *, algorithms: list[str], **settings: Any) -> Harness:
    """A Harness whose card links skip the local TensorBoard server (seconds of CPU each)."""
    return Harness(tmp, algorithms=algorithms, tensorboard=False, **settings)


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator[Any]:
    """Build Harnesses in a test; every one is closed at teardown."""
    made: list[Harness] = []

    def make(*, algorithms: list[str] | None = None, sub: str = "h", **settings: Any) -> Harness:
        folder = tmp_path / f"{sub}{len(made)}"
        folder.mkdir()
        h = fast_harness(folder, algorithms=algorithms or ["quick-metrics"], **settings)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def _texts(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string under a ``text`` key (Block Kit text objects and message text)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield f"{path}.text", value
            else:
                yield from _texts(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _texts(value, f"{path}[{i}]")


def block_kit_problems(slack: LocalSlack, extra: list[dict] | None = None, *,
                       since: int = 0) -> list[str]:
    """Messages the stand-in received (from request number ``since`` on, plus ``extra``
    bodies such as acks) over Slack's limits: more than 50 blocks, or a text over 3,000
    characters."""
    bodies = [(r.method, r.params) for r in slack.requests[since:]
              if r.method in MESSAGE_METHODS]
    bodies += [("ack", body) for body in extra or []]
    problems = []
    for method, params in bodies:
        blocks = params.get("blocks")
        if isinstance(blocks, str):  # form-encoded and not JSON: the stand-in left it raw
            blocks = json.loads(blocks)
        if blocks and len(blocks) > MAX_BLOCKS:
            problems.append(f"{method}: {len(blocks)} blocks")
        for where, text in _texts({"text": params.get("text"), "blocks": blocks or []}):
            if len(text) > MAX_TEXT:
                problems.append(f"{method}{where}: {len(text)} characters")
    return problems
