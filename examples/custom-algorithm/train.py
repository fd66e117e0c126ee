"""Churn classifier: a team's own training script for trainbot (SageMaker script mode).

Trains a scikit-learn pipeline (StandardScaler + logistic regression fitted by SGD, one
`partial_fit` pass per epoch) on CSV files with a header row: every column but the label is a
numeric feature; the label column holds any text ("yes"/"no", "churned", …).

SageMaker's training toolkit (and trainbot's local runner) call it as

    python train.py --epochs 30 --label churned ...

with the data and output folders in SM_* environment variables:

    SM_CHANNEL_TRAIN       CSV files to learn from (required)
    SM_CHANNEL_VALIDATION  CSV files to score on (optional; else a stratified holdout)
    SM_MODEL_DIR           model.joblib (the fitted Pipeline) and model.json
    SM_OUTPUT_DATA_DIR     evaluation.json (shown by `/train eval`)
    SM_OUTPUT_DIR          failure: the reason, when the run fails on bad input

Each epoch prints one line that the manifest's metric regexes read, e.g.

    epoch=3/30 train:loss=0.31 train:accuracy=0.88 validation:loss=0.33 validation:accuracy=0.86

Bad input (a missing label column, a non-numeric cell, a bad hyperparameter) ends the run with
`ERROR: <what to fix>` on stderr and exit status 2.

Written for the SageMaker scikit-learn container (framework_version 1.2-1: Python 3.8+,
scikit-learn 1.2); it needs nothing beyond scikit-learn, numpy and joblib.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import joblib
import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

OBJECTIVE = "validation:accuracy"


class BadInput(Exception):
    """Something the person starting the job can fix: data or hyperparameters."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print usage and exit 2; we want our one-line ERROR: instead.
        raise BadInput(f"bad hyperparameter: {message}")


def bounded(kind, low, high):
    """An argparse type: `kind(text)` within [low, high]."""

    def parse(text):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    # Mirrors manifest.yml's hyperparameters (names, defaults, ranges).
    parser = Parser(description="Train a churn classifier on CSV data.")
    parser.add_argument("--epochs", type=bounded(int, 1, 1000), default=30)
    parser.add_argument("--learning_rate", type=bounded(float, 1e-5, 1.0), default=0.01)
    parser.add_argument("--alpha", type=bounded(float, 1e-7, 1.0), default=0.0001)
    parser.add_argument("--penalty", choices=["l2", "l1", "elasticnet"], default="l2")
    parser.add_argument("--label", default="label")
    parser.add_argument("--validation_split", type=bounded(float, 0.05, 0.5), default=0.2)
    parser.add_argument("--seed", type=bounded(int, 0, 2**31 - 1), default=0)
    return parser.parse_args(argv)


# -- data -----------------------------------------------------------------------------------------

def channel(name: str) -> Path | None:
    """The folder SageMaker downloaded channel `name` to, if the job has that channel."""
    folder = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    return Path(folder) if folder else None


