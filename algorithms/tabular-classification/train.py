"""Tabular classification preset: scikit-learn's HistGradientBoostingClassifier on CSV data,
trained under SageMaker's script-mode contract.

Run as `python train.py [--name value ...]`. Inputs, outputs and hyperparameters follow
sm_contract.py; HYPERPARAMETERS below mirrors manifest.yml (a test keeps them equal).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The preset's shared modules (sm_contract, evaluation, …) sit beside this file in a packaged
# source dir (SageMaker, the local runner); in the repository they live in ../_shared.
_SHARED = Path(__file__).resolve().parent.parent / "_shared"
if _SHARED.is_dir() and str(_SHARED) not in sys.path:
    sys.path.insert(1, str(_SHARED))

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from csv_table import Encoding, Table, fit_encoding, is_missing, load_channels, sorted_labels
from evaluation import classification_report, holdout_split, write_evaluation
from sm_contract import (
    Cluster,
    Param,
    Paths,
    StopSignal,
    UserError,
    format_metrics,
    log,
    read_hyperparameters,
    run_main,
    write_json,
)

ALGORITHM = {"id": "tabular-classification", "version": "1.0.0"}
BUILTIN_DATASET = "load_breast_cancer"
OBJECTIVE = "validation:accuracy"
METRICS = (
    "train:loss",
    "train:accuracy",
    "validation:loss",
    "validation:accuracy",
    "validation:f1",
)

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


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[str]
    encoding: Encoding
    source: str


def main(argv: Sequence[str]) -> None:
    hps = read_hyperparameters(HYPERPARAMETERS, argv)
    stop = StopSignal().install()
    cluster = Cluster.from_env()
    if not cluster.is_leader:
        log(f"host {cluster.current_host} is not the first host: idle (boosting is one host)")
        return
    data = load_data(hps)
    paths = Paths.from_env()
    # scikit-learn is imported only now, so bad hyperparameters or data fail at once.
    from boosting import fit_in_chunks, save_model
    from sklearn.ensemble import HistGradientBoostingClassifier
    from tb_writer import open_writer

    log(
        f"train={len(data.y_train)} validation={len(data.y_val)} "
        f"features={len(data.encoding.features)} "
        f"categorical={len(data.encoding.categories)} classes={len(data.classes)} "
        f"source={data.source}"
    )
    writer = open_writer(paths.tensorboard_dir)
    try:
        writer.hparams_start(dict(hps), [name.replace(":", "/") for name in METRICS])
        run = fit_in_chunks(
            lambda: HistGradientBoostingClassifier(
                learning_rate=hps["learning_rate"],
                max_leaf_nodes=hps["max_leaf_nodes"],
                max_depth=hps["max_depth"] or None,
                min_samples_leaf=hps["min_samples_leaf"],
                l2_regularization=hps["l2_regularization"],
                max_bins=hps["max_bins"],
                categorical_features=data.encoding.categorical_mask,
                early_stopping=False,
                warm_start=True,
                random_state=hps["seed"],
            ),
            lambda estimator: estimator.fit(data.x_train, data.y_train),
            lambda estimator: _metrics(estimator, data),
            hps=hps,
            stopping_metric="validation:loss",
            fingerprint=_fingerprint(hps, data),
            paths=paths,
            stop=stop,
            writer=writer,
            train_rows=len(data.y_train),
        )
        estimator, iterations = run.chosen(early_stopping=hps["early_stopping"])
        metrics = _metrics(estimator, data)
        log(f"final model_iterations={iterations} {format_metrics(metrics)}")
        save_model(paths.model_dir, estimator)
        _export(estimator, iterations, data, hps, paths)
        writer.hparams_end(success=True)
    finally:
        writer.close()


def load_data(hps: Mapping[str, Any]) -> Data:
    train, validation = load_channels(BUILTIN_DATASET, class_names=True)
    label = hps["label_column"]
    ignore = [name.strip() for name in hps["ignore_columns"].split(",") if name.strip()]
    encoding = fit_encoding(train, label, ignore)
    train = _labelled(train, label, "training")
    classes = sorted_labels(train.column(label).astype(str).tolist())
    if len(classes) < 2:
        raise UserError(f"label_column {label!r} has {len(classes)} class; at least 2 needed")
    x, y = encoding.transform(train, "training"), _indices(train, label, classes, "training")
    if validation is None:
        train_rows, val_rows = holdout_split(y, hps["validation_split"], hps["seed"], stratify=True)
        x_train, y_train, x_val, y_val = x[train_rows], y[train_rows], x[val_rows], y[val_rows]
    else:
        if label not in validation.names:
            raise UserError(f"validation data has no label_column {label!r}")
        validation = _labelled(validation, label, "validation")
        x_train, y_train = x, y
        x_val = encoding.transform(validation, "validation")
        y_val = _indices(validation, label, classes, "validation")
    if len(y_val) == 0:
        raise UserError("the validation split is empty; add rows or raise validation_split")
    return Data(x_train, y_train, x_val, y_val, classes, encoding, train.source)


def _labelled(table: Table, label: str, where: str) -> Table:
    """Drop rows without a label, saying how many."""
    keep = ~is_missing(table.column(label).astype(str))
    if not keep.all():
        log(f"{where} data: dropped {int((~keep).sum())} rows with no {label!r} value")
    if not keep.any():
        raise UserError(f"{where} data has no rows with a {label!r} value")
    return table.take(np.flatnonzero(keep))


def _indices(table: Table, label: str, classes: list[str], where: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    values = table.column(label).astype(str)
    unknown = sorted(set(values.tolist()) - set(index))
    if unknown:
        raise UserError(f"{where} data has classes not in training data: {unknown[:5]}")
    return np.array([index[value] for value in values], dtype=np.int64)


def _metrics(estimator: Any, data: Data) -> dict[str, float]:
    train_p = estimator.predict_proba(data.x_train)
    val_p = estimator.predict_proba(data.x_val)
    report = classification_report(data.y_val, val_p.argmax(1), data.classes)["metrics"]
    return {
        "train:loss": _log_loss(data.y_train, train_p),
        "train:accuracy": float((train_p.argmax(1) == data.y_train).mean()),
        "validation:loss": _log_loss(data.y_val, val_p),
        "validation:accuracy": report["accuracy"],
        "validation:f1": report["f1_macro"],
    }


def _log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    picked = probabilities[np.arange(len(y)), y]
    return float(-np.log(np.clip(picked, 1e-15, 1.0)).mean())


def _fingerprint(hps: Mapping[str, Any], data: Data) -> dict[str, Any]:
    """What must be equal for a checkpoint to be resumable: everything but the run length
    and the early-stopping settings."""
    resumable = {"max_iter", "early_stopping", "n_iter_no_change", "eval_every"}
    return {
        "hyperparameters": {k: v for k, v in hps.items() if k not in resumable},
        "encoding": data.encoding.to_json(),
        "classes": data.classes,
        "rows": [len(data.y_train), len(data.y_val)],
    }


def _export(
    estimator: Any, iterations: int, data: Data, hps: Mapping[str, Any], paths: Paths
) -> None:
    import sklearn

    probabilities = estimator.predict_proba(data.x_val)
    report = classification_report(data.y_val, probabilities.argmax(1), data.classes)
    metrics = {"loss": _log_loss(data.y_val, probabilities), **report.pop("metrics")}
    objective = (OBJECTIVE, metrics["accuracy"])
    write_json(
        paths.model_dir / "model.json",
        {
            "algorithm": ALGORITHM,
            "framework": {"name": "scikit-learn", "version": sklearn.__version__},
            "estimator": type(estimator).__name__,
            "model": "model.joblib",
            "iterations": iterations,
            "classes": data.classes,
            "encoding": data.encoding.to_json(),
            "predict": "predict_proba(features) has one column per entry of classes",
            "objective": {"metric": objective[0], "value": objective[1]},
            "hyperparameters": dict(hps),
        },
    )
    path = write_evaluation(
        paths.output_data_dir,
        task="classification",
        objective=objective,
        metrics=metrics,
        samples=len(data.y_val),
        details={**report, "iterations": iterations},
    )
    log(f"model written to {paths.model_dir}; evaluation written to {path}")


if __name__ == "__main__":
    run_main(main)
