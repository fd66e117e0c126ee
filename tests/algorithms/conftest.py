"""Run preset algorithms as real subprocesses under an /opt/ml-like temporary root.

`harness.run(...)` gives each run its own SM_* environment, the way SageMaker's training
toolkit (or bot/adapters/local/contract.py) sets it, and returns what came out.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ALGORITHMS_DIR = Path(__file__).resolve().parents[2] / "algorithms"
ALGORITHM_IDS = sorted(p.parent.name for p in ALGORITHMS_DIR.glob("*/manifest.yml"))
# Modules an algorithm folder may hold; cleared between in-process imports of two folders.
_LOCAL_MODULES = {p.stem for p in ALGORITHMS_DIR.glob("*/*.py")}
EXIT_STOPPED = 143
_INHERITED = ("SM_", "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def manifest(algorithm: str) -> dict[str, Any]:
    return yaml.safe_load((ALGORITHMS_DIR / algorithm / "manifest.yml").read_text())


@contextmanager
def algorithm_modules(algorithm: str) -> Iterator[None]:
    """Import an algorithm's modules in-process by their plain names, as its train.py does,
    without leaking them into another folder's imports."""
    folder = str(ALGORITHMS_DIR / algorithm)
    shared = str(ALGORITHMS_DIR / "_shared")
    for name in _LOCAL_MODULES:
        sys.modules.pop(name, None)
    sys.path[:0] = [folder, shared]
    try:
        yield
    finally:
        sys.path.remove(folder)
        sys.path.remove(shared)
        for name in _LOCAL_MODULES:
            sys.modules.pop(name, None)


def import_modules(algorithm: str, *names: str) -> list[ModuleType]:
    """Modules of one folder imported together (so they share one `UserError` class)."""
    with algorithm_modules(algorithm):
        return [importlib.import_module(name) for name in names]


@dataclass
class Result:
    algorithm: str
    root: Path
    returncode: int
    stdout: str
    stderr: str
    env: dict[str, str] = field(repr=False)

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "output" / "tensorboard"

    @property
    def evaluation(self) -> dict[str, Any]:
        return json.loads((self.root / "output" / "data" / "evaluation.json").read_text())

    def error_line(self) -> str:
        errors = [line for line in self.stderr.splitlines() if line.startswith("ERROR: ")]
        assert errors, f"no ERROR: line in stderr:\n{self.stderr[-2000:]}"
        return errors[-1]

    def metric_values(self, name: str) -> list[float]:
        """The series SageMaker would scrape for metric `name` with the manifest's regex."""
        spec = next(m for m in manifest(self.algorithm)["metrics"] if m["name"] == name)
        return [float(v) for v in re.findall(spec["regex"], self.stdout)]

    def check_ok(self) -> None:
        assert self.returncode == 0, f"exit {self.returncode}\n{self.stdout}\n{self.stderr}"


def sm_env(root: Path, hps: Mapping[str, Any], channels: Mapping[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED)}
    env.update(
        {
            # As the training toolkit sets it: the values of hyperparameters.json (each a
            # JSON-encoded string) decoded back to JSON values.
            "SM_HPS": json.dumps(dict(hps)),
            "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
            "SM_MODEL_DIR": str(root / "model"),
            "SM_OUTPUT_DIR": str(root / "output"),
            "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
            "SM_CHECKPOINT_DIR": str(root / "checkpoints"),
            "SM_TENSORBOARD_DIR": str(root / "output" / "tensorboard"),
            "SM_HOSTS": '["algo-1"]',
            "SM_CURRENT_HOST": "algo-1",
            "SM_NUM_GPUS": "0",
        }
    )
    env.update({f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()})
    return env


class Harness:
    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._count = 0

    def root(self) -> Path:
        self._count += 1
        return self._tmp / f"run{self._count}"

    def run(
        self,
        algorithm: str,
        hps: Mapping[str, Any] | None = None,
        *,
        root: Path | None = None,
        channels: Mapping[str, Path] | None = None,
        argv: Sequence[str] = (),
        launcher: Sequence[str] = (),
        timeout: float = 120,
    ) -> Result:
        root = root or self.root()
        env = sm_env(root, hps or {}, channels or {})
        command = [sys.executable, *launcher, str(ALGORITHMS_DIR / algorithm / "train.py")]
        done = subprocess.run(
            [*command, *argv],
            env=env,
            cwd=root.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(algorithm, root, done.returncode, done.stdout, done.stderr, env)

    def run_until_sigterm(
        self, algorithm: str, hps: Mapping[str, Any], *, after_line: str, timeout: float = 60
    ) -> tuple[Result, float]:
        """Start a run, send SIGTERM once a stdout line starts with `after_line`, and
        return the result with the seconds the run took to exit after the signal."""
        root = self.root()
        env = sm_env(root, hps, {})
        proc = subprocess.Popen(
            [sys.executable, str(ALGORITHMS_DIR / algorithm / "train.py")],
            env=env,
            cwd=root.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + timeout
        try:
            for line in proc.stdout:
                lines.append(line)
                if line.startswith(after_line) or time.monotonic() > deadline:
                    break
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            rest, stderr = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - signalled
        return Result(algorithm, root, proc.returncode, "".join(lines) + rest, stderr, env), took


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return Harness(tmp_path_factory.mktemp("sm"))


def assert_complete_run(result: Result) -> None:
    """Everything the contract asks of a finished run."""
    result.check_ok()
    spec = manifest(result.algorithm)
    evaluation = result.evaluation
    assert evaluation["objective"]["metric"] == spec["objective"]["metric"]
    assert isinstance(evaluation["objective"]["value"], float)
    task = evaluation["task"]
    assert task in ("classification", "regression")
    if task == "classification":
        k = len(evaluation["classes"])
        assert {"accuracy", "f1_macro"} <= set(evaluation["metrics"])
        assert [row["class"] for row in evaluation["per_class"]] == evaluation["classes"]
        assert {"precision", "recall", "f1", "support"} <= set(evaluation["per_class"][0])
        matrix = evaluation["confusion_matrix"]
        assert len(matrix) == k and all(len(row) == k for row in matrix)
        assert sum(map(sum, matrix)) == evaluation["samples"]
    else:
        assert {"rmse", "mae", "r2"} <= set(evaluation["metrics"])
    assert (result.model_dir / "model.json").is_file()
    weights = {"model.pt", "model.joblib"} & {p.name for p in result.model_dir.iterdir()}
    assert weights, "no model weights next to model.json"
    events = list(result.tensorboard_dir.rglob("events.out.tfevents*"))
    assert events, "no TensorBoard event files"
    scalars, hparams = tensorboard_tags(result.tensorboard_dir)
    assert {m["name"].replace(":", "/") for m in spec["metrics"]} <= scalars
    assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= hparams
    for metric in spec["metrics"]:
        assert re.search(metric["regex"], result.stdout), f"no line matched {metric['name']}"
    progress = list(re.finditer(spec["progress_regex"], result.stdout))
    assert progress, "no progress line"
    assert int(progress[-1]["current"]) <= int(progress[-1]["total"])


def tensorboard_tags(logdir: Path) -> tuple[set[str], set[str]]:
    """Scalar tags and hparams tags, read back the way TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    return set(events.Tags()["scalars"]), set(events.PluginTagToContent("hparams"))
