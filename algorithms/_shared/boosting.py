"""Gradient boosting in chunks: a HistGradientBoosting estimator grows `eval_every` trees per
`fit` call (warm_start), and after each chunk the run is evaluated, logged, checkpointed and
checked for early stopping. That gives SageMaker progress lines and TensorBoard curves for a
model that scikit-learn would otherwise fit in one opaque call.

Early stopping watches a validation metric (lower is better) at chunk boundaries and keeps
the best model seen, so the result does not depend on sklearn's own early-stopping split.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkpoint_files import CheckpointFiles, refuse_foreign
from sm_contract import Paths, Stopped, StopSignal, format_metrics, log
from tb_writer import TensorBoardWriter

__all__ = ["Boosted", "fit_in_chunks", "save_model"]

# Below this many training rows OpenMP threads cost more than they save: every chunk predicts
# with every tree so far, thousands of tiny parallel loops whose thread start-up and barriers
# dominate (and get much worse when the CPUs are shared).
_SINGLE_THREAD_ROWS = 20_000


@dataclass
class Boosted:
    """The state of a chunked run; a checkpoint is this object pickled."""

    estimator: Any
    iteration: int
    best_estimator: Any
    best_iteration: int
    best_score: float
    fingerprint: dict[str, Any]

    def chosen(self, *, early_stopping: bool) -> tuple[Any, int]:
        """The model to ship: the best one seen when early stopping, else the last."""
        if early_stopping and self.best_estimator is not None:
            return self.best_estimator, self.best_iteration
        return self.estimator, self.iteration


def fit_in_chunks(
    make_estimator: Callable[[], Any],
    fit: Callable[[Any], None],
    evaluate: Callable[[Any], dict[str, float]],
    *,
    hps: Mapping[str, Any],
    stopping_metric: str,
    fingerprint: dict[str, Any],
    paths: Paths,
    stop: StopSignal,
    writer: TensorBoardWriter,
    train_rows: int,
) -> Boosted:
    """Grow up to hps["max_iter"] trees, resuming from the newest compatible checkpoint.

    `fit(estimator)` fits on the training data; `evaluate(estimator)` returns the metrics
    logged after each chunk, including `stopping_metric`.
    """
    from threadpoolctl import threadpool_limits

    threads = 1 if train_rows < _SINGLE_THREAD_ROWS else None
    with threadpool_limits(limits=threads, user_api="openmp"):
        max_iter, every = hps["max_iter"], hps["eval_every"]
        patience = hps["n_iter_no_change"] if hps["early_stopping"] else math.inf
        run = _resume(paths.checkpoint_dir, fingerprint)
        if run is None:
            run = Boosted(make_estimator(), 0, None, 0, math.inf, fingerprint)
        else:
            log(f"resumed from checkpoint iteration={run.iteration}")
        while run.iteration < max_iter:
            if run.iteration - run.best_iteration >= patience:
                log(
                    f"early stopping after iteration {run.iteration}: {stopping_metric} has not "
                    f"improved for {run.iteration - run.best_iteration} iterations; keeping the "
                    f"model of iteration {run.best_iteration}"
                )
                break
            if stop.requested:
                raise Stopped(
                    f"stopped by {stop.received} at iteration {run.iteration}/{max_iter}; "
                    f"checkpoint iteration={run.iteration} is in {paths.checkpoint_dir}"
                )
            run.iteration = min(max_iter, run.iteration + every)
            run.estimator.set_params(max_iter=run.iteration)
            fit(run.estimator)
            metrics = evaluate(run.estimator)
            log(f"iteration={run.iteration}/{max_iter} {format_metrics(metrics)}")
            writer.scalars(metrics, run.iteration)
            writer.flush()
            if metrics[stopping_metric] < run.best_score:
                run.best_score = metrics[stopping_metric]
                run.best_estimator = copy.deepcopy(run.estimator)
                run.best_iteration = run.iteration
            _save(paths.checkpoint_dir, run)
        return run


def save_model(model_dir: Path, estimator: Any) -> Path:
    """The fitted estimator as model.joblib (joblib ships with scikit-learn)."""
    import joblib

    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "model.joblib"
    joblib.dump(estimator, path)
    return path


def _files(directory: Path) -> CheckpointFiles:
    return CheckpointFiles(directory, "iteration", ".pkl")


def _save(directory: Path, run: Boosted) -> None:
    def dump(path: Path) -> None:
        with path.open("wb") as handle:
            pickle.dump(run, handle, protocol=pickle.HIGHEST_PROTOCOL)

    _files(directory).write(run.iteration, dump)


def _resume(directory: Path, fingerprint: Mapping[str, Any]) -> Boosted | None:
    def load(path: Path) -> Any:
        with path.open("rb") as handle:
            return pickle.load(handle)

    for path, run in _files(directory).readable(load):
        if not isinstance(run, Boosted):
            log(f"skipping checkpoint {path.name}: not written by this algorithm")
            continue
        refuse_foreign(path, run.fingerprint, fingerprint)
        return run
    return None
