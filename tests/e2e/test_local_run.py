"""`trainbot run` (what `make run` starts): a person types into the terminal client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.slack_harness import algorithms_dir


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
