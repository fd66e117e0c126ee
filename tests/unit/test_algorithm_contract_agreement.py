"""The bot and the training container read hyperparameters the same way.

The bot validates a user's values with `HyperParameter.coerce` (bot/domain/algorithm.py); the
container parses what reaches it with `Param.parse` (algorithms/_shared/sm_contract.py). For
every hyperparameter of every preset's manifest, both must accept the same raw values with
equal typed results and refuse the same ones. And a value the bot accepted must come out of
the container unchanged whichever way SageMaker or the local runner hands it over.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import InvalidInput
from bot.domain.algorithm import Algorithm, HyperParameter

ALGORITHMS_DIR = Path(__file__).resolve().parents[2] / "algorithms"


def _load_contract() -> ModuleType:
    # Loaded from its file under its own name: the algorithms import it as plain
    # `sm_contract`, which must not leak into (or come from) another test's sys.path.
    spec = importlib.util.spec_from_file_location(
        "trainbot_test_sm_contract", ALGORITHMS_DIR / "_shared" / "sm_contract.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


contract = _load_contract()


def _manifests() -> list[Algorithm]:
    return [
        Algorithm.model_validate(yaml.safe_load(path.read_text()))
        for path in sorted(ALGORITHMS_DIR.glob("*/manifest.yml"))
    ]


ALGORITHMS = _manifests()
HYPERPARAMETERS = [
    pytest.param(hp, id=f"{algorithm.id}:{hp.name}")
    for algorithm in ALGORITHMS
    for hp in algorithm.hyperparameters
]


def container_param(hp: HyperParameter) -> Any:
    """The container's Param for a manifest entry, as each train.py declares it
    (tests/algorithms/test_manifests.py keeps train.py's HYPERPARAMETERS equal to these)."""
    return contract.Param(
        hp.name, hp.type.value, hp.default, min=hp.min, max=hp.max, choices=tuple(hp.choices or ())
    )


def domain_outcome(hp: HyperParameter, raw: Any) -> tuple[str, Any]:
    try:
        value = hp.coerce(raw)
    except InvalidInput:
        return ("refused", None)
    return ("accepted", (type(value), value))


def container_outcome(hp: HyperParameter, raw: Any) -> tuple[str, Any]:
    try:
        value = container_param(hp).parse(raw)
    except contract.UserError:
        return ("refused", None)
    return ("accepted", (type(value), value))


def assert_agree(hp: HyperParameter, raw: Any) -> None:
    assert container_outcome(hp, raw) == domain_outcome(hp, raw), f"{hp.name} given {raw!r}"


# -- raw values worth trying -------------------------------------------------------------------

BOOL_SPELLINGS = ["true", "false", "1", "0", "yes", "no", "on", "off", "y", "n", "t", "f"]
ODD_TEXT = [
    "",
    " ",
    "\t",
    "null",
    "None",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "0x10",
    "1e-3",
    "1E-3",
    ".5",
    "5.",
    "+3",
    "-0",
    "1_000",
    "1__0",
    "٣",
    "3.0",
    "3e0",
    "３",
    '"3"',
    '"true"',
    "'3'",
    "[1]",
    "{}",
    "x" * 256,
    "x" * 257,
    "maybe",
]
ODD_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    0.0,
    -0.0,
    1.0,
    0.5,
    3.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    10**30,
    -(10**30),
    1e300,
    [1],
    {"a": 1},
]


def edge_values(hp: HyperParameter) -> Iterator[Any]:
    """Defaults, bounds, just outside them, their text forms, and the usual oddities."""
    yield hp.default
    yield str(hp.default)
    yield json.dumps(hp.default)
    for bound in (hp.min, hp.max):
        if bound is None:
            continue
        outside = (
            [bound - 1, bound + 1]
            if hp.type == "int"
            else [math.nextafter(bound, -math.inf), math.nextafter(bound, math.inf)]
        )
        for number in [bound, int(bound) if float(bound).is_integer() else bound, *outside]:
            yield number
            yield repr(number)
            yield f" {number} "
            if hp.type == "int":
                yield f"{int(number)}.0"
                yield f"{int(number)}e0"
                yield float(int(number))
    for choice in hp.choices or []:
        yield from (choice, choice.upper(), f" {choice} ", json.dumps(choice))
    for spelling in BOOL_SPELLINGS:
        yield from (spelling, spelling.upper(), f" {spelling} ")
    yield from ODD_TEXT
    yield from ODD_VALUES


