"""Hyperparameter sweeps: search spaces parsed against a manifest, and the sweep's spec (no I/O).

A sweep is a job whose versions are trials. ``/train sweep`` arguments read ``name=RANGE``:

- ``lo..hi`` — an int or float range, typed by the manifest (an int parameter takes whole
  bounds only); ``lo..hi:log`` samples it on a log scale (needs ``lo > 0``);
- ``a|b|c`` — choices, each checked like a plain value (``true|false`` for a bool);
- anything else is a fixed value, checked like ``/train start`` checks it.

In a sweep ``|`` always separates choices, so a fixed text value can't contain one. A value
with ``..`` stays fixed text for a text parameter unless both sides are numbers (``../x``).

The ranges hold what both backends need: Optuna's ``suggest_int``/``suggest_float(log=)``/
``suggest_categorical`` and SageMaker's Integer/Continuous/CategoricalParameterRanges
(``log`` → ScalingType Logarithmic, else Linear; at most 30 values, 30 ranges).
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ParameterRanges.html
"""

from __future__ import annotations

import difflib
import json
import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.domain.algorithm import (
    MAX_OPEN_HYPERPARAMETERS,
    Algorithm,
    HPValue,
    HyperParameter,
    HyperParameterType,
)
from bot.domain.errors import InvalidInput
from bot.domain.spec import DEFAULT_MAX_RUNTIME_S, MAX_RUNTIME_LIMIT_S, JobSpec

__all__ = [
    "MAX_CHOICES",
    "MAX_PARALLEL",
    "MAX_RANGES",
    "MAX_TRIALS",
    "Choices",
    "FloatRange",
    "Goal",
    "IntRange",
    "ParamRange",
    "SweepSpec",
    "SweepStrategy",
    "build_sweep_spec",
    "goal_for_metric",
    "parse_assignment",
]

# SageMaker's limits on a tuning job, kept for the local (Optuna) backend too so a sweep
# moves between backends unchanged: 30 values per categorical range and 30 ranges in all.
MAX_CHOICES = 30
MAX_RANGES = 30
MAX_TRIALS = 500
MAX_PARALLEL = 20
# Words in a metric's name that read as "lower is better" (``validation:rmse``,
# ``train_loss``, ``test-error``); any other explicit objective is maximized.
_MINIMIZE_WORDS = frozenset({"loss", "error", "err", "rmse", "mse", "mae", "mape", "smape",
                             "nll", "perplexity", "ppl", "wer", "cer", "logloss", "deviance"})
_WORD = re.compile(r"[a-z0-9]+")
_HP_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
_NUMBER = r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*"
_NUMERIC_RANGE = re.compile(rf"{_NUMBER}\.\.{_NUMBER}(?::\s*\w*\s*)?")
_RANGE = re.compile(r"(?P<lo>.*?)\.\.(?P<hi>[^:]*)(?::(?P<scale>.*))?", re.DOTALL)


class IntRange(BaseModel):
    """Whole numbers ``low..high``, both included."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["int"] = "int"
    name: str = Field(pattern=_HP_NAME)
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> IntRange:
        _check_bounds(self.name, self.low, self.high, self.log)
        return self

    def contains(self, value: object) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.low <= value <= self.high)


class FloatRange(BaseModel):
    """Real numbers ``low..high``, both included."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["float"] = "float"
    name: str = Field(pattern=_HP_NAME)
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> FloatRange:
        _check_bounds(self.name, self.low, self.high, self.log)
        return self

    def contains(self, value: object) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and self.low <= value <= self.high)


