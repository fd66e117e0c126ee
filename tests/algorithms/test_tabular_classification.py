"""tabular-classification end to end: real subprocesses under an /opt/ml-like root."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.algorithms.conftest import EXIT_STOPPED, Harness, Result, assert_complete_run

ALGORITHM = "tabular-classification"
SMALL = {"max_iter": 20, "eval_every": 5}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def builtin_run(harness: Harness) -> Result:
    return harness.run(ALGORITHM, SMALL)


def test_builtin_data_run_writes_every_output(builtin_run: Result) -> None:
    assert_complete_run(builtin_run)
    assert builtin_run.evaluation["classes"] == ["benign", "malignant"]
    assert builtin_run.metric_values("validation:accuracy")[-1] > 0.9


def test_progress_is_reported_every_eval_every_iterations(builtin_run: Result) -> None:
    assert [
        line.split()[0] for line in builtin_run.stdout.splitlines() if line.startswith("iteration=")
    ] == ["iteration=5/20", "iteration=10/20", "iteration=15/20", "iteration=20/20"]


def test_same_seed_gives_the_same_model(harness: Harness, builtin_run: Result) -> None:
    again = harness.run(ALGORITHM, SMALL)
    assert again.evaluation == builtin_run.evaluation


def test_resumes_from_the_latest_checkpoint(harness: Harness, builtin_run: Result) -> None:
    root = harness.root()
    shutil.copytree(builtin_run.checkpoint_dir, root / "checkpoints")
    resumed = harness.run(ALGORITHM, {**SMALL, "max_iter": 30}, root=root)
    assert_complete_run(resumed)
    assert "resumed from checkpoint iteration=20" in resumed.stdout
    assert "iteration=5/" not in resumed.stdout and "iteration=25/30" in resumed.stdout


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path.parent


def animals(n: int, seed: int) -> list[list[object]]:
    """Weight and habitat decide the animal; a few weights are missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        habitat = ["sky", "house", "yard"][i % 3]
        animal = {"sky": "bird", "house": "cat", "yard": "dog"}[habitat]
        weight = {"bird": 0.3, "cat": 4.0, "dog": 20.0}[animal] * rng.uniform(0.7, 1.3)
        rows.append([f"{weight:.2f}" if i % 17 else "", habitat, animal, f"id{i}"])
    return rows


def test_csv_channels_with_text_labels_and_categories(harness: Harness, tmp_path: Path) -> None:
    header = ["weight", "habitat", "animal", "name"]
    channels = {
        "train": write_csv(tmp_path / "train" / "part.csv", header, animals(150, 0)),
        "validation": write_csv(tmp_path / "validation" / "part.csv", header, animals(60, 1)),
    }
    hps = {"label_column": "animal", "ignore_columns": "name", "max_iter": 10, "eval_every": 5}
    result = harness.run(ALGORITHM, hps, channels=channels)
    assert_complete_run(result)
    assert result.evaluation["classes"] == ["bird", "cat", "dog"]
    assert result.evaluation["samples"] == 60
    assert result.evaluation["objective"]["value"] == 1.0
    assert "categorical=1" in result.stdout


def test_a_missing_label_column_fails_with_a_clear_error(harness: Harness, tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train" / "a.csv", ["a", "label"], [[1, "x"], [2, "y"]])
    result = harness.run(ALGORITHM, {"label_column": "species"}, channels={"train": train})
    assert result.returncode == 2
    assert result.error_line() == (
        f"ERROR: label_column 'species' is not a column of {train} (csv); its columns are a, label"
    )
    assert "Traceback" not in result.stderr
    assert (result.root / "output" / "failure").read_text().startswith("label_column")


def test_a_bad_hyperparameter_fails_with_a_clear_error(harness: Harness) -> None:
    result = harness.run(ALGORITHM, {"learning_rate": 5})
    assert result.returncode == 2
    assert result.error_line() == (
        "ERROR: hyperparameter learning_rate=5.0 is out of range [0.0001, 1.0]"
    )


def test_sigterm_checkpoints_and_stops(harness: Harness) -> None:
    hps = {"max_iter": 5000, "eval_every": 1, "early_stopping": False}
    result, took = harness.run_until_sigterm(ALGORITHM, hps, after_line="iteration=3/")
    assert result.returncode == EXIT_STOPPED, result.stderr
    assert "stopped by SIGTERM" in result.stdout
    assert took < 10
    assert list(result.checkpoint_dir.glob("checkpoint-iteration-*.pkl"))
