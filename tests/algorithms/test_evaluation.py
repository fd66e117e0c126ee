"""evaluation: the figures agree with scikit-learn's; the holdout split is sound."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from tests.algorithms.conftest import import_modules

(evaluation,) = import_modules("tabular-classification", "evaluation")


def test_classification_report_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
    report = evaluation.classification_report(y_true, y_pred, ["a", "b", "c", "d"])
    assert report["confusion_matrix"] == metrics.confusion_matrix(y_true, y_pred).tolist()
    assert report["metrics"]["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert report["metrics"]["f1_macro"] == pytest.approx(
        metrics.f1_score(y_true, y_pred, average="macro")
    )
    precision = metrics.precision_score(y_true, y_pred, average=None)
    assert [row["precision"] for row in report["per_class"]] == pytest.approx(precision)
    assert [row["support"] for row in report["per_class"]] == np.bincount(y_true).tolist()


def test_a_class_never_predicted_has_zero_precision_not_nan() -> None:
    report = evaluation.classification_report(np.array([0, 1]), np.array([0, 0]), ["x", "y"])
    assert report["per_class"][1] == {
        "class": "y",
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }


def test_regression_report_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=100)
    y_pred = y_true + rng.normal(scale=0.5, size=100)
    report = evaluation.regression_report(y_true, y_pred)
    assert report["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(y_true, y_pred)))
    assert report["mae"] == pytest.approx(metrics.mean_absolute_error(y_true, y_pred))
    assert report["r2"] == pytest.approx(metrics.r2_score(y_true, y_pred))


@pytest.mark.parametrize("stratify", [True, False])
def test_holdout_split_is_a_seeded_partition(stratify: bool) -> None:
    y = np.repeat([0, 1, 2], [50, 30, 20])
    train, validation = evaluation.holdout_split(y, 0.2, 7, stratify=stratify)
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(100))
    again = evaluation.holdout_split(y, 0.2, 7, stratify=stratify)
    assert train.tolist() == again[0].tolist()
    assert validation.tolist() != evaluation.holdout_split(y, 0.2, 8, stratify=stratify)[1].tolist()


def test_stratified_holdout_keeps_class_shares() -> None:
    y = np.repeat([0, 1, 2], [50, 30, 1])
    _, validation = evaluation.holdout_split(y, 0.2, 0, stratify=True)
    assert np.bincount(y[validation], minlength=3).tolist() == [10, 6, 0]