class Choices(BaseModel):
    """Distinct values of one type, tried as categories (unordered)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["choice"] = "choice"
    name: str = Field(pattern=_HP_NAME)
    values: list[str | int | float | bool] = Field(min_length=2, max_length=MAX_CHOICES)

    @model_validator(mode="after")
    def _distinct(self) -> Choices:
        if len({type(v) for v in self.values}) != 1:
            raise ValueError(f"{self.name}: choices must all be of one type")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"{self.name}: choices must be distinct")
        return self

    def contains(self, value: object) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)


ParamRange = Annotated[IntRange | FloatRange | Choices, Field(discriminator="kind")]


def _check_bounds(name: str, low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"{name}: low {low} must be below high {high}")
    if log and low <= 0:
        raise ValueError(f"{name}: a log range needs low > 0, got {low}")


# --- parsing one `name=RANGE` ---------------------------------------------------------------


def parse_assignment(algorithm: Algorithm, name: str, raw: str) -> ParamRange | HPValue:
    """``name=raw`` of a sweep: a range or choices typed by ``algorithm``, or a fixed value.

    Raises :class:`InvalidInput` naming the parameter and what to write instead: an unknown
    name (with a guess), a range outside the manifest's interval, whole bounds missing on an
    int, a range on a parameter that isn't a number, a choice the manifest doesn't allow.
    """
    hp = algorithm.hyperparameter(name)
    text = raw.strip()
    if "|" in text and not (hp.type is HyperParameterType.CHOICE and text in (hp.choices or [])):
        return _choices(algorithm, hp, text)
    if ".." in text and _looks_like_range(hp, text):
        return _range(algorithm, hp, text)
    return hp.coerce(raw)


def _looks_like_range(hp: HyperParameter, text: str) -> bool:
    if hp.type in (HyperParameterType.INT, HyperParameterType.FLOAT, HyperParameterType.BOOL):
        return True
    if hp.type is HyperParameterType.CHOICE:
        return text not in (hp.choices or [])
    # Text: `../data` or `v1..v2` is a value; only numbers on both sides ask for a range.
    return _NUMERIC_RANGE.fullmatch(text) is not None


def _choices(algorithm: Algorithm, hp: HyperParameter, text: str) -> Choices:
    parts = [p.strip() for p in text.split("|")]
    if any(not p for p in parts):
        raise _invalid(algorithm, f"`{hp.name}`: {_show(text)} has an empty choice; write the "
                                  f"choices without empty ones, e.g. "
                                  f"`{_example(algorithm, hp, choices=True)}`")
    if len(parts) > MAX_CHOICES:
        raise _invalid(algorithm, f"`{hp.name}` has {len(parts)} choices; a sweep tries at most "
                                  f"{MAX_CHOICES}: drop some, or sweep a range lo..hi")
    values: list[HPValue] = []
    for part in parts:
        value = hp.coerce(part)  # names the parameter and what it accepts
        if value in values:  # one parameter's values all have its one type
            raise _invalid(algorithm, f"`{hp.name}` lists {_show(part)} twice in {_show(text)}: "
                                      "give each choice once")
        values.append(value)
    return Choices(name=hp.name, values=values)


def _range(algorithm: Algorithm, hp: HyperParameter, text: str) -> IntRange | FloatRange:
    n = hp.name
    if algorithm.open_hyperparameters:
        raise _invalid(algorithm, f"`{n}`: {algorithm.id} has no typed schema: give choices "
                                  f"a|b|c instead of a range, e.g. `{n}=1|2|4`")
    if hp.type not in (HyperParameterType.INT, HyperParameterType.FLOAT):
        raise _invalid(algorithm, f"`{n}` is {hp.describe_range()}, not a number: give choices "
                                  f"instead of a range, e.g. `{_example(algorithm, hp)}`")
    match = _RANGE.fullmatch(text)
    assert match is not None  # `..` is in the text, and every group may be empty
    scale = match["scale"]
    if scale is not None and scale.strip().lower() != "log":
        raise _invalid(algorithm, f"`{n}`: unknown scale `:{scale.strip()[:20]}` in "
                                  f"{_show(text)}: write `{n}=lo..hi` or `{n}=lo..hi:log`")
    log = scale is not None
    lo, hi = _bound(algorithm, hp, match["lo"], text), _bound(algorithm, hp, match["hi"], text)
    if not lo < hi:
        raise _invalid(algorithm, f"`{n}`: a range's low bound must be below its high bound, "
                                  f"got {_show(text)}: write `{n}=lo..hi`, or `{n}=value` to "
                                  "fix it")
    if (hp.min is not None and lo < hp.min) or (hp.max is not None and hi > hp.max):
        raise _invalid(algorithm, f"`{n}` is {hp.describe_range()}; {_show(text)} goes outside "
                                  f"it: write bounds within it, e.g. "
                                  f"`{_example(algorithm, hp, lo, hi, log)}`")
    if log and lo <= 0:
        raise _invalid(algorithm, f"`{n}`: a log range needs a low bound above 0, got "
                                  f"{_show(text)}: raise the low bound or drop `:log`")
    if hp.type is HyperParameterType.INT:
        return IntRange(name=n, low=int(lo), high=int(hi), log=log)
    return FloatRange(name=n, low=lo, high=hi, log=log)


def _bound(algorithm: Algorithm, hp: HyperParameter, raw: str, text: str) -> float:
    s = raw.strip()
    try:
        value: float = int(s, 10) if hp.type is HyperParameterType.INT else float(s)
    except ValueError:
        value = math.nan
    if isinstance(value, float) and not math.isfinite(value):
        kind = "whole-number" if hp.type is HyperParameterType.INT else "number"
        raise _invalid(algorithm, f"`{hp.name}` is {hp.describe_range()}: a range needs {kind} "
                                  f"bounds, got {_show(text)}: write e.g. "
                                  f"`{_example(algorithm, hp)}`")
    return value


def _example(algorithm: Algorithm, hp: HyperParameter, lo: float | None = None,
             hi: float | None = None, log: bool = False, *, choices: bool = False) -> str:
    """A valid way to sweep ``hp``: the given bounds pulled into its interval, or the interval."""
    t = hp.type
    if algorithm.open_hyperparameters or t is HyperParameterType.STR or (
            choices and t in (HyperParameterType.INT, HyperParameterType.FLOAT)):
        return f"{hp.name}=a|b|c"
    if t is HyperParameterType.BOOL:
        return f"{hp.name}=true|false"
    if t is HyperParameterType.CHOICE:
        return f"{hp.name}=" + "|".join((hp.choices or [])[:3])
    low = hp.min if hp.min is not None else (1.0 if hp.max is None else hp.max - 10)
    high = hp.max if hp.max is not None else low + 10
    if lo is not None and hi is not None:
        a, b = max(lo, low), min(hi, high)
        if a < b:
            low, high = a, b
    if log and low <= 0:
        log = False
    show = (lambda x: str(int(x))) if t is HyperParameterType.INT else _num
    return f"{hp.name}={show(low)}..{show(high)}" + (":log" if log else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _show(raw: Any) -> str:
    s = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return repr(s[:40] + "…") if len(s) > 40 else repr(s)


def _invalid(algorithm: Algorithm, message: str) -> InvalidInput:
    return InvalidInput(message, hint=f"See `/train algorithms {algorithm.id}`.")


# --- the sweep's specification --------------------------------------------------------------


class SweepStrategy(StrEnum):
    BAYESIAN = "bayesian"
    RANDOM = "random"
    HYPERBAND = "hyperband"


Goal = Literal["maximize", "minimize"]


class SweepSpec(BaseModel):
    """What a sweep searches, how, and what every trial shares. Immutable once started.

    ``fixed`` holds every other parameter a trial runs with (the defaults, or the base
    version's or preset's values, overridden by the fixed ``k=v`` given), so each trial's
    spec is complete like any version's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: str
    algorithm_version: str
    algorithm_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    ranges: list[ParamRange] = Field(min_length=1, max_length=MAX_RANGES)
    fixed: dict[str, HPValue] = Field(default_factory=dict)
    trials: int = Field(ge=1, le=MAX_TRIALS)
    parallel: int = Field(default=1, ge=1, le=MAX_PARALLEL)
    objective_metric: str = Field(min_length=1)
    objective_goal: Goal
    strategy: SweepStrategy = SweepStrategy.BAYESIAN
    pool: str = Field(min_length=1)
    max_runtime_s: int = Field(default=DEFAULT_MAX_RUNTIME_S, ge=1, le=MAX_RUNTIME_LIMIT_S)
    # Shared by every trial, as on a JobSpec (from --preset / --from, or the defaults).
    data: dict[str, str] = Field(default_factory=dict)
    data_origin: dict[str, str] = Field(default_factory=dict)
    spot: bool = False
    preset: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        names = [r.name for r in self.ranges]
        if len(set(names)) != len(names):
            raise ValueError("a parameter is swept twice")
        if both := sorted(set(names) & set(self.fixed)):
            raise ValueError(f"swept and fixed at once: {both}")
        if self.parallel > self.trials:
            raise ValueError(f"parallel {self.parallel} exceeds trials {self.trials}")
        return self

    def range(self, name: str) -> IntRange | FloatRange | Choices | None:
        return next((r for r in self.ranges if r.name == name), None)

    def trial_spec(self, params: dict[str, HPValue]) -> JobSpec:
        """The spec one trial runs: ``params`` (a value within each range) over ``fixed``."""
        names = {r.name for r in self.ranges}
        if set(params) != names:
            raise ValueError(f"a trial sets exactly {sorted(names)}, got {sorted(params)}")
        for key, value in params.items():
            swept = self.range(key)
            if swept is None or not swept.contains(value):
                raise ValueError(f"trial value {key}={value!r} lies outside its range")
        return JobSpec(
            algorithm=self.algorithm, algorithm_version=self.algorithm_version,
            algorithm_digest=self.algorithm_digest,
            hyperparameters={**self.fixed, **params}, data=self.data, pool=self.pool,
            max_runtime_s=self.max_runtime_s, spot=self.spot, preset=self.preset,
            data_origin=self.data_origin)


