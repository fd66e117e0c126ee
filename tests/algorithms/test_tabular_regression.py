"""tabular-regression end to end: real subprocesses under an /opt/ml-like root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.algorithms.conftest import Harness, assert_complete_run

ALGORITHM = "tabular-regression"

pytestmark = pytest.mark.slow


def test_builtin_data_run_writes_every_output(harness: Harness) -> None:
    result = harness.run(ALGORITHM, {"max_iter": 40})
    assert_complete_run(result)
    assert result.evaluation["task"] == "regression"
    assert result.evaluation["objective"]["metric"] == "validation:r2"
    assert result.metric_values("validation:r2")[-1] > 0.2


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path.parent


def test_csv_channel_with_a_categorical_feature(harness: Harness, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(240):
        x, city = rng.uniform(0, 10), ["oslo", "lima", "pune"][i % 3]
        price = 3 * x + {"oslo": 40, "lima": 10, "pune": 25}[city] + rng.normal()
        rows.append(f"{x:.3f},{city},{price:.3f}")
    train = write_csv(tmp_path / "train" / "data.csv", "x,city,price", rows)
    result = harness.run(ALGORITHM, {"label_column": "price"}, channels={"train": train})
    assert_complete_run(result)
    assert result.evaluation["metrics"]["r2"] > 0.9


def test_a_text_target_fails_with_a_clear_error(harness: Harness, tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train" / "a.csv", "x,y", ["1,2", "2,high"])
    result = harness.run(ALGORITHM, {"label_column": "y"}, channels={"train": train})
    assert result.returncode == 2
    assert result.error_line() == (
        "ERROR: training label_column 'y' must be numeric for regression, found 'high'"
    )
