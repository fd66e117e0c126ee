from __future__ import annotations

import pytest

from bot.catalog import Catalog, load_pools
from bot.config import RerunApproval
from bot.domain import Algorithm
from bot.services.authz import Policy
from bot.services.context import Deps
from tests.fakes import FakeClock, FakeCompute, MemoryStore, RecordingChat

ALGO = Algorithm.model_validate({
    "id": "toy", "title": "Toy", "version": "1.0.0", "framework": "pytorch",
    "framework_version": "2.5", "entry_point": "train.py",
    "hyperparameters": [
        {"name": "epochs", "type": "int", "default": 3, "min": 1, "max": 100},
        {"name": "lr", "type": "float", "default": 0.1, "min": 0.0, "max": 10},
        {"name": "amp", "type": "bool", "default": True},
        {"name": "optimizer", "type": "choice", "choices": ["adam", "sgd"], "default": "adam"},
    ],
    "channels": [{"name": "train", "default": "builtin:digits"}],
    "metrics": [{"name": "validation:accuracy", "regex": "acc=([0-9.]+)"},
                {"name": "train:loss", "regex": "loss=([0-9.]+)"}],
    "objective": {"metric": "validation:accuracy", "goal": "maximize"},
    "supports_spot": True,
})


def make_deps() -> Deps:
    return Deps(
        store=MemoryStore(),
        compute=FakeCompute(),
        catalog=Catalog(algorithms={"toy": ALGO}, pools=load_pools()),
        clock=FakeClock(),
        policy=Policy(approvers=["UAPPROVER"], admins=["UADMIN"],
                      rerun_approval=RerunApproval.ALWAYS),
        chat=RecordingChat(),
    )


@pytest.fixture
def deps() -> Deps:
    return make_deps()