def goal_for_metric(algorithm: Algorithm, metric: str) -> Goal:
    """The manifest's goal for its objective; for another metric, a rule on the words of its
    name: a loss or error word (``loss``, ``error``, ``rmse``, ``mse``, ``mae``, ``mape``,
    ``nll``, ``perplexity``, ``wer`` …) → minimize, anything else → maximize. Whole words
    only: ``max_accuracy`` or ``maecenas`` is not an error."""
    if metric == algorithm.objective.metric:
        return algorithm.objective.goal
    words = set(_WORD.findall(metric.lower()))
    return "minimize" if words & _MINIMIZE_WORDS else "maximize"


def build_sweep_spec(
    algorithm: Algorithm,
    assignments: dict[str, str],
    *,
    trials: int,
    parallel: int,
    pool: str,
    objective: str | None = None,
    strategy: SweepStrategy | str = SweepStrategy.BAYESIAN,
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S,
    base: JobSpec | None = None,
) -> SweepSpec:
    """Check a ``/train sweep`` request against ``algorithm`` and build its spec.

    ``assignments`` are the raw ``name=value`` pairs; ``base`` the preset's or version's spec
    the sweep starts from (its parameters, data and spot setting; the caller resolves
    ``pool`` from it when none is given). Every parameter problem is reported at once.

    Hyperband stops poor trials early on the objective's intermediate values, so it needs
    the objective printed as training goes: the algorithm must report its progress
    (``progress_regex``, an epoch or iteration count) beside the objective's regex.
    """
    ranges: list[IntRange | FloatRange | Choices] = []
    given: dict[str, HPValue] = {}
    errors: list[str] = []
    for name, raw in assignments.items():
        try:
            parsed = parse_assignment(algorithm, name, raw)
        except InvalidInput as exc:
            errors.append(exc.message)
            continue
        if isinstance(parsed, IntRange | FloatRange | Choices):
            ranges.append(parsed)
        else:
            given[name] = parsed
    if errors:
        raise InvalidInput(f"Invalid sweep of {algorithm.id}: " + "; ".join(errors),
                           hint=f"See the schema with `/train algorithms {algorithm.id}`.")
    if not ranges:
        raise InvalidInput("nothing to search: give at least one name=lo..hi or a|b|c",
                           hint=_sweep_hint(algorithm))
    if len(ranges) > MAX_RANGES:
        raise InvalidInput(f"a sweep searches at most {MAX_RANGES} parameters, got {len(ranges)}",
                           hint="Fix the others with `name=value`.")
    fixed = dict(base.hyperparameters) if base else algorithm.defaults()
    fixed.update(given)
    swept = {r.name for r in ranges}
    fixed = {k: v for k, v in fixed.items() if k not in swept}
    if algorithm.open_hyperparameters and len(fixed) + len(ranges) > MAX_OPEN_HYPERPARAMETERS:
        raise InvalidInput(f"{algorithm.id} takes at most {MAX_OPEN_HYPERPARAMETERS} parameters; "
                           f"this sweep would set {len(fixed) + len(ranges)}.")
    _check_limits(trials, parallel, max_runtime_s)
    metric = _objective(algorithm, objective)
    how = _strategy(strategy)
    if how is SweepStrategy.HYPERBAND and algorithm.progress_regex is None:
        raise InvalidInput(
            f"hyperband stops weak trials early on `{metric}` as it goes, and {algorithm.id} "
            "reports no progress (its manifest has no progress_regex)",
            hint="Use `--strategy bayesian` or `--strategy random`.")
    return SweepSpec(
        algorithm=algorithm.id, algorithm_version=algorithm.version,
        algorithm_digest=algorithm.source.digest if algorithm.source else None,
        ranges=ranges, fixed=fixed, trials=trials, parallel=parallel,
        objective_metric=metric, objective_goal=goal_for_metric(algorithm, metric),
        strategy=how, pool=pool, max_runtime_s=max_runtime_s,
        data=dict(base.data) if base else {}, data_origin=dict(base.data_origin) if base else {},
        spot=base.spot if base else False, preset=base.preset if base else None)


