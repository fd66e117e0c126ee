"""Evaluation figures and the evaluation.json a preset writes for `/train eval`.

Plain numpy, so every algorithm computes the same figures the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sm_contract import write_json

__all__ = ["classification_report", "holdout_split", "regression_report", "write_evaluation"]


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro figures, per-class precision/recall/F1/support and the confusion
    matrix (rows: true class, columns: predicted). Labels are indices into `classes`."""
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(k), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(k), where=total > 0)
    present = support > 0
    return {
        "metrics": {
            "accuracy": float(hits.sum() / max(matrix.sum(), 1)),
            "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
            "precision_macro": float(precision[present].mean()) if present.any() else 0.0,
            "recall_macro": float(recall[present].mean()) if present.any() else 0.0,
        },
        "classes": list(classes),
        "per_class": [
            {
                "class": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def regression_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² (0.0 when the targets are constant)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    error = np.asarray(y_pred, dtype=np.float64) - y_true
    spread = float(((y_true - y_true.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((error**2).mean())),
        "mae": float(np.abs(error).mean()),
        "r2": 1.0 - float((error**2).sum()) / spread if spread > 0 else 0.0,
    }


def write_evaluation(
    output_data_dir: Path,
    *,
    task: str,
    objective: tuple[str, float],
    metrics: Mapping[str, float],
    samples: int,
    details: Mapping[str, Any] | None = None,
) -> Path:
    """Write evaluation.json: objective, metrics on the validation split, and for
    classifiers the classes, per-class figures and confusion matrix (`details`)."""
    document: dict[str, Any] = {
        "objective": {"metric": objective[0], "value": float(objective[1])},
        "metrics": {name: float(value) for name, value in metrics.items()},
        "task": task,
        "split": "validation",
        "samples": int(samples),
    }
    document.update(details or {})
    path = output_data_dir / "evaluation.json"
    write_json(path, document)
    return path


def holdout_split(
    y: np.ndarray, fraction: float, seed: int, *, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation row indices. Stratified splits keep each class's share; a
    class with a single row stays in training."""
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(y == label) for label in np.unique(y)] if stratify else [np.arange(len(y))]
    )
    train: list[np.ndarray] = []
    validation: list[np.ndarray] = []
    for rows in groups:
        rows = rng.permutation(rows)
        take = 0 if len(rows) < 2 else min(len(rows) - 1, max(1, round(len(rows) * fraction)))
        validation.append(rows[:take])
        train.append(rows[take:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))
