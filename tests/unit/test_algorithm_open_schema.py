"""A team's algorithm may take any `name=value` (`hyperparameters: any` in its manifest)."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from bot.domain import InvalidInput
from bot.domain.algorithm import (
    MAX_OPEN_HYPERPARAMETERS,
    MAX_STR_VALUE,
    Algorithm,
    HyperParameterType,
    OpenHyperParameter,
)


def manifest(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "team-churn",
        "title": "Team churn",
        "version": "1.0.0",
        "framework": "sklearn",
        "framework_version": "1.2-1",
        "entry_point": "train.py",
        "hyperparameters": "any",
        "metrics": [{"name": "validation:accuracy", "regex": "validation:accuracy=([0-9.]+)"}],
        "objective": {"metric": "validation:accuracy", "goal": "maximize"},
    }
    base.update(changes)
    return base


OPEN = Algorithm.model_validate(manifest())
TYPED = Algorithm.model_validate(manifest(hyperparameters=[
    {"name": "epochs", "type": "int", "default": 10, "min": 1, "max": 100},
]))


# -- the manifest ---------------------------------------------------------------------------------

def test_any_makes_an_open_schema_with_no_typed_entries() -> None:
    assert OPEN.open_hyperparameters is True
    assert OPEN.hyperparameters == []


def test_a_typed_list_is_not_open() -> None:
    assert TYPED.open_hyperparameters is False
    assert [hp.name for hp in TYPED.hyperparameters] == ["epochs"]


def test_an_open_algorithm_survives_a_round_trip_through_json() -> None:
    again = Algorithm.model_validate_json(OPEN.model_dump_json())
    assert again == OPEN


@pytest.mark.parametrize("word", ["all", "ANY", "*", ""])
def test_any_other_word_is_refused(word: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="list of typed parameters or `any`"):
        Algorithm.model_validate(manifest(hyperparameters=word))


def test_open_with_a_typed_list_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="lists no hyperparameters"):
        Algorithm.model_validate(manifest(
            open_hyperparameters=True,
            hyperparameters=[{"name": "epochs", "type": "int", "default": 1}]))


def test_any_with_open_false_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="contradicts"):
        Algorithm.model_validate(manifest(open_hyperparameters=False))


def test_an_open_algorithm_stays_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        OPEN.open_hyperparameters = False  # type: ignore[misc]


def test_unknown_manifest_keys_are_still_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Algorithm.model_validate(manifest(hyperparameter_schema="any"))


def test_a_manifest_needs_at_least_one_metric() -> None:
    with pytest.raises(pydantic.ValidationError, match="at least 1"):
        Algorithm.model_validate(manifest(metrics=[]))


def test_a_manifest_needs_an_objective() -> None:
    spec = manifest()
    del spec["objective"]
    with pytest.raises(pydantic.ValidationError, match="objective"):
        Algorithm.model_validate(spec)


def test_the_objective_must_be_one_of_the_metrics() -> None:
    with pytest.raises(pydantic.ValidationError, match="not among"):
        Algorithm.model_validate(manifest(objective={"metric": "validation:f1"}))


def test_an_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="algorithm id"):
        Algorithm.model_validate(manifest(id="team-churn\n"))


def test_a_broken_progress_regex_is_a_validation_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid progress_regex"):
        Algorithm.model_validate(manifest(progress_regex="epoch=(?P<current>\\d+"))


# -- validating values ----------------------------------------------------------------------------

def test_any_name_is_accepted_and_passed_as_text() -> None:
    values = {"epochs": "12", "lr": 0.5, "layers": "64,32", "loss.kind": "focal", "use-amp": True}
    assert OPEN.validate_hyperparameters(values) == {
        "epochs": "12", "lr": "0.5", "layers": "64,32", "loss.kind": "focal", "use-amp": "True"}


def test_text_is_kept_as_it_is() -> None:
    value = '  "-1" ünïcode, quotes \' and = signs  '
    assert OPEN.validate_hyperparameters({"note": value}) == {"note": value}


def test_an_open_schema_has_no_defaults() -> None:
    assert OPEN.defaults() == {}
    assert OPEN.validate_hyperparameters({}) == {}


def test_hyperparameter_of_an_open_schema_is_open_text() -> None:
    hp = OPEN.hyperparameter("anything")
    assert isinstance(hp, OpenHyperParameter)
    assert hp.name == "anything"
    assert hp.type is HyperParameterType.STR
    assert hp.choices is None
    assert "control characters" in hp.describe_range()


def test_values_up_to_the_limit_pass() -> None:
    value = "x" * MAX_STR_VALUE
    assert OPEN.validate_hyperparameters({"blob": value}) == {"blob": value}


def test_a_value_over_the_limit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="`blob` must be text up to 256"):
        OPEN.validate_hyperparameters({"blob": "x" * (MAX_STR_VALUE + 1)})


@pytest.mark.parametrize("value", ["a\nb", "tab\there", "nul\x00", "bell\x07", "del\x7f",
                                   "c1\x85", "lone\ud800"])
def test_control_characters_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="without control characters"):
        OPEN.validate_hyperparameters({"note": value})


@pytest.mark.parametrize("name", ["1epochs", "has space", "semi;colon", "x" * 65, "", "-lr",
                                  "lr\n"])
def test_a_malformed_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="is not a parameter name"):
        OPEN.validate_hyperparameters({name: "1"})


@pytest.mark.parametrize("name", ["sagemaker_program", "SageMaker_region",
                                  "_tuning_objective_metric", "_x"])
def test_names_sagemaker_sets_itself_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="is reserved"):
        OPEN.validate_hyperparameters({name: "evil.py"})


def test_an_open_schema_never_guesses_a_name() -> None:
    with pytest.raises(InvalidInput) as caught:
        OPEN.validate_hyperparameters({"1epochs": "1"})
    assert "did you mean" not in caught.value.message


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        OPEN.validate_hyperparameters({"ok": "1", "sagemaker_x": "1", "note": "a\nb"})
    assert "sagemaker_x" in caught.value.message
    assert "`note`" in caught.value.message
    assert "`ok`" not in caught.value.message


def test_at_most_so_many_names() -> None:
    names = {f"p{i}": "1" for i in range(MAX_OPEN_HYPERPARAMETERS)}
    assert len(OPEN.validate_hyperparameters(names)) == MAX_OPEN_HYPERPARAMETERS
    with pytest.raises(InvalidInput, match=f"at most {MAX_OPEN_HYPERPARAMETERS}"):
        OPEN.validate_hyperparameters({**names, "one_more": "1"})


# -- a typed schema is unchanged ------------------------------------------------------------------

def test_a_typed_schema_still_guesses_the_name_meant() -> None:
    with pytest.raises(InvalidInput, match="did you mean `epochs`"):
        TYPED.validate_hyperparameters({"epoch": "3"})


def test_a_typed_schema_still_fills_defaults_and_types_values() -> None:
    assert TYPED.defaults() == {"epochs": 10}
    assert TYPED.validate_hyperparameters({"epochs": "3"}) == {"epochs": 3}


@pytest.mark.parametrize(("change", "problem"), [
    ({"channels": [{"name": "train"}, {"name": "train"}]}, "duplicate channel names"),
    ({"metrics": [{"name": "m", "regex": "m=(\\\\S+)"}, {"name": "m", "regex": "m=(\\\\S+)"}],
      "objective": {"metric": "m"}}, "duplicate metric names"),
    ({"hyperparameters": [{"name": "sagemaker_program", "type": "str", "default": "x"}]},
     "reserved"),
    ({"hyperparameters": [{"name": f"p{i}", "type": "int", "default": 1} for i in range(91)]},
     "at most 90"),
])
def test_typed_manifests_that_would_break_forms_or_sagemaker_are_refused(
        change: dict, problem: str) -> None:
    from pathlib import Path

    import yaml

    base = yaml.safe_load((Path(__file__).resolve().parents[2] / "algorithms"
                           / "tabular-classification" / "manifest.yml").read_text())
    with pytest.raises(ValueError, match=problem):
        Algorithm.model_validate({**base, **change})
