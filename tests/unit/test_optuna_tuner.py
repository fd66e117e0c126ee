"""The embedded default's tuner: Optuna rebuilt from the stored trials, every call."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.optuna_tuner import OptunaTuner
from bot.catalog import load_algorithms
from bot.domain.sweep import Sweep, Trial
from bot.domain.sweep_space import IntRange, build_sweep_spec

REPO = Path(__file__).resolve().parents[2]
TABULAR = load_algorithms(REPO / "algorithms")["tabular-classification"]
T0 = datetime(2026, 11, 30, tzinfo=UTC)


def _sweep(strategy: str = "bayesian", trials: int = 8, name: str = "sw",
           **assignments: str) -> Sweep:
    spec = build_sweep_spec(TABULAR, assignments or {"learning_rate": "0.01..0.5:log",
                                                     "max_leaf_nodes": "8..64",
                                                     "l2_regularization": "0|0.5|1.0"},
                            trials=trials, parallel=2, pool="local-cpu", strategy=strategy)
    return Sweep(name=name, spec=spec, requested_by="U1", created_at=T0)


def _done(number: int, params: dict, objective: float,
          intermediate: list[tuple[int, float]] | None = None) -> Trial:
    return Trial(number=number, version=number + 1, params=params, state="completed",
                 objective=objective, intermediate=intermediate or [])


def test_suggestions_lie_in_the_ranges_with_the_manifests_types() -> None:
    sweep, tuner = _sweep(), OptunaTuner()
    trials: list[Trial] = []
    for n in range(8):
        params = tuner.suggest(sweep, trials)
        assert set(params) == {"learning_rate", "max_leaf_nodes", "l2_regularization"}
        assert type(params["max_leaf_nodes"]) is int and 8 <= params["max_leaf_nodes"] <= 64
        assert type(params["learning_rate"]) is float
        assert 0.01 <= params["learning_rate"] <= 0.5
        assert params["l2_regularization"] in (0.0, 0.5, 1.0)
        sweep.spec.trial_spec(params)  # a trial's spec accepts it
        trials.append(_done(n, params, objective=0.9 - 0.01 * n))


def test_the_same_history_asks_the_same_point() -> None:
    """What makes a resumed (or retried) step safe: nothing random outside the history."""
    sweep, tuner = _sweep(), OptunaTuner()
    history = [_done(0, {"learning_rate": 0.1, "max_leaf_nodes": 31,
                         "l2_regularization": 0.0}, 0.95)]
    first = tuner.suggest(sweep, history)
    assert OptunaTuner().suggest(sweep, history) == first
    assert tuner.suggest(_sweep(name="other"), history) != first  # seeded by the sweep too


def test_tpe_learns_from_completed_trials() -> None:
    """After its random start, TPE proposes near the best region: max_leaf_nodes 8..64 with
    a made-up objective peaking at 60 — the model's later proposals lean high."""
    sweep = _sweep(trials=30, max_leaf_nodes="8..64")
    tuner = OptunaTuner()
    trials: list[Trial] = []
    for n in range(30):
        params = tuner.suggest(sweep, trials)
        trials.append(_done(n, params, objective=-abs(params["max_leaf_nodes"] - 60)))
    late = [t.params["max_leaf_nodes"] for t in trials[20:]]
    assert sum(late) / len(late) > 45  # random search would average ~36


def test_random_strategy_is_random_search() -> None:
    sweep = _sweep("random", max_leaf_nodes="8..64")
    seen = {OptunaTuner().suggest(sweep, [_done(n, {"max_leaf_nodes": 8 + n}, 0.5)
                                          for n in range(k)])["max_leaf_nodes"]
            for k in range(6)}
    assert len(seen) > 3


def test_trials_must_be_numbered_without_gaps() -> None:
    sweep = _sweep(max_leaf_nodes="8..64")
    with pytest.raises(ValueError, match="numbered"):
        OptunaTuner().suggest(sweep, [_done(1, {"max_leaf_nodes": 9}, 0.5)])


