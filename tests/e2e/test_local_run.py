"""`trainbot run` (what `make run` starts): a person types into the terminal client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.slack_harness import algorithms_dir
from tests.processes import processes_mentioning


def test_terminal_client_start_rerun_approve(tmp_path: Path) -> None:
    env = dict(os.environ, TRAINBOT_HOME=str(tmp_path / "home"), TRAINBOT_TENSORBOARD_PORT="0",
               TRAINBOT_ALGORITHMS_DIR=str(algorithms_dir(tmp_path, ["quick-metrics"])))
    script = "\n".join([
        "/train start quick-metrics epochs=2 --name demo",
        "/wait 6",
        "/train rerun demo epochs=3",
        "/wait 2",
        "/as U0LOCAL2",
        "/train status",
        "/wait 2",
        "/quit",
    ]) + "\n"
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--port", "0"], input=script, text=True,
        capture_output=True, env=env, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "demo v1" in out and "COMPLETED" in out
    assert "TensorBoard" in out and "http://127.0.0.1:" in out
    assert "asks to run" in out and "demo v2" in out  # the approval card
    assert "Awaiting approval" in out  # the approver's status view


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, TRAINBOT_HOME=str(tmp_path / "home"), TRAINBOT_TENSORBOARD_PORT="0",
                TRAINBOT_ALGORITHMS_DIR=str(algorithms_dir(tmp_path, ["quick-metrics"])),
                SLACK_SIGNING_SECRET="local-secret", SLACK_BOT_TOKEN="xoxb-local",
                SLACK_API_URL="http://127.0.0.1:9/api/", **extra)


def _eventually(condition, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("cmd", ["run", "serve"])
def test_a_busy_bot_port_says_so_and_how_to_pick_another(
        tmp_path: Path, busy_port: int, cmd: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bot.cli", cmd, "--port", str(busy_port)],
                          input="/quit\n", text=True, capture_output=True,
                          env=_env(tmp_path), timeout=60)

    assert proc.returncode == 2
    assert f"port {busy_port} is in use — run `trainbot {cmd} --port N`" in proc.stderr
    assert "error id" not in proc.stderr and "admin" not in proc.stderr


def test_serve_expires_an_overdue_approval_by_itself(tmp_path: Path) -> None:
    # The approval is made overdue in the store: a TTL can't be under a minute, and the
    # suite can't wait for one. The timer (1 s here, 60 s by default) does the rest.
    env = _env(tmp_path, TRAINBOT_RECONCILE_INTERVAL_S="0.5", TRAINBOT_USER="alice")
    started = subprocess.run([sys.executable, "-m", "bot.cli", "--json", "start",
                              "quick-metrics", "--pool", "gpu-4", "--name", "big"],
                             env=env, text=True, capture_output=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status"] == "AWAITING_APPROVAL"
    db = tmp_path / "home" / "trainbot.db"
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE approvals SET body = json_set(body, '$.expires_at', "
                     "'2000-01-01T00:00:00Z')")

    def status() -> str:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return conn.execute("SELECT status FROM versions WHERE job = 'big'").fetchone()[0]

    serve = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert _eventually(lambda: status() == "REJECTED", 30), status()
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0, serve.stderr.read() if serve.stderr else ""


def test_sigterm_stops_the_tensorboard_the_bot_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--port", "0"],
                            env=_env(tmp_path), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write("/train start quick-metrics epochs=2 --name demo\n")
        proc.stdin.flush()
        assert _eventually(lambda: any("tensorboard" in line for line in
                                       processes_mentioning(str(home)).values()), 60)

        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _eventually(lambda: not processes_mentioning(str(home / "tensorboard")), 10), \
        processes_mentioning(str(home))


def test_home_is_private_to_its_user(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "pools"], env=_env(tmp_path),
                          text=True, capture_output=True, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "trainbot.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "trainbot.log").stat().st_mode) == 0o600
