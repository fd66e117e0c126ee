"""Sweeps: `name=RANGE` parsed against the real manifests, the spec's rules, the record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.catalog import load_algorithms
from bot.domain import InvalidInput, JobSpec, JobVersion, MetricSummary, Status
from bot.domain.algorithm import Algorithm, HyperParameterType
from bot.domain.sweep import (
    Sweep,
    SweepStatus,
    Trial,
    TrialCounts,
    best,
    counts,
    ranked,
    trial_request_key,
    trials_of,
)
from bot.domain.sweep_space import (
    MAX_CHOICES,
    Choices,
    FloatRange,
    IntRange,
    SweepSpec,
    SweepStrategy,
    build_sweep_spec,
    goal_for_metric,
    parse_assignment,
)

REPO = Path(__file__).resolve().parents[2]
ALGORITHMS = load_algorithms(REPO / "algorithms")
TABULAR = ALGORITHMS["tabular-classification"]
REGRESSION = ALGORITHMS["tabular-regression"]
IMAGE = ALGORITHMS["image-classification"]
OPEN = Algorithm.model_validate({
    "id": "team-churn", "title": "Team churn", "version": "1.0.0", "framework": "sklearn",
    "framework_version": "1.2-1", "entry_point": "train.py", "hyperparameters": "any",
    "metrics": [{"name": "validation:auc", "regex": "auc=([0-9.]+)"}],
    "objective": {"metric": "validation:auc", "goal": "maximize"},
})
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _error(algorithm: Algorithm, name: str, raw: str) -> str:
    with pytest.raises(InvalidInput) as err:
        parse_assignment(algorithm, name, raw)
    return err.value.message


# --- every RANGE form, per manifest type ----------------------------------------------------


def test_int_range_has_int_bounds() -> None:
    parsed = parse_assignment(TABULAR, "max_leaf_nodes", "15..255")
    assert parsed == IntRange(name="max_leaf_nodes", low=15, high=255)
    assert isinstance(parsed, IntRange) and type(parsed.low) is int and not parsed.log


def test_int_log_range() -> None:
    assert parse_assignment(TABULAR, "max_leaf_nodes", "8..1024:log") == IntRange(
        name="max_leaf_nodes", low=8, high=1024, log=True)


def test_float_range_and_log_range() -> None:
    assert parse_assignment(TABULAR, "learning_rate", "0.01..0.3") == FloatRange(
        name="learning_rate", low=0.01, high=0.3)
    assert parse_assignment(TABULAR, "learning_rate", " 1e-4..1e-1:log ") == FloatRange(
        name="learning_rate", low=0.0001, high=0.1, log=True)


def test_float_range_from_whole_bounds_is_still_float() -> None:
    parsed = parse_assignment(TABULAR, "l2_regularization", "0..10")
    assert isinstance(parsed, FloatRange) and type(parsed.low) is float


def test_choice_parameter_takes_its_own_values() -> None:
    assert parse_assignment(IMAGE, "optimizer", "adam|sgd") == Choices(
        name="optimizer", values=["adam", "sgd"])


def test_bool_parameter_takes_true_false_choices() -> None:
    assert parse_assignment(TABULAR, "early_stopping", "true|false") == Choices(
        name="early_stopping", values=[True, False])


def test_text_parameter_takes_string_choices() -> None:
    assert parse_assignment(TABULAR, "label_column", "target|label") == Choices(
        name="label_column", values=["target", "label"])


def test_numeric_choices_are_typed_and_checked() -> None:
    parsed = parse_assignment(TABULAR, "max_leaf_nodes", "15|31|63")
    assert parsed == Choices(name="max_leaf_nodes", values=[15, 31, 63])
    assert "[2, 4096]" in _error(TABULAR, "max_leaf_nodes", "1|31")


# --- wrong forms and out of bounds ----------------------------------------------------------


@pytest.mark.parametrize(("name", "raw", "needles"), [
    ("max_leaf_nodes", "1..64", ["`max_leaf_nodes`", "[2, 4096]", "max_leaf_nodes=2..64"]),
    ("max_leaf_nodes", "31..5000", ["[2, 4096]", "max_leaf_nodes=31..4096"]),
    ("learning_rate", "0..0.5", ["`learning_rate`", "[0.0001, 1]", "learning_rate=0.0001..0.5"]),
    ("learning_rate", "0.01..2:log", ["[0.0001, 1]", "learning_rate=0.01..1:log"]),
])
def test_out_of_bounds_says_the_interval_and_a_fix(name: str, raw: str,
                                                   needles: list[str]) -> None:
    message = _error(TABULAR, name, raw)
    assert all(n in message for n in needles), message


def test_int_range_refuses_fractional_bounds() -> None:
    message = _error(TABULAR, "max_leaf_nodes", "1.5..3")
    assert "`max_leaf_nodes`" in message and "whole-number" in message


@pytest.mark.parametrize("raw", ["5..5", "64..8"])
def test_low_must_be_below_high(raw: str) -> None:
    message = _error(TABULAR, "max_leaf_nodes", raw)
    assert "below its high bound" in message and "max_leaf_nodes=value" in message


def test_log_range_needs_a_positive_low_bound() -> None:
    message = _error(TABULAR, "l2_regularization", "0..1:log")
    assert "`l2_regularization`" in message and "above 0" in message and "drop `:log`" in message


def test_unknown_scale_is_refused() -> None:
    assert "lo..hi:log" in _error(TABULAR, "learning_rate", "0.01..0.1:linear")


@pytest.mark.parametrize("raw", ["a..b", "..5", "nan..1", "0.1..inf"])
def test_range_bounds_must_be_numbers(raw: str) -> None:
    assert "number bounds" in _error(TABULAR, "learning_rate", raw)


@pytest.mark.parametrize(("algorithm", "name", "fix"), [
    (IMAGE, "optimizer", "optimizer=adam|sgd"),
    (TABULAR, "early_stopping", "early_stopping=true|false"),
    (TABULAR, "label_column", "label_column=a|b|c"),
])
def test_range_on_a_non_number_asks_for_choices(algorithm: Algorithm, name: str,
                                                fix: str) -> None:
    message = _error(algorithm, name, "1..4")
    assert f"`{name}`" in message and "not a number" in message and fix in message


def test_choice_outside_the_manifest_is_refused() -> None:
    message = _error(IMAGE, "optimizer", "adam|rmsprop")
    assert "`optimizer`" in message and "adam, sgd" in message


def test_bool_choices_must_be_booleans() -> None:
    assert "true or false" in _error(TABULAR, "early_stopping", "true|maybe")


@pytest.mark.parametrize(("raw", "needle"), [
    ("adam|adam", "twice"), ("yes|true", "twice"), ("adam||sgd", "empty choice"),
    ("adam|", "empty choice"),
])
def test_choices_are_distinct_and_non_empty(raw: str, needle: str) -> None:
    algorithm, name = (TABULAR, "early_stopping") if "yes" in raw else (IMAGE, "optimizer")
    assert needle in _error(algorithm, name, raw)


def test_at_most_thirty_choices() -> None:
    raw = "|".join(str(i) for i in range(2, 3 + MAX_CHOICES))
    assert f"at most {MAX_CHOICES}" in _error(TABULAR, "max_leaf_nodes", raw)
    many = parse_assignment(TABULAR, "max_leaf_nodes", "|".join(
        str(i) for i in range(2, 2 + MAX_CHOICES)))
    assert isinstance(many, Choices) and len(many.values) == MAX_CHOICES


def test_unknown_parameter_guesses_the_name() -> None:
    assert "did you mean `max_leaf_nodes`" in _error(TABULAR, "max_leaf_node", "2..8")


# --- fixed values pass through --------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "name", "raw", "value"), [
    (TABULAR, "max_iter", "500", 500), (TABULAR, "learning_rate", "0.05", 0.05),
    (TABULAR, "early_stopping", "no", False), (IMAGE, "optimizer", "sgd", "sgd"),
    (TABULAR, "label_column", "../v1..v2", "../v1..v2"),
])
def test_fixed_values_are_coerced_like_start(algorithm: Algorithm, name: str, raw: str,
                                             value: object) -> None:
    assert parse_assignment(algorithm, name, raw) == value


def test_fixed_value_out_of_bounds_is_refused() -> None:
    assert "[2, 4096]" in _error(TABULAR, "max_leaf_nodes", "1")


# --- open schemas ---------------------------------------------------------------------------


def test_open_schema_takes_string_choices() -> None:
    assert parse_assignment(OPEN, "depth", "4|8") == Choices(name="depth", values=["4", "8"])


@pytest.mark.parametrize("raw", ["1..10", "0.1..1:log"])
def test_open_schema_refuses_numeric_ranges(raw: str) -> None:
    message = _error(OPEN, "depth", raw)
    assert "`depth`" in message and "has no typed schema: give choices a|b|c" in message


def test_open_schema_fixed_text_passes_through() -> None:
    assert parse_assignment(OPEN, "config", "../conf.yml") == "../conf.yml"


def test_open_schema_keeps_refusing_reserved_names() -> None:
    assert "reserved" in _error(OPEN, "sagemaker_program", "a|b")


# --- the spec -------------------------------------------------------------------------------


def _spec(algorithm: Algorithm = TABULAR, assignments: dict[str, str] | None = None,
          **options: Any) -> SweepSpec:
    opts: dict[str, Any] = {"trials": 20, "parallel": 4, "pool": "local-cpu", **options}
    return build_sweep_spec(algorithm, assignments if assignments is not None else {
        "learning_rate": "0.01..0.3:log", "max_leaf_nodes": "15..255", "max_iter": "400"},
        **opts)


def test_spec_splits_ranges_from_fixed_values() -> None:
    spec = _spec()
    assert [r.name for r in spec.ranges] == ["learning_rate", "max_leaf_nodes"]
    assert spec.fixed["max_iter"] == 400
    # The rest are the defaults, so a trial's spec is complete like any version's.
    assert spec.fixed["seed"] == 42 and "learning_rate" not in spec.fixed
    assert spec.strategy is SweepStrategy.BAYESIAN and spec.algorithm_version == "1.0.0"


def test_spec_reports_every_bad_assignment_at_once() -> None:
    with pytest.raises(InvalidInput) as err:
        _spec(assignments={"max_leaf_nodes": "1..3", "optimizr": "a|b", "max_iter": "2..9"})
    assert "`max_leaf_nodes`" in err.value.message and "`optimizr`" in err.value.message


def test_spec_needs_a_range() -> None:
    with pytest.raises(InvalidInput) as err:
        _spec(assignments={"max_iter": "400"})
    assert err.value.message == "nothing to search: give at least one name=lo..hi or a|b|c"
    assert err.value.hint and "max_iter=1..10000" in err.value.hint


def test_objective_defaults_to_the_algorithms() -> None:
    spec = _spec()
    assert (spec.objective_metric, spec.objective_goal) == ("validation:accuracy", "maximize")


@pytest.mark.parametrize(("algorithm", "metric", "goal"), [
    (TABULAR, "validation:loss", "minimize"), (TABULAR, "validation:f1", "maximize"),
    (REGRESSION, "validation:rmse", "minimize"), (REGRESSION, "validation:mae", "minimize"),
    (REGRESSION, "validation:r2", "maximize"),
])
def test_explicit_objective_goal_follows_its_name(algorithm: Algorithm, metric: str,
                                                  goal: str) -> None:
    spec = _spec(algorithm, {"max_leaf_nodes": "2..64"}, objective=metric)
    assert (spec.objective_metric, spec.objective_goal) == (metric, goal)


def test_manifest_goal_wins_for_its_own_objective() -> None:
    minimizing = TABULAR.model_copy(update={"objective": TABULAR.objective.model_copy(
        update={"metric": "validation:f1", "goal": "minimize"})})
    assert goal_for_metric(minimizing, "validation:f1") == "minimize"


def test_objective_must_be_a_metric() -> None:
    with pytest.raises(InvalidInput) as err:
        _spec(objective="validation:acuracy")
    assert "did you mean `validation:accuracy`" in err.value.message


@pytest.mark.parametrize(("options", "needle"), [
    ({"trials": 0}, "--trials"), ({"trials": 501}, "--trials"),
    ({"trials": 4, "parallel": 5}, "--parallel"), ({"trials": 100, "parallel": 21}, "--parallel"),
    ({"max_runtime_s": 0}, "runtime"), ({"strategy": "grid"}, "bayesian, random, hyperband"),
])
def test_limits_are_checked(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _spec(**options)
    assert needle in err.value.message


def test_hyperband_needs_progress_reported() -> None:
    assert _spec(strategy="hyperband").strategy is SweepStrategy.HYPERBAND
    silent = TABULAR.model_copy(update={"progress_regex": None})
    with pytest.raises(InvalidInput) as err:
        _spec(silent, strategy=SweepStrategy.HYPERBAND)
    assert "hyperband" in err.value.message and "progress_regex" in err.value.message
    assert err.value.hint and "bayesian" in err.value.hint


@pytest.mark.parametrize(("metric", "goal"), [
    ("validation:mse", "minimize"), ("test:mape", "minimize"), ("val_nll", "minimize"),
    ("perplexity", "minimize"), ("asr:wer", "minimize"), ("train:logloss", "minimize"),
    ("validation:f1", "maximize"), ("maecenas", "maximize"), ("max_accuracy", "maximize"),
])
def test_goal_reads_whole_words_of_the_metric(metric: str, goal: str) -> None:
    assert goal_for_metric(TABULAR, metric) == goal


def test_base_spec_supplies_shared_settings() -> None:
    base = JobSpec(algorithm=TABULAR.id, algorithm_version="1.0.0", pool="local-cpu",
                   hyperparameters={"max_iter": 50, "learning_rate": 0.2, "seed": 7},
                   data={"train": "s3://bucket-a/train/"}, spot=True, preset="nightly")
    spec = _spec(base=base)
    assert spec.fixed == {"max_iter": 400, "seed": 7}
    assert (spec.data, spec.spot, spec.preset) == (base.data, True, "nightly")


def test_trial_spec_is_a_complete_job_spec() -> None:
    spec = _spec()
    trial = spec.trial_spec({"learning_rate": 0.05, "max_leaf_nodes": 31})
    assert trial.hyperparameters["learning_rate"] == 0.05
    assert trial.hyperparameters["max_iter"] == 400 and trial.pool == "local-cpu"
    with pytest.raises(ValueError, match="outside"):
        spec.trial_spec({"learning_rate": 0.5, "max_leaf_nodes": 31})
    with pytest.raises(ValueError, match="exactly"):
        spec.trial_spec({"learning_rate": 0.05})


def test_spec_model_enforces_its_invariants() -> None:
    good = _spec().model_dump()
    change: dict[str, Any]
    for change in ({"ranges": []}, {"parallel": 30}, {"fixed": {"learning_rate": 0.1}},
                   {"ranges": [good["ranges"][0], good["ranges"][0]]}):
        with pytest.raises(pydantic.ValidationError):
            SweepSpec.model_validate({**good, **change})


def test_spec_round_trips_through_json() -> None:
    spec = _spec(assignments={"early_stopping": "true|false", "max_leaf_nodes": "2|4",
                              "learning_rate": "0.01..0.1"})
    assert SweepSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize("bad", [
    {"kind": "int", "name": "x", "low": 3, "high": 3},
    {"kind": "int", "name": "x", "low": 0, "high": 3, "log": True},
    {"kind": "float", "name": "x", "low": 0.0, "high": float("inf")},
    {"kind": "choice", "name": "x", "values": ["a"]},
    {"kind": "choice", "name": "x", "values": ["a", "a"]},
    {"kind": "choice", "name": "x", "values": ["1", 1]},
    {"kind": "choice", "name": "x", "values": [str(i) for i in range(MAX_CHOICES + 1)]},
])
def test_range_models_refuse_bad_ranges(bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        pydantic.TypeAdapter(IntRange | FloatRange | Choices).validate_python(bad)


# --- the record -----------------------------------------------------------------------------


def _sweep(**spec_options: Any) -> Sweep:
    return Sweep(name="lr-sweep", spec=_spec(**spec_options), requested_by="U1", created_at=T0)


def _trial(number: int, state: str = "completed", objective: float | None = None) -> Trial:
    return Trial.model_validate({"number": number, "version": number + 1, "state": state,
                                 "params": {"learning_rate": 0.1}, "objective": objective})


TRIALS = [_trial(0, objective=0.90), _trial(1, objective=0.95), _trial(2, "running"),
          _trial(3, "pruned", 0.99), _trial(4, "failed"), _trial(5, objective=0.95),
          _trial(6, objective=0.80)]


def test_best_maximizes_over_completed_trials_only() -> None:
    top = best(_sweep().spec, TRIALS)
    assert top is not None and top.number == 1  # the pruned 0.99 doesn't count; ties: first


def test_best_minimizes_a_loss_objective() -> None:
    top = best(_sweep(objective="validation:loss").spec, TRIALS)
    assert top is not None and top.number == 6


def test_no_best_without_a_completed_trial() -> None:
    assert best(_sweep().spec, [_trial(0, "running")]) is None


def test_ranking_puts_the_best_first() -> None:
    assert [t.number for t in ranked(_sweep().spec, TRIALS)] == [1, 5, 0, 6]


def test_counts_by_state() -> None:
    assert counts(TRIALS) == TrialCounts(done=4, running=1, pruned=1, failed=1)
    assert counts(TRIALS).total == 7


def test_is_done_once_terminal_and_never_moves_back() -> None:
    sweep = _sweep()
    assert not sweep.is_done()
    stopping = sweep.transition(SweepStatus.STOPPING, at=T0)
    assert stopping.status is SweepStatus.STOPPING and not stopping.is_done()
    assert stopping.transition(SweepStatus.RUNNING, at=T0) is stopping
    stopped = stopping.transition(SweepStatus.STOPPED, at=T0)
    assert stopped.is_done() and stopped.transition(SweepStatus.COMPLETED, at=T0) is stopped
    assert stopped.outbox == ["ended"] and stopped.ended_at == T0


def test_trials_are_read_off_the_versions() -> None:
    spec = _spec()
    params = {"learning_rate": 0.1, "max_leaf_nodes": 16}
    base = JobVersion(job="lr-sweep", number=1, spec=spec.trial_spec(params),
                      requested_by="U1", status=Status.COMPLETED, created_at=T0,
                      updated_at=T0, trial=0, metrics={spec.objective_metric: 0.9},
                      series={spec.objective_metric: MetricSummary(
                          first=0.5, last=0.9, min=0.5, max=0.9, count=2,
                          points=[(1, 0.5), (2, 0.9)])})
    pruned = base.model_copy(update={"number": 2, "trial": 1, "status": Status.STOPPED,
                                     "pruned": True})
    failed = base.model_copy(update={"number": 3, "trial": 2, "metrics": {}})
    running = base.model_copy(update={"number": 4, "trial": 3, "status": Status.TRAINING})
    rerun = base.model_copy(update={"number": 5, "trial": None})  # a rerun of a trial
    trials = trials_of(spec, [rerun, running, failed, pruned, base])
    assert [(t.number, t.version, t.state) for t in trials] == [
        (0, 1, "completed"), (1, 2, "pruned"), (2, 3, "failed"), (3, 4, "running")]
    assert trials[0].objective == 0.9 and trials[0].intermediate == [(1, 0.5), (2, 0.9)]
    assert trials[0].params == params
    assert trials[1].objective is None  # pruned: not ranked
    assert trial_request_key("sw", 3) == "sweep:sw:trial:3"


def test_sweep_round_trips_through_json() -> None:
    sweep = _sweep().model_copy(update={"best_told": 1, "backend_name": "study-1"})
    assert Sweep.model_validate_json(sweep.model_dump_json()) == sweep


def test_sweep_record_checks_its_fields() -> None:
    with pytest.raises(pydantic.ValidationError):
        Sweep(name="bad name", spec=_spec(), requested_by="U1", created_at=T0)
    with pytest.raises(pydantic.ValidationError):
        _trial(0, objective=float("nan"))


# --- property: a parsed range never leaves the manifest's interval --------------------------

NUMERIC = [(algorithm, hp) for algorithm in ALGORITHMS.values() for hp in algorithm.hyperparameters
           if hp.type in (HyperParameterType.INT, HyperParameterType.FLOAT)]


@st.composite
def _text(draw: st.DrawFn, hp: Any) -> str:
    """``lo..hi`` in order (misordered bounds have their own tests), mostly near the
    manifest's interval (a tenth of it either side), ``:log`` half the time."""
    spill = (hp.max - hp.min) / 10
    near = st.floats(hp.min - spill, hp.max + spill, allow_nan=False)
    bound = st.one_of(near, near, near, st.floats(-1e6, 1e6), st.floats(1e-7, 1e-3))
    if hp.type is HyperParameterType.INT:
        bound = bound.map(round)
    lo, hi = sorted(draw(st.lists(bound, min_size=2, max_size=2, unique=True)))
    return f"{lo!r}..{hi!r}" + draw(st.sampled_from(["", ":log"]))


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(NUMERIC))
def test_parsed_ranges_lie_within_the_manifest(data: st.DataObject, case: Any) -> None:
    algorithm, hp = case
    try:
        parsed = parse_assignment(algorithm, hp.name, data.draw(_text(hp)))
    except InvalidInput as exc:
        assert f"`{hp.name}`" in exc.message
        return
    assert isinstance(parsed, IntRange | FloatRange)
    assert isinstance(parsed, IntRange) == (hp.type is HyperParameterType.INT)
    assert hp.min is None or parsed.low >= hp.min
    assert hp.max is None or parsed.high <= hp.max
    assert parsed.low < parsed.high and (not parsed.log or parsed.low > 0)
