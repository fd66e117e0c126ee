"""Spend control on the embedded default, with real runs (the local backend's subprocesses):
the per-user cap queues and releases in turn, and a priced pool's run costs what it ran."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import build_deps
from bot.config import Settings
from bot.domain import Status
from bot.services.requests import LaunchRequest, start_job
from tests.integration.slack_harness import algorithms_dir

POOLS = """
pools:
  - id: local-cpu
    instance_type: local
    hourly_price_usd: 0.0
  - id: priced
    description: a local pool priced so a run's cost is known (1 cent a second)
    instance_type: local
    hourly_price_usd: 36.0
    max_runtime_hours: 1
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "pools.yml").write_text(POOLS)
    return tmp_path / "home"


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(home=tmp_path / "home", tensorboard_port=0, rerun_approval="never",
                    algorithms_dir=algorithms_dir(tmp_path, ["quick-metrics"]),
                    pools=tmp_path / "pools.yml", **kw)


@pytest.fixture
def capped(tmp_path: Path, home: Path) -> Iterator[Any]:
    deps = build_deps(_settings(tmp_path, max_active_per_user=1), recover=False)
    yield deps
    deps.compute.close()


def _wait(condition, timeout_s: float = 90) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_five_starts_by_one_user_run_one_at_a_time_in_turn(capped: Any) -> None:
    deps = capped
    barrier = threading.Barrier(5)
    started: list[Any] = []

    def start(i: int) -> None:
        barrier.wait()
        version, _ = start_job(deps, LaunchRequest(
            user="U1", algorithm="quick-metrics", pool="local-cpu", job_name=f"cap-{i}",
            params={"sleep_s": 0.6}, trusted=True))
        started.append(version)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    most_at_once = 0

    def all_done() -> bool:
        nonlocal most_at_once
        versions = [deps.store.get_version(f"cap-{i}", 1) for i in range(5)]
        running = [v for v in versions if v.backend_job_name and not v.status.terminal]
        most_at_once = max(most_at_once, len(running))
        return all(v.status.terminal for v in versions)

    assert _wait(all_done), [deps.store.get_version(f"cap-{i}", 1).status for i in range(5)]
    versions = [deps.store.get_version(f"cap-{i}", 1) for i in range(5)]
    assert most_at_once == 1
    assert all(v.status is Status.COMPLETED for v in versions)
    # In turn: each launched after the one before it ended; those that waited, oldest
    # request first (the first to launch is whichever of the five claimed first).
    by_start = sorted(versions, key=lambda v: v.started_at or v.created_at)
    waited = by_start[1:]
    assert waited == sorted(waited, key=lambda v: (v.created_at, v.job))
    for earlier, later in itertools.pairwise(by_start):
        assert earlier.ended_at is not None and later.started_at is not None
        assert later.started_at >= earlier.ended_at


def test_five_users_with_one_start_each_run_at_once(capped: Any) -> None:
    deps = capped
    for i in range(5):
        start_job(deps, LaunchRequest(user=f"U{i}", algorithm="quick-metrics",
                                      pool="local-cpu", job_name=f"solo-{i}",
                                      params={"sleep_s": 2.0}, trusted=True))
    launched = [deps.store.get_version(f"solo-{i}", 1) for i in range(5)]
    assert all(v.backend_job_name for v in launched)  # none waited for another
    assert _wait(lambda: all(deps.store.get_version(f"solo-{i}", 1).status.terminal
                             for i in range(5)))


def test_a_priced_run_costs_its_wall_time_and_the_report_says_so(
        tmp_path: Path, home: Path) -> None:
    deps = build_deps(_settings(tmp_path), recover=False)
    try:
        version, _ = start_job(deps, LaunchRequest(
            user="U1", algorithm="quick-metrics", pool="priced", job_name="priced",
            params={"sleep_s": 2.0}, trusted=True))
        assert version.estimated_cost_usd == pytest.approx(36.0 * 1)  # 1 h ceiling
        assert _wait(lambda: deps.store.get_version("priced", 1).status.terminal)
    finally:
        deps.compute.close()
    ended = deps.store.get_version("priced", 1)
    assert ended.started_at and ended.ended_at
    ran_s = (ended.ended_at - ended.started_at).total_seconds()
    assert ended.actual_cost_usd == pytest.approx(ran_s * 0.01, rel=0.05)
    env = dict(os.environ, TRAINBOT_HOME=str(tmp_path / "home"),
               TRAINBOT_POOLS=str(tmp_path / "pools.yml"),
               TRAINBOT_ALGORITHMS_DIR=str(tmp_path / "algorithms"))
    out = subprocess.run([sys.executable, "-m", "bot.cli", "--json", "cost", "--by", "pool"],
                         env=env, text=True, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    [row] = [r for r in report["rows"] if r["subject"] == "priced"]
    assert row["spent_usd"] == pytest.approx(ran_s * 0.01, rel=0.05)
    assert report["total"]["spent_usd"] == pytest.approx(row["spent_usd"])
    assert report["top_jobs"][0]["subject"] == "priced"
