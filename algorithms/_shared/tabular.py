"""One run of a tabular preset: CSV channels (or a bundled scikit-learn dataset) become a
feature matrix and a holdout split; a HistGradientBoosting estimator grows in chunks
(boosting.py: progress lines, TensorBoard, checkpoints, early stopping); the model,
model.json and evaluation.json are written.

What differs between predicting a class and predicting a number — the labels, the estimator,
the metrics and the evaluation — is a `Task`, which each tabular train.py defines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from csv_table import Encoding, Table, fit_encoding, is_missing, load_channels
from evaluation import holdout_split, write_evaluation
from sm_contract import (
    Cluster,
    Param,
    Paths,
    StopSignal,
    UserError,
    format_metrics,
    log,
    read_hyperparameters,
    write_json,
)

__all__ = ["Data", "Task", "run"]

# Hyperparameters that may change between a checkpoint and the run resuming it: they decide
# how long the run goes on, not what the trees so far are.
_RESUMABLE = frozenset({"max_iter", "early_stopping", "n_iter_no_change", "eval_every"})


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[str] | None  # None for regression
    encoding: Encoding
    source: str


class Task(Protocol):
    """The task-specific part of a tabular preset (plain class attributes satisfy the
    read-only members)."""

    @property
    def name(self) -> Literal["classification", "regression"]:
        """evaluation.json's `task`; classification also stratifies the holdout split."""
        ...

    @property
    def builtin_dataset(self) -> str:
        """The sklearn.datasets loader used when there is no train channel."""
        ...

    @property
    def objective(self) -> str:
        """`validation:<key of evaluation()'s metrics>`."""
        ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """chunk_metrics' names, in the order they are printed."""
        ...

    @property
    def stopping_metric(self) -> str:
        """One of `metrics`, lower is better."""
        ...

    @property
    def predict(self) -> str:
        """model.json's note on how to feed the model."""
        ...

    def classes(self, train: Table, label: str) -> list[str] | None:
        """The class names found in the training labels; None for regression."""
        ...

    def targets(
        self, table: Table, label: str, classes: list[str] | None, where: str
    ) -> np.ndarray:
        """The label column as the estimator's y."""
        ...

    def estimator(self, **params: Any) -> Any:
        """A new scikit-learn HistGradientBoosting estimator with these parameters."""
        ...

    def chunk_metrics(self, estimator: Any, data: Data) -> dict[str, float]:
        """The `metrics`, printed and logged after every chunk of trees."""
        ...

    def evaluation(self, estimator: Any, data: Data) -> tuple[dict[str, float], dict[str, Any]]:
        """evaluation.json's validation `metrics` and its task-specific details."""
        ...


