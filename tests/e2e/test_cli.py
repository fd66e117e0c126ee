"""The `trainbot` CLI as a user runs it: real processes, a fresh TRAINBOT_HOME."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.tensorboard_local import LocalTensorBoard
from tests.integration.slack_harness import algorithms_dir


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = dict(os.environ)
    home = tmp_path / "home"
    e.update(TRAINBOT_HOME=str(home), TRAINBOT_USER="alice",
             TRAINBOT_ALGORITHMS_DIR=str(algorithms_dir(tmp_path, [
                 "quick-metrics", "crasher", "tabular-classification"])),
             TRAINBOT_TENSORBOARD_PORT="0", TRAINBOT_RERUN_APPROVAL="never")
    yield e
    # The CLI leaves its TensorBoard running for `trainbot tb` (documented): stop it here,
    # as `trainbot admin stop-tensorboard` does.
    LocalTensorBoard(home / "runs", state_dir=home).stop()


def trainbot(env: dict[str, str], *words: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "bot.cli", *words], env=env, text=True,
                          capture_output=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_help_and_pools_on_a_fresh_home(env: dict[str, str]) -> None:
    assert "start ALGORITHM" in trainbot(env, "help").stdout
    pools = trainbot(env, "pools").stdout
    assert "gpu-1" in pools and "ml.g5.xlarge" in pools


def test_presets_survive_a_restart(env: dict[str, str]) -> None:
    trainbot(env, "preset", "save", "fast", "tabular-classification", "max_iter=20",
             "--description", "quick baseline")
    # every call is a new process: the data lives in the SQLite file
    listing = trainbot(env, "preset", "list").stdout
    assert "fast" in listing and "quick baseline" in listing
    shown = json.loads(trainbot(env, "--json", "preset", "show", "fast").stdout)
    assert "max_iter=20" in json.dumps(shown)
    dup = trainbot(env, "preset", "save", "fast", "tabular-classification", check=False)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    other = dict(env, TRAINBOT_USER="bob")
    denied = trainbot(other, "preset", "delete", "fast", check=False)
    assert denied.returncode == 2 and "owner" in denied.stderr
    trainbot(env, "preset", "delete", "fast")
    assert "No presets" in trainbot(env, "preset", "list").stdout


def test_start_wait_completes_and_the_results_are_queryable(env: dict[str, str]) -> None:
    done = trainbot(env, "start", "quick-metrics", "epochs=3", "--name", "q1", "--wait")
    assert "COMPLETED" in done.stdout and "training [" not in done.stdout  # progress → stderr
    shown = json.loads(trainbot(env, "--json", "show", "q1").stdout)
    assert shown["status"] == "COMPLETED" and shown["metrics"]
    assert shown["links"]["tensorboard"].startswith("http://127.0.0.1:")
    assert "Evaluation of" in trainbot(env, "eval", "q1").stdout
    trainbot(env, "rerun", "q1", "epochs=2", "--wait")
    diff = trainbot(env, "diff", "q1", "v1", "v2").stdout
    assert "epochs" in diff and "3" in diff and "2" in diff
    assert "v2 ← v1" in trainbot(env, "versions", "q1").stdout


def test_failed_run_exits_non_zero_with_reason(env: dict[str, str]) -> None:
    failed = trainbot(env, "start", "crasher", "--name", "bad", "--wait", check=False)
    assert failed.returncode == 1 and "FAILED" in failed.stdout and "Reason" in failed.stdout


def test_bad_input_goes_to_stderr_with_usage(env: dict[str, str]) -> None:
    bad = trainbot(env, "start", "quick-metrics", "epochs=lots", check=False)
    assert bad.returncode == 2 and "epochs" in bad.stderr and bad.stdout == ""
    unknown = trainbot(env, "start", "nope", check=False)
    assert unknown.returncode == 2 and "quick-metrics" in unknown.stderr


@pytest.fixture
def port_6006() -> Iterator[None]:
    """Someone else's server on 127.0.0.1:6006 (the usual: an ML engineer's own TensorBoard)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 6006))
        except OSError:
            pytest.skip("port 6006 is already taken by another program on this machine, so "
                        "this test can't hold it itself")
        s.listen()
        yield


def test_tb_gives_a_working_link_when_6006_is_taken(
        env: dict[str, str], port_6006: None) -> None:
    del env["TRAINBOT_TENSORBOARD_PORT"]
    trainbot(env, "start", "quick-metrics", "epochs=2", "--name", "q6", "--wait")

    url = trainbot(env, "tb", "q6").stdout.split()[-1]

    assert url.startswith("http://127.0.0.1:") and ":6006/" not in url
    base = url.split("?")[0]
    with urllib.request.urlopen(f"{base}data/runs", timeout=10) as response:
        assert response.status == 200


def test_admin_stop_tensorboard_stops_the_server_the_cli_left(env: dict[str, str]) -> None:
    trainbot(env, "start", "quick-metrics", "epochs=1", "--name", "q7", "--wait")
    base = trainbot(env, "tb", "q7").stdout.split()[-1].split("?")[0]

    assert "TensorBoard stopped" in trainbot(env, "admin", "stop-tensorboard").stdout
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}data/runs", timeout=5)
