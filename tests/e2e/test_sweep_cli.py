"""Sweeps from the CLI, as the issue's acceptance runs them: real trials (subprocesses),
Optuna proposing each, the store holding the study; and a bot killed mid-sweep resuming it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.tensorboard_local import LocalTensorBoard
from tests.integration.slack_harness import algorithms_dir
from tests.processes import processes_mentioning


def _env(tmp_path: Path, algorithms: list[str], **extra: str) -> dict[str, str]:
    return dict(os.environ, TRAINBOT_HOME=str(tmp_path / "home"), TRAINBOT_TENSORBOARD_PORT="0",
                TRAINBOT_ALGORITHMS_DIR=str(algorithms_dir(tmp_path, algorithms)),
                TRAINBOT_USER="alice", **extra)


def _cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def stops_tensorboard(tmp_path: Path) -> Iterator[None]:
    yield
    # The CLI leaves its TensorBoard running for `trainbot tb` (documented): stop it here,
    # as `trainbot admin stop-tensorboard` does.
    home = tmp_path / "home"
    LocalTensorBoard(home / "runs", state_dir=home).stop()


def test_a_sweep_runs_its_trials_and_finds_at_least_the_default(
        tmp_path: Path, stops_tensorboard: None) -> None:
    env = _env(tmp_path, ["tabular-classification"])
    default = _cli(env, "--json", "start", "tabular-classification", "--name", "base", "--wait")
    assert default.returncode == 0, default.stderr
    baseline = json.loads(default.stdout)["objective"]["value"]

    swept = _cli(env, "--json", "sweep", "tabular-classification",
                 "learning_rate=0.01..0.5:log", "max_leaf_nodes=8..64", "--trials", "8",
                 "--parallel", "2", "--name", "sw", "--wait")

    assert swept.returncode == 0, swept.stderr[-3000:]
    sweep = json.loads(swept.stdout)
    assert sweep["status"] == "COMPLETED" and sweep["backend"] == "optuna"
    assert sweep["counts"]["requested"] == 8 and len(sweep["trials"]) == 8
    assert sweep["best"]["objective"] >= baseline - 0.01
    versions = json.loads(_cli(env, "--json", "versions", "sw").stdout)
    assert sorted(v["trial"] for v in versions) == list(range(8))
    for v in versions:
        assert v["objective"]["metric"] == "validation:accuracy"
        assert v["objective"]["value"] is not None  # completed, or pruned with its last value
        assert 0.01 <= v["hyperparameters"]["learning_rate"] <= 0.5
        assert 8 <= v["hyperparameters"]["max_leaf_nodes"] <= 64
    assert not processes_mentioning(str(tmp_path / "home" / "runs"))


def _trial_versions(db: Path) -> list[tuple[int, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT json_extract(fixed, '$.trial'), status FROM versions "
                            "WHERE job = 'resumed'").fetchall()
    return [(t, s) for t, s in rows]


def _sweep_status(db: Path) -> str | None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT status FROM sweeps WHERE name = 'resumed'").fetchone()
    return row[0] if row else None


def _eventually(condition, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_bot_killed_mid_sweep_resumes_it_with_exactly_the_trials_asked(
        tmp_path: Path, stops_tensorboard: None) -> None:
    """The CLI starts the sweep and leaves (its two trials run on); `serve` takes it up, is
    killed (SIGKILL: no clean-up at all) while trials run, and a new `serve` finishes it."""
    env = _env(tmp_path, ["quick-metrics"], TRAINBOT_RECONCILE_INTERVAL_S="0.5",
               SLACK_SIGNING_SECRET="local-secret", SLACK_BOT_TOKEN="xoxb-local",
               SLACK_API_URL="http://127.0.0.1:9/api/")
    db = tmp_path / "home" / "trainbot.db"
    started = _cli(env, "--json", "sweep", "quick-metrics", "epochs=2..8", "sleep_s=1.5",
                   "--trials", "7", "--parallel", "2", "--name", "resumed")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status"] == "RUNNING"

    def serve() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    first = serve()
    try:
        assert _eventually(lambda: sum(s == "COMPLETED" for _, s in _trial_versions(db)) >= 3,
                           90), _trial_versions(db)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert _sweep_status(db) == "RUNNING"
        second = serve()
        try:
            assert _eventually(lambda: _sweep_status(db) == "COMPLETED", 120), (
                _sweep_status(db), _trial_versions(db),
                second.stderr.read() if second.poll() is not None and second.stderr else "")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    trials = _trial_versions(db)
    assert sorted(t for t, _ in trials) == list(range(7)), trials  # exactly 7, none twice
    assert all(s == "COMPLETED" for _, s in trials), trials
    assert not processes_mentioning(str(tmp_path / "home" / "runs"))