def run(
    task: Task,
    argv: Sequence[str],
    *,
    algorithm: Mapping[str, str],
    hyperparameters: Sequence[Param],
) -> None:
    """The whole run of a tabular preset, as `run_main` expects of `main(argv)`."""
    hps = read_hyperparameters(hyperparameters, argv)
    stop = StopSignal().install()
    cluster = Cluster.from_env()
    if not cluster.is_leader:
        log(f"host {cluster.current_host} is not the first host: idle (boosting is one host)")
        return
    data = load_data(task, hps)
    paths = Paths.from_env()
    # scikit-learn is imported only now, so bad hyperparameters or data fail at once.
    from boosting import fit_in_chunks, save_model
    from tb_writer import open_writer

    classes = "" if data.classes is None else f"classes={len(data.classes)} "
    log(
        f"train={len(data.y_train)} validation={len(data.y_val)} "
        f"features={len(data.encoding.features)} "
        f"categorical={len(data.encoding.categories)} {classes}source={data.source}"
    )
    writer = open_writer(paths.tensorboard_dir)
    try:
        writer.hparams_start(dict(hps), [name.replace(":", "/") for name in task.metrics])
        boosted = fit_in_chunks(
            lambda: task.estimator(
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
            lambda estimator: task.chunk_metrics(estimator, data),
            hps=hps,
            stopping_metric=task.stopping_metric,
            fingerprint=_fingerprint(hps, data),
            paths=paths,
            stop=stop,
            writer=writer,
            train_rows=len(data.y_train),
        )
        estimator, iterations = boosted.chosen(early_stopping=hps["early_stopping"])
        metrics = task.chunk_metrics(estimator, data)
        log(f"final model_iterations={iterations} {format_metrics(metrics)}")
        save_model(paths.model_dir, estimator)
        _export(task, algorithm, estimator, iterations, data, hps, paths)
        writer.hparams_end(success=True)
    finally:
        writer.close()


def load_data(task: Task, hps: Mapping[str, Any]) -> Data:
    classifier = task.name == "classification"
    train, validation = load_channels(task.builtin_dataset, class_names=classifier)
    label = hps["label_column"]
    ignore = [name.strip() for name in hps["ignore_columns"].split(",") if name.strip()]
    encoding = fit_encoding(train, label, ignore)
    train = _labelled(train, label, "training")
    classes = task.classes(train, label)
    x, y = encoding.transform(train, "training"), task.targets(train, label, classes, "training")
    if validation is None:
        train_rows, val_rows = holdout_split(
            y, hps["validation_split"], hps["seed"], stratify=classifier
        )
        x_train, y_train, x_val, y_val = x[train_rows], y[train_rows], x[val_rows], y[val_rows]
    else:
        if label not in validation.names:
            raise UserError(f"validation data has no label_column {label!r}")
        validation = _labelled(validation, label, "validation")
        x_train, y_train = x, y
        x_val = encoding.transform(validation, "validation")
        y_val = task.targets(validation, label, classes, "validation")
    if len(y_val) == 0:
        raise UserError("the validation split is empty; add rows or raise validation_split")
    return Data(x_train, y_train, x_val, y_val, classes, encoding, train.source)


def _labelled(table: Table, label: str, where: str) -> Table:
    """Drop rows without a label value, saying how many."""
    keep = ~is_missing(table.column(label))
    if not keep.all():
        log(f"{where} data: dropped {int((~keep).sum())} rows with no {label!r} value")
    if not keep.any():
        raise UserError(f"{where} data has no rows with a {label!r} value")
    return table.take(np.flatnonzero(keep))


def _fingerprint(hps: Mapping[str, Any], data: Data) -> dict[str, Any]:
    """What must be equal for a checkpoint to be resumable: everything but the run length
    and the early-stopping settings."""
    fingerprint: dict[str, Any] = {
        "hyperparameters": {k: v for k, v in hps.items() if k not in _RESUMABLE},
        "encoding": data.encoding.to_json(),
    }
    if data.classes is not None:
        fingerprint["classes"] = data.classes
    fingerprint["rows"] = [len(data.y_train), len(data.y_val)]
    return fingerprint


def _export(
    task: Task,
    algorithm: Mapping[str, str],
    estimator: Any,
    iterations: int,
    data: Data,
    hps: Mapping[str, Any],
    paths: Paths,
) -> None:
    import sklearn

    metrics, details = task.evaluation(estimator, data)
    # Every figure in evaluation.json is on the validation split, hence the bare names.
    objective = (task.objective, metrics[task.objective.removeprefix("validation:")])
    classes = {} if data.classes is None else {"classes": data.classes}
    write_json(
        paths.model_dir / "model.json",
        {
            "algorithm": dict(algorithm),
            "framework": {"name": "scikit-learn", "version": sklearn.__version__},
            "estimator": type(estimator).__name__,
            "model": "model.joblib",
            "iterations": iterations,
            **classes,
            "encoding": data.encoding.to_json(),
            "predict": task.predict,
            "objective": {"metric": objective[0], "value": objective[1]},
            "hyperparameters": dict(hps),
        },
    )
    path = write_evaluation(
        paths.output_data_dir,
        task=task.name,
        objective=objective,
        metrics=metrics,
        samples=len(data.y_val),
        details={**details, "iterations": iterations},
    )
    log(f"model written to {paths.model_dir}; evaluation written to {path}")
