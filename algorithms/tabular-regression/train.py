"""Tabular regression preset: scikit-learn's HistGradientBoostingRegressor on CSV data,
trained under SageMaker's script-mode contract.

Run as `python train.py [--name value ...]`. Inputs, outputs and hyperparameters follow
sm_contract.py; HYPERPARAMETERS below mirrors manifest.yml (a test keeps them equal). The run
itself is tabular.py's; this file holds what is particular to numbers: numeric targets,
RMSE, MAE and R².
"""

from __future__ import annotations

import sys
from pathlib import Path

# The preset's shared modules (sm_contract, evaluation, …) sit beside this file in a packaged
# source dir (SageMaker, the local runner); in the repository they live in ../_shared.
_SHARED = Path(__file__).resolve().parent.parent / "_shared"
if _SHARED.is_dir() and str(_SHARED) not in sys.path:
    sys.path.insert(1, str(_SHARED))

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import tabular
from csv_table import Table
from evaluation import regression_report
from sm_contract import Param, UserError, run_main

ALGORITHM = {"id": "tabular-regression", "version": "1.0.0"}

HYPERPARAMETERS = (
    Param("max_iter", "int", 300, min=1, max=10000),
    Param("learning_rate", "float", 0.05, min=0.0001, max=1.0),
    Param("max_leaf_nodes", "int", 4, min=2, max=4096),
    Param("max_depth", "int", 0, min=0, max=1000),
    Param("min_samples_leaf", "int", 20, min=1, max=100000),
    Param("l2_regularization", "float", 1.0, min=0.0, max=1000000.0),
    Param("max_bins", "int", 255, min=2, max=255),
    Param("early_stopping", "bool", True),
    Param("n_iter_no_change", "int", 30, min=1, max=10000),
    Param("eval_every", "int", 10, min=1, max=1000),
    Param("validation_split", "float", 0.2, min=0.05, max=0.5),
    Param("label_column", "str", "target"),
    Param("ignore_columns", "str", ""),
    Param("seed", "int", 42, min=0, max=2**31 - 1),
)


class Regression:
    """Labels are finite numbers; early stopping watches validation RMSE."""

    name: Literal["regression"] = "regression"
    builtin_dataset = "load_diabetes"
    objective = "validation:r2"
    metrics = ("train:rmse", "validation:rmse", "validation:mae", "validation:r2")
    stopping_metric = "validation:rmse"
    predict = "predict(features) returns the target"

    def classes(self, train: Table, label: str) -> None:
        return None

    def targets(
        self, table: Table, label: str, classes: list[str] | None, where: str
    ) -> np.ndarray:
        values = table.column(label)
        try:
            targets = values.astype(np.float64)
        except ValueError:
            bad = next(v for v in values.tolist() if not _is_float(v))
            raise UserError(
                f"{where} label_column {label!r} must be numeric for regression, found {bad!r}"
            ) from None
        if not np.isfinite(targets).all():
            raise UserError(f"{where} label_column {label!r} holds infinite values")
        return targets

    def estimator(self, **params: Any) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(**params)

    def chunk_metrics(self, estimator: Any, data: tabular.Data) -> dict[str, float]:
        train = regression_report(data.y_train, estimator.predict(data.x_train))
        validation = regression_report(data.y_val, estimator.predict(data.x_val))
        return {
            "train:rmse": train["rmse"],
            "validation:rmse": validation["rmse"],
            "validation:mae": validation["mae"],
            "validation:r2": validation["r2"],
        }

    def evaluation(
        self, estimator: Any, data: tabular.Data
    ) -> tuple[dict[str, float], dict[str, Any]]:
        return regression_report(data.y_val, estimator.predict(data.x_val)), {}


def _is_float(value: Any) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def main(argv: Sequence[str]) -> None:
    tabular.run(Regression(), argv, algorithm=ALGORITHM, hyperparameters=HYPERPARAMETERS)


if __name__ == "__main__":
    run_main(main)