def test_median_rule_prunes_a_trial_far_below_the_others_at_the_same_step() -> None:
    sweep = _sweep(max_leaf_nodes="8..64")
    good = [(0, 0.80), (1, 0.85), (2, 0.90), (3, 0.92)]  # steps count values from 0
    trials = [_done(n, {"max_leaf_nodes": 10 + n}, 0.92, good) for n in range(4)]
    weak = Trial(number=4, version=5, params={"max_leaf_nodes": 50}, state="running",
                 intermediate=[(0, 0.30), (1, 0.35)])
    strong = weak.model_copy(update={"intermediate": [(0, 0.81), (1, 0.88)]})
    tuner = OptunaTuner()
    assert tuner.should_prune(sweep, [*trials, weak], weak)
    assert not tuner.should_prune(sweep, [*trials, strong], strong)
    first_step = weak.model_copy(update={"intermediate": [(0, 0.30)]})
    assert not tuner.should_prune(sweep, [*trials, first_step], first_step)  # warm-up step


def test_no_pruning_before_three_trials_finished() -> None:
    sweep = _sweep(max_leaf_nodes="8..64")
    good = [(0, 0.8), (1, 0.9), (2, 0.9)]
    trials = [_done(n, {"max_leaf_nodes": 10 + n}, 0.9, good) for n in range(2)]
    weak = Trial(number=2, version=3, params={"max_leaf_nodes": 50}, state="running",
                 intermediate=[(0, 0.1), (1, 0.1), (2, 0.1)])
    assert not OptunaTuner().should_prune(sweep, [*trials, weak], weak)


def test_hyperband_judges_each_rung_at_its_own_step() -> None:
    """A trial on the same curve as the finished ones, or better, goes on; one far below
    is stopped at a rung. (Judging the finished trials only at their last step would compare
    a running trial's early values with their final ones, and stop good trials.)"""
    sweep = _sweep("hyperband", trials=40, max_leaf_nodes="8..64")
    curve = [(s, 0.5 + 0.04 * s) for s in range(10)]
    trials = [_done(n, {"max_leaf_nodes": 10 + n}, 0.86, curve) for n in range(12)]
    tuner = OptunaTuner()
    for number in range(12, 20):
        same = Trial(number=number, version=number + 1, params={"max_leaf_nodes": 50},
                     state="running", intermediate=curve[:5])
        better = same.model_copy(update={"intermediate": [(s, v + 0.1) for s, v in curve[:5]]})
        assert not tuner.should_prune(sweep, [*trials, same], same), number
        assert not tuner.should_prune(sweep, [*trials, better], better), number
        trials.append(same.model_copy(update={"state": "completed", "objective": 0.86,
                                              "intermediate": curve}))


def test_hyperband_prunes_on_its_rungs() -> None:
    sweep = _sweep("hyperband", trials=30, max_leaf_nodes="8..64")
    curve = [(s, 0.5 + 0.04 * s) for s in range(10)]
    trials = [_done(n, {"max_leaf_nodes": 10 + n}, 0.9, curve) for n in range(12)]
    tuner = OptunaTuner()
    pruned = 0
    for number in range(12, 20):
        weak = Trial(number=number, version=number + 1, params={"max_leaf_nodes": 50},
                     state="running", intermediate=[(s, 0.1) for s in range(9)])
        pruned += tuner.should_prune(sweep, [*trials, weak], weak)
        trials.append(weak.model_copy(update={"state": "failed"}))
    assert pruned >= 4  # weak trials are stopped in most brackets


def test_a_finished_trial_is_never_pruned() -> None:
    sweep = _sweep(max_leaf_nodes="8..64")
    trial = _done(0, {"max_leaf_nodes": 10}, 0.1, [(1, 0.1), (2, 0.1)])
    assert not OptunaTuner().should_prune(sweep, [trial], trial)


def test_the_tuner_launches_nothing_itself() -> None:
    tuner = OptunaTuner()
    assert tuner.name == "optuna" and tuner.launches_trials is False
    sweep = _sweep()
    assert isinstance(sweep.spec.range("max_leaf_nodes"), IntRange)
    tuner.stop(sweep)  # nothing to stop; never raises