def read_csv_folder(folder: Path, label: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(feature names, features, labels) from every file under `folder`, each a CSV file
    with the same header row. Hidden files (".something") are skipped."""
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise BadInput(f"no CSV files in {folder}")
    header = [c.strip() for c in (read_csv(files[0])[:1] or [[]])[0]]
    if label not in header:
        raise BadInput(f"label column {label!r} is not in {files[0].name} "
                       f"(columns: {', '.join(header)}); set the label hyperparameter")
    at = header.index(label)
    names = [c for i, c in enumerate(header) if i != at]
    if not names:
        raise BadInput(f"{files[0].name} has no feature columns besides {label!r}")
    features: list[list[float]] = []
    labels: list[str] = []
    for path in files:
        rows = read_csv(path)
        if not rows or [c.strip() for c in rows[0]] != header:
            raise BadInput(f"{path.name} has other columns than {files[0].name}")
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise BadInput(f"{path.name} line {line}: {len(row)} cells, expected {len(header)}")
            if not row[at].strip():
                raise BadInput(f"{path.name} line {line}: the {label!r} cell is empty")
            labels.append(row[at].strip())
            features.append([number(row[i], header[i], path, line)
                             for i in range(len(row)) if i != at])
    if not labels:
        raise BadInput(f"no data rows in {folder}")
    return names, np.array(features), np.array(labels)


def read_csv(path: Path) -> list[list[str]]:
    """Every row of one CSV file, the header first; blank lines are empty rows."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"{path.name} is not a UTF-8 CSV file ({exc})") from None


def number(cell: str, column: str, path: Path, line: int) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BadInput(
            f"{path.name} line {line}: {column!r} is {cell!r}, not a number "
            "(this algorithm takes numeric features only)") from None
    if not np.isfinite(value):
        raise BadInput(f"{path.name} line {line}: {column!r} is {cell!r}")
    return value


def load_data(args: argparse.Namespace):
    train_dir, validation_dir = channel("train"), channel("validation")
    if train_dir is None or not train_dir.is_dir():
        raise BadInput("the train channel is missing; start the job with --data train=…")
    names, x, y = read_csv_folder(train_dir, args.label)
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise BadInput(f"column {args.label!r} has a single value; nothing to learn")
    if validation_dir is not None and validation_dir.is_dir() and any(validation_dir.iterdir()):
        val_names, x_val, y_val = read_csv_folder(validation_dir, args.label)
        if val_names != names:
            raise BadInput("the validation CSV has other columns than the train CSV")
        unseen = sorted(set(y_val.tolist()) - set(classes))
        if unseen:
            raise BadInput(f"validation labels never seen in training: {', '.join(unseen)}")
        return names, classes, x, y, x_val, y_val
    try:
        x, x_val, y, y_val = train_test_split(
            x, y, test_size=args.validation_split, stratify=y, random_state=args.seed)
    except ValueError as exc:  # too few rows of some class to split it
        raise BadInput(f"can't hold out a validation split: {exc}") from None
    return names, classes, x, y, x_val, y_val


# -- training -------------------------------------------------------------------------------------

def scores(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(log loss, accuracy) of `model` on rows `x` with true labels `y`."""
    loss = log_loss(y, model.predict_proba(x), labels=model.classes_)
    return float(loss), float(accuracy_score(y, model.predict(x)))


def train(args: argparse.Namespace, x, y, x_val, y_val, classes: list[str]) -> Pipeline:
    scaler = StandardScaler().fit(x)
    xs, xs_val = scaler.transform(x), scaler.transform(x_val)
    model = SGDClassifier(
        loss="log_loss", learning_rate="constant", eta0=args.learning_rate,
        penalty=args.penalty, alpha=args.alpha, random_state=args.seed)
    for epoch in range(1, args.epochs + 1):
        model.partial_fit(xs, y, classes=np.array(classes))
        train_loss, train_accuracy = scores(model, xs, y)
        val_loss, val_accuracy = scores(model, xs_val, y_val)
        print(f"epoch={epoch}/{args.epochs} train:loss={train_loss:.4f} "
              f"train:accuracy={train_accuracy:.4f} validation:loss={val_loss:.4f} "
              f"validation:accuracy={val_accuracy:.4f}", flush=True)
    return Pipeline([("scale", scaler), ("classify", model)])


# -- outputs --------------------------------------------------------------------------------------

def evaluation(pipeline: Pipeline, x_val, y_val, classes: list[str]) -> dict:
    """The evaluation.json trainbot shows with `/train eval`: the objective, metrics on the
    validation rows, per-class figures and the confusion matrix (rows = true class)."""
    predicted = pipeline.predict(x_val)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_val, predicted, labels=classes, zero_division=0)
    present = support > 0
    accuracy = float(accuracy_score(y_val, predicted))
    return {
        "objective": {"metric": OBJECTIVE, "value": accuracy},
        "metrics": {
            "accuracy": accuracy,
            "f1_macro": float(f1[present].mean()),
            "precision_macro": float(precision[present].mean()),
            "recall_macro": float(recall[present].mean()),
            "loss": float(log_loss(y_val, pipeline.predict_proba(x_val), labels=classes)),
        },
        "task": "classification",
        "split": "validation",
        "samples": len(y_val),
        "classes": classes,
        "per_class": [
            {"class": name, "precision": float(precision[i]), "recall": float(recall[i]),
             "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": confusion_matrix(y_val, predicted, labels=classes).tolist(),
    }


def save(pipeline: Pipeline, names: list[str], classes: list[str], args, report: dict) -> None:
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    data_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    model_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, model_dir / "model.joblib")
    # What a caller needs to feed the model: columns in this order, answers among classes.
    (model_dir / "model.json").write_text(json.dumps(
        {"format": "joblib", "features": names, "label": args.label, "classes": classes},
        indent=2))
    (data_dir / "evaluation.json").write_text(json.dumps(report, indent=2))


def fail(message: str) -> NoReturn:
    """Report bad input the way SageMaker shows it: stderr, and the job's FailureReason."""
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    output_dir = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(message)
    except OSError:
        pass  # the ERROR: line above already says it
    sys.exit(2)


def main(argv: list[str]) -> None:
    try:
        args = parse_args(argv)
        names, classes, x, y, x_val, y_val = load_data(args)
    except BadInput as exc:
        fail(str(exc))
    print(f"training on {len(y)} rows, validating on {len(y_val)}; "
          f"features: {', '.join(names)}; classes: {', '.join(classes)}", flush=True)
    pipeline = train(args, x, y, x_val, y_val, classes)
    report = evaluation(pipeline, x_val, y_val, classes)
    save(pipeline, names, classes, args, report)
    # Not in the metric format: the last epoch's line already reported it.
    print(f"done: validation accuracy {report['objective']['value']:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