def raw_values(hp: HyperParameter) -> st.SearchStrategy[Any]:
    near = st.floats(
        min_value=(hp.min or 0) - 2, max_value=(hp.max if hp.max is not None else 1e6) + 2
    )
    numeric_text = st.from_regex(
        r"\A\s?[+-]?(\d{1,7}(_\d{1,3})?)?(\.\d{0,4})?([eE][+-]?\d{1,3})?\s?\Z", fullmatch=True
    )
    return st.one_of(
        st.sampled_from(list(edge_values(hp))),
        st.text(max_size=20),
        numeric_text,
        near,
        near.map(repr),
        st.integers(min_value=-(10**12), max_value=10**12),
        st.integers(min_value=-(10**12), max_value=10**12).map(str),
        st.floats(),
        st.booleans(),
        st.sampled_from(BOOL_SPELLINGS + list(hp.choices or [])).map(str.title),
    )


# -- the bot and the container agree on raw values ---------------------------------------------


@pytest.mark.parametrize("hp", HYPERPARAMETERS)
def test_edge_values_are_judged_alike(hp: HyperParameter) -> None:
    for raw in edge_values(hp):
        assert_agree(hp, raw)


@pytest.mark.parametrize("hp", HYPERPARAMETERS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_is_judged_alike(hp: HyperParameter, data: st.DataObject) -> None:
    assert_agree(hp, data.draw(raw_values(hp), label="raw"))


@pytest.mark.parametrize("hp", HYPERPARAMETERS)
def test_defaults_are_the_same_typed_values(hp: HyperParameter) -> None:
    param = container_param(hp)
    assert (type(param.default), param.default) == (type(hp.default), hp.default)
    assert container_outcome(hp, hp.default) == ("accepted", (type(hp.default), hp.default))


def test_every_preset_is_covered() -> None:
    assert [a.id for a in ALGORITHMS] == sorted(
        p.parent.name for p in ALGORITHMS_DIR.glob("*/manifest.yml")
    )
    assert len(HYPERPARAMETERS) >= 3 * 10


# -- what the bot accepted reaches the training script unchanged -------------------------------


def delivered(hp: HyperParameter, value: Any) -> dict[str, Any]:
    """The container's reading of `value` in each form the bot's launches hand it over."""
    schema = [container_param(hp)]
    with tempfile.TemporaryDirectory() as tmp:
        empty = {"SM_INPUT_CONFIG_DIR": tmp}
        # The local runner passes text as it is and other values JSON-encoded; SageMaker's
        # training toolkit passes str() of the decoded value (True -> "True").
        as_runner_argv = value if isinstance(value, str) else json.dumps(value)
        forms = {
            "argv (local runner)": ([f"--{hp.name}", as_runner_argv], empty),
            "argv (training toolkit)": ([f"--{hp.name}", str(value)], empty),
            "argv (--name=value)": ([f"--{hp.name}={as_runner_argv}"], empty),
            "SM_HPS": ([], {**empty, "SM_HPS": json.dumps({hp.name: value})}),
        }
        read = {
            form: contract.read_hyperparameters(schema, argv, env)[hp.name]
            for form, (argv, env) in forms.items()
        }
        # CreateTrainingJob's HyperParameters, JSON-encoded by the bot as by the SDK, land in
        # hyperparameters.json.
        Path(tmp, "hyperparameters.json").write_text(json.dumps({hp.name: json.dumps(value)}))
        read["hyperparameters.json"] = contract.read_hyperparameters(schema, [], empty)[hp.name]
    return {form: (type(v), v) for form, v in read.items()}


def _accepted(hp: HyperParameter, raws: list[Any]) -> list[Any]:
    return [out[1][1] for raw in raws if (out := domain_outcome(hp, raw))[0] == "accepted"]


@pytest.mark.parametrize("hp", HYPERPARAMETERS)
def test_accepted_edge_values_arrive_unchanged(hp: HyperParameter) -> None:
    values = _accepted(hp, list(edge_values(hp)))
    assert values, "no edge value was accepted"
    for value in values:
        forms = delivered(hp, value)
        assert set(forms.values()) == {(type(value), value)}, forms


@pytest.mark.parametrize("hp", HYPERPARAMETERS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_any_accepted_value_arrives_unchanged(hp: HyperParameter, data: st.DataObject) -> None:
    raw = data.draw(raw_values(hp), label="raw")
    verdict = domain_outcome(hp, raw)
    if verdict[0] == "accepted":
        value = verdict[1][1]
        assert set(delivered(hp, value).values()) == {(type(value), value)}
