"""sm_contract: hyperparameters as SageMaker delivers them, paths, channels, the cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.algorithms.conftest import import_modules

(contract,) = import_modules("tabular-classification", "sm_contract")
Param = contract.Param
UserError = contract.UserError

SCHEMA = (
    Param("epochs", "int", 15, min=1, max=500),
    Param("lr", "float", 0.003, min=1e-6, max=10.0),
    Param("amp", "bool", True),
    Param("optimizer", "choice", "adam", choices=("adam", "sgd")),
    Param("label_column", "str", "target"),
)


def read(hps: dict | None = None, argv: tuple[str, ...] = (), **env: str) -> dict:
    if hps is not None:
        env["SM_HPS"] = json.dumps(hps)
    return contract.read_hyperparameters(SCHEMA, list(argv), env)


def test_defaults_apply_when_nothing_is_given(tmp_path: Path) -> None:
    assert read(SM_INPUT_CONFIG_DIR=str(tmp_path)) == {
        "epochs": 15,
        "lr": 0.003,
        "amp": True,
        "optimizer": "adam",
        "label_column": "target",
    }


def sdk_encoded(tmp_path: Path, hps: dict) -> str:
    """hyperparameters.json as SageMaker writes it when the SDK or the bot launched the job:
    every value a JSON-encoded string. Returns the config dir to point SM_INPUT_CONFIG_DIR at."""
    (tmp_path / "hyperparameters.json").write_text(
        json.dumps({k: json.dumps(v) for k, v in hps.items()})
    )
    return str(tmp_path)


def test_hyperparameters_json_values_are_decoded_once(tmp_path: Path) -> None:
    config = sdk_encoded(
        tmp_path,
        {"epochs": 20, "lr": "0.01", "amp": False, "optimizer": "sgd", "label_column": "3"},
    )
    assert read(SM_INPUT_CONFIG_DIR=config) == {
        "epochs": 20,
        "lr": 0.01,
        "amp": False,
        "optimizer": "sgd",
        "label_column": "3",
    }


def test_hyperparameters_json_values_written_by_hand_need_no_encoding(tmp_path: Path) -> None:
    (tmp_path / "hyperparameters.json").write_text(
        json.dumps({"epochs": "7", "optimizer": "sgd", "lr": 0.5})
    )
    hps = read(SM_INPUT_CONFIG_DIR=str(tmp_path))
    assert hps["epochs"] == 7 and hps["optimizer"] == "sgd" and hps["lr"] == 0.5


@pytest.mark.parametrize("raw", ["True", "true", "1", "yes", "on", "y", "T", True])
def test_bool_accepts_the_usual_spellings(raw: object) -> None:
    assert read({"amp": raw})["amp"] is True


def test_an_integral_json_number_is_an_int_but_integral_float_text_is_not() -> None:
    assert read({"epochs": 3.0})["epochs"] == 3
    with pytest.raises(UserError, match=r"epochs: expected an integer, got '3\.0'"):
        read({"epochs": "3.0"})


def test_a_str_parameter_keeps_its_text_as_it_is() -> None:
    assert read({"label_column": "true"})["label_column"] == "true"
    assert read({"label_column": '"y"'})["label_column"] == '"y"'
    assert read({"label_column": " y "})["label_column"] == " y "


def test_choices_match_exactly() -> None:
    with pytest.raises(UserError, match="expected one of adam, sgd, got 'SGD'"):
        read({"optimizer": "SGD"})


def test_hyperparameters_json_is_read_when_sm_hps_is_absent(tmp_path: Path) -> None:
    (tmp_path / "hyperparameters.json").write_text(json.dumps({"epochs": "7"}))
    assert read(SM_INPUT_CONFIG_DIR=str(tmp_path))["epochs"] == 7


def test_command_line_overrides_the_environment() -> None:
    hps = read({"epochs": "7"}, ("--epochs", "9", "--lr=0.5", "--local-rank", "0"))
    assert hps["epochs"] == 9 and hps["lr"] == 0.5


def test_names_sagemaker_adds_itself_are_ignored() -> None:
    hps = read({"sagemaker_program": "train.py", "_tuning_objective_metric": "x"})
    assert hps["epochs"] == 15


@pytest.mark.parametrize(
    ("hps", "message"),
    [
        ({"epochs": "ten"}, "epochs: expected an integer, got 'ten'"),
        ({"epochs": "2.5"}, "expected an integer"),
        ({"epochs": 0}, "epochs=0 is out of range [1, 500]"),
        ({"lr": "nan"}, "expected a finite number"),
        ({"amp": "maybe"}, "expected true or false"),
        ({"optimizer": "rmsprop"}, "expected one of adam, sgd"),
        ({"epoch": 3}, "unknown hyperparameter epoch"),
    ],
)
def test_bad_hyperparameters_are_named(hps: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read(hps)


def test_an_unknown_command_line_option_is_an_error() -> None:
    with pytest.raises(UserError, match="unknown command-line option --epoch"):
        read({}, ("--epoch", "3"))


def test_a_command_line_value_may_start_with_a_dash() -> None:
    hps = read({}, ("--label_column", "-x", "--label-column", "--y"))
    assert hps["label_column"] == "--y"
    assert read({}, ("--label_column", "-x"))["label_column"] == "-x"


def test_a_command_line_option_without_its_value_is_an_error() -> None:
    with pytest.raises(UserError, match="option --epochs needs a value"):
        read({}, ("--epochs",))


@given(st.integers(min_value=1, max_value=500), st.booleans())
def test_any_int_in_range_survives_sagemaker_encoding(value: int, as_text: bool) -> None:
    assert read({"epochs": str(value) if as_text else value})["epochs"] == value


@given(st.floats(min_value=1e-6, max_value=10.0, allow_nan=False))
def test_any_float_in_range_survives_sagemaker_encoding(value: float) -> None:
    assert read({"lr": value})["lr"] == value
    assert read({}, ("--lr", str(value)))["lr"] == value


def test_paths_come_from_the_environment() -> None:
    paths = contract.Paths.from_env({"SM_MODEL_DIR": "/r/model", "SM_CHECKPOINT_DIR": "/r/ck"})
    assert paths.model_dir == Path("/r/model") and paths.checkpoint_dir == Path("/r/ck")
    assert paths.tensorboard_dir == Path("/opt/ml/output/tensorboard")


def test_an_absent_or_empty_channel_means_builtin_data(tmp_path: Path) -> None:
    assert contract.channel_dir("train", {}) is None
    (tmp_path / ".hidden").write_text("x")
    assert contract.channel_dir("train", {"SM_CHANNEL_TRAIN": str(tmp_path)}) is None
    (tmp_path / "part.csv").write_text("a\n1\n")
    assert contract.channel_dir("train", {"SM_CHANNEL_TRAIN": str(tmp_path)}) == tmp_path


def test_a_channel_that_is_not_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a directory"):
        contract.channel_dir("train", {"SM_CHANNEL_TRAIN": str(tmp_path / "nope")})


@pytest.mark.parametrize(
    ("env", "leader"),
    [
        ({}, True),
        ({"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-1"}, True),
        ({"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-2"}, False),
        ({"SM_RESOURCE_CONFIG": '{"current_host": "b", "hosts": ["a", "b"]}'}, False),
    ],
)
def test_only_the_first_host_leads(env: dict, leader: bool) -> None:
    assert contract.Cluster.from_env(env).is_leader is leader
