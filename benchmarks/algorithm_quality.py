"""Train every preset algorithm with its default hyperparameters and data, and report
whether the objective reaches the manifest's quality_target, and how long it took.

    .venv/bin/python benchmarks/algorithm_quality.py [ALGORITHM_ID ...]

Each run is a real subprocess under a temporary /opt/ml-like root, as in a training job.
Exits 0 once every run has been reported, whatever the outcome (it measures, not gates).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ALGORITHMS_DIR = Path(__file__).resolve().parents[1] / "algorithms"
TIMEOUT_S = 600


@dataclass(frozen=True)
class Outcome:
    algorithm: str
    metric: str
    value: float | None
    target: float | None
    goal: str
    seconds: float
    problem: str = ""

    @property
    def passed(self) -> bool:
        if self.value is None or self.target is None:
            return False
        return self.value >= self.target if self.goal == "maximize" else self.value <= self.target


def run(algorithm: str) -> Outcome:
    manifest = yaml.safe_load((ALGORITHMS_DIR / algorithm / "manifest.yml").read_text())
    objective = manifest["objective"]
    target = manifest.get("quality_target")
    with tempfile.TemporaryDirectory(prefix=f"bench-{algorithm}-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
        env.update(
            SM_HPS="{}",
            SM_MODEL_DIR=str(root / "model"),
            SM_OUTPUT_DIR=str(root / "output"),
            SM_OUTPUT_DATA_DIR=str(root / "output" / "data"),
            SM_CHECKPOINT_DIR=str(root / "checkpoints"),
            SM_TENSORBOARD_DIR=str(root / "output" / "tensorboard"),
            SM_INPUT_CONFIG_DIR=str(root / "input" / "config"),
        )
        script = ALGORITHMS_DIR / algorithm / manifest["entry_point"]
        started = time.monotonic()

        def failed(why: str) -> Outcome:
            return Outcome(algorithm, objective["metric"], None, target, objective["goal"],
                           time.monotonic() - started, why)

        try:
            done = subprocess.run(
                [sys.executable, str(script)],
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return failed(f"timed out after {TIMEOUT_S} s")
        seconds = time.monotonic() - started
        if done.returncode != 0:
            return failed(f"exit {done.returncode}: "
                          + (done.stderr.strip().splitlines() or ["no output"])[-1])
        evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    return Outcome(
        algorithm,
        objective["metric"],
        evaluation["objective"]["value"],
        target,
        objective["goal"],
        seconds,
    )


def main(argv: list[str]) -> int:
    algorithms = argv or sorted(p.parent.name for p in ALGORITHMS_DIR.glob("*/manifest.yml"))
    print(f"{'algorithm':<24} {'objective':<22} {'value':>8} {'target':>8}  result  wall s")
    outcomes = []
    for algorithm in algorithms:
        outcome = run(algorithm)
        outcomes.append(outcome)
        value = "-" if outcome.value is None else f"{outcome.value:.4f}"
        sign = ">=" if outcome.goal == "maximize" else "<="
        target = "-" if outcome.target is None else f"{sign}{outcome.target:g}"
        result = "PASS" if outcome.passed else "FAIL"
        print(
            f"{algorithm:<24} {outcome.metric:<22} {value:>8} {target:>8}  {result:<6} "
            f"{outcome.seconds:6.1f}" + (f"  ({outcome.problem})" if outcome.problem else ""),
            flush=True,
        )
    passed = sum(o.passed for o in outcomes)
    total = sum(o.seconds for o in outcomes)
    print(
        f"summary: {passed}/{len(outcomes)} algorithms reach their quality target "
        f"with defaults; {total:.1f} s of training in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