def _check_limits(trials: int, parallel: int, max_runtime_s: int) -> None:
    if not 1 <= trials <= MAX_TRIALS:
        raise InvalidInput(f"`--trials` must be 1-{MAX_TRIALS}, got {trials}")
    if not 1 <= parallel <= min(trials, MAX_PARALLEL):
        raise InvalidInput(f"`--parallel` must be 1-{MAX_PARALLEL} and at most `--trials` "
                           f"({trials}), got {parallel}")
    if not 1 <= max_runtime_s <= MAX_RUNTIME_LIMIT_S:
        raise InvalidInput(f"the runtime limit per trial must be 1-{MAX_RUNTIME_LIMIT_S} s, "
                           f"got {max_runtime_s}")


def _objective(algorithm: Algorithm, objective: str | None) -> str:
    if objective is None:
        return algorithm.objective.metric
    names = [m.name for m in algorithm.metrics]
    if objective in names:
        return objective
    close = difflib.get_close_matches(objective, names, n=1)
    guess = f" (did you mean `{close[0]}`?)" if close else ""
    raise InvalidInput(
        f"`{objective[:60]}` is not a metric of {algorithm.id}{guess}; "
        f"its metrics are: {', '.join(names)}",
        hint=f"Leave out `--objective` to use {algorithm.objective.metric}.")


def _strategy(strategy: SweepStrategy | str) -> SweepStrategy:
    try:
        return SweepStrategy(strategy)
    except ValueError:
        raise InvalidInput(f"`{str(strategy)[:40]}` is not a sweep strategy: use "
                           + ", ".join(s.value for s in SweepStrategy)) from None


def _sweep_hint(algorithm: Algorithm) -> str:
    numeric = next((hp for hp in algorithm.hyperparameters
                    if hp.type in (HyperParameterType.INT, HyperParameterType.FLOAT)), None)
    if numeric is not None:
        return f"For example `{_example(algorithm, numeric)}`."
    return "For example `name=a|b|c`."


