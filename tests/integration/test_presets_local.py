"""Each preset algorithm end to end through the local backend and the services (small
settings: the quality targets are the benchmark's job, not this test's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import build_deps
from bot.config import Settings
from bot.domain import Status
from bot.services.context import Deps
from bot.services.requests import LaunchRequest, start_job
from tests.integration.slack_harness import REPO, wait_until

SMALL = {
    "image-classification": {"epochs": "2", "width": "8"},
    "tabular-classification": {"max_iter": "30"},
    "tabular-regression": {"max_iter": "30"},
}


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Deps]:
    d = build_deps(Settings(home=tmp_path, algorithms_dir=REPO / "algorithms",
                            tensorboard_port=0))
    yield d
    d.compute.close()  # type: ignore[attr-defined]
    tb = getattr(d.compute, "tensorboard", None)
    if tb is not None:
        tb.stop()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", sorted(SMALL))
def test_preset_trains_to_completion_with_every_output(deps: Deps, algorithm: str) -> None:
    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm=algorithm, params=SMALL[algorithm],
                                         pool="local-cpu", job_name=f"e2e-{algorithm}"[:40]))
    done = wait_until(lambda: (lambda x: x if x.status.terminal else None)(
        deps.store.get_version(v.job, 1)), timeout=180)
    assert done.status is Status.COMPLETED, (done.failure_reason, done.log_tail)
    objective = deps.catalog.algorithm(algorithm).objective.metric
    assert objective in done.metrics
    assert done.evaluation and done.evaluation["objective"]["metric"] == objective
    assert done.series and all(s.count >= 1 for s in done.series.values())
    model_dir = Path(done.artifacts.model.removeprefix("file://"))
    assert any(model_dir.iterdir()), "a model artifact was written"
    tb_dir = Path(done.artifacts.tensorboard.removeprefix("file://"))
    assert list(tb_dir.rglob("events.out.tfevents*")), "TensorBoard event files were written"
