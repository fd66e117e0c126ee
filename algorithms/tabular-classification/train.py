"""Tabular classification preset: scikit-learn's HistGradientBoostingClassifier on CSV data,
trained under SageMaker's script-mode contract.

Run as `python train.py [--name value ...]`. Inputs, outputs and hyperparameters follow
sm_contract.py; HYPERPARAMETERS below mirrors manifest.yml (a test keeps them equal). The run
itself is tabular.py's; this file holds what is particular to classes: the label encoding,
log loss, accuracy and F1, and the per-class evaluation.
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
from csv_table import Table, sorted_labels
from evaluation import classification_report
from sm_contract import Param, UserError, run_main

ALGORITHM = {"id": "tabular-classification", "version": "1.0.0"}

HYPERPARAMETERS = (
    Param("max_iter", "int", 200, min=1, max=10000),
    Param("learning_rate", "float", 0.1, min=0.0001, max=1.0),
    Param("max_leaf_nodes", "int", 31, min=2, max=4096),
    Param("max_depth", "int", 0, min=0, max=1000),
    Param("min_samples_leaf", "int", 20, min=1, max=100000),
    Param("l2_regularization", "float", 0.0, min=0.0, max=1000000.0),
    Param("max_bins", "int", 255, min=2, max=255),
    Param("early_stopping", "bool", True),
    Param("n_iter_no_change", "int", 30, min=1, max=10000),
    Param("eval_every", "int", 10, min=1, max=1000),
    Param("validation_split", "float", 0.2, min=0.05, max=0.5),
    Param("label_column", "str", "target"),
    Param("ignore_columns", "str", ""),
    Param("seed", "int", 42, min=0, max=2**31 - 1),
)


class Classification:
    """Labels are class names, coded by their sorted order; early stopping watches log loss."""

    name: Literal["classification"] = "classification"
    builtin_dataset = "load_breast_cancer"
    objective = "validation:accuracy"
    metrics = (
        "train:loss",
        "train:accuracy",
        "validation:loss",
        "validation:accuracy",
        "validation:f1",
    )
    stopping_metric = "validation:loss"
    predict = "predict_proba(features) has one column per entry of classes"

    def classes(self, train: Table, label: str) -> list[str]:
        classes = sorted_labels(train.column(label).astype(str).tolist())
        if len(classes) < 2:
            raise UserError(f"label_column {label!r} has {len(classes)} class; at least 2 needed")
        return classes

    def targets(
        self, table: Table, label: str, classes: list[str] | None, where: str
    ) -> np.ndarray:
        index = {name: i for i, name in enumerate(classes or [])}
        values = table.column(label).astype(str)
        unknown = sorted(set(values.tolist()) - set(index))
        if unknown:
            raise UserError(f"{where} data has classes not in training data: {unknown[:5]}")
        return np.array([index[value] for value in values], dtype=np.int64)

    def estimator(self, **params: Any) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**params)

    def chunk_metrics(self, estimator: Any, data: tabular.Data) -> dict[str, float]:
        train_p = estimator.predict_proba(data.x_train)
        val_p = estimator.predict_proba(data.x_val)
        report = classification_report(data.y_val, val_p.argmax(1), data.classes or [])["metrics"]
        return {
            "train:loss": _log_loss(data.y_train, train_p),
            "train:accuracy": float((train_p.argmax(1) == data.y_train).mean()),
            "validation:loss": _log_loss(data.y_val, val_p),
            "validation:accuracy": report["accuracy"],
            "validation:f1": report["f1_macro"],
        }

    def evaluation(
        self, estimator: Any, data: tabular.Data
    ) -> tuple[dict[str, float], dict[str, Any]]:
        probabilities = estimator.predict_proba(data.x_val)
        report = classification_report(data.y_val, probabilities.argmax(1), data.classes or [])
        metrics = {"loss": _log_loss(data.y_val, probabilities), **report.pop("metrics")}
        return metrics, report


def _log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    picked = probabilities[np.arange(len(y)), y]
    return float(-np.log(np.clip(picked, 1e-15, 1.0)).mean())


def main(argv: Sequence[str]) -> None:
    tabular.run(Classification(), argv, algorithm=ALGORITHM, hyperparameters=HYPERPARAMETERS)


if __name__ == "__main__":
    run_main(main)
