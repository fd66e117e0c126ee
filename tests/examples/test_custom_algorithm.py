"""examples/custom-algorithm: a team's own script-mode algorithm, as trainbot would run it.

The script runs as a subprocess under an /opt/ml-like temporary root with the SM_* variables
the training toolkit sets, its hyperparameters on the command line (`--name value`).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import joblib
import pytest
import yaml

from bot.adapters.training_log import compile_metrics, match_metrics, match_progress
from bot.domain.algorithm import Algorithm
from tests.algorithms.conftest import sm_env

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom-algorithm"
SCRIPT = EXAMPLE / "train.py"
SAMPLE = EXAMPLE / "data" / "sample.csv"
ALGORITHM = Algorithm.model_validate(yaml.safe_load((EXAMPLE / "manifest.yml").read_text()))


class Run:
    def __init__(self, root: Path, done: subprocess.CompletedProcess[str]) -> None:
        self.root = root
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def evaluation(self) -> dict:
        return json.loads((self.root / "output" / "data" / "evaluation.json").read_text())

    def series(self) -> dict[str, list[float]]:
        """Each metric's values, read with the manifest's regexes as the bot reads a log."""
        metrics = compile_metrics([(m.name, m.regex) for m in ALGORITHM.metrics])
        found: dict[str, list[float]] = {m.name: [] for m in ALGORITHM.metrics}
        for line in self.stdout.splitlines():
            for name, value in match_metrics(line, metrics):
                found[name].append(value)
        return found

    def check_ok(self) -> None:
        assert self.returncode == 0, f"exit {self.returncode}\n{self.stdout}\n{self.stderr}"


def run(root: Path, *, train: Sequence[str], validation: Sequence[str] = (),
        argv: Sequence[str] = ()) -> Run:
    """Run train.py with `train` (and `validation`) CSV text as its channels' files."""
    channels = {}
    for name, texts in (("train", train), ("validation", validation)):
        if texts:
            folder = root / "input" / "data" / name
            folder.mkdir(parents=True)
            for i, text in enumerate(texts):
                (folder / f"part-{i}.csv").write_text(text)
            channels[name] = folder
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], env=sm_env(root, {}, channels), cwd=root,
        capture_output=True, text=True, timeout=60,
    )
    return Run(root, done)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    result = run(tmp_path_factory.mktemp("sm"), train=[SAMPLE.read_text()])
    result.check_ok()
    return result


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("team_churn_train", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the manifest ---------------------------------------------------------------------------------

def test_the_manifest_is_a_valid_typed_algorithm() -> None:
    assert ALGORITHM.id == "team-churn-classifier"
    assert not ALGORITHM.open_hyperparameters
    assert (EXAMPLE / ALGORITHM.entry_point).is_file()
    assert ALGORITHM.objective.metric == "validation:accuracy"
    assert ALGORITHM.channel("train") is not None and ALGORITHM.channel("train").required


def test_the_scripts_defaults_are_the_manifests() -> None:
    assert vars(load_script().parse_args([])) == ALGORITHM.defaults()


def test_the_script_stands_alone() -> None:
    text = SCRIPT.read_text()
    for foreign in ("import bot", "from bot", "sm_contract", "_shared", "evaluation import"):
        assert foreign not in text


# -- a run on the sample --------------------------------------------------------------------------

def test_every_metric_is_printed_once_per_epoch(default_run: Run) -> None:
    epochs = ALGORITHM.defaults()["epochs"]
    assert {name: len(values) for name, values in default_run.series().items()} == {
        m.name: epochs for m in ALGORITHM.metrics}


def test_progress_lines_count_the_epochs(default_run: Run) -> None:
    assert ALGORITHM.progress_regex
    regex = compile_metrics([("progress", ALGORITHM.progress_regex)])[0][1]
    progress = [p for line in default_run.stdout.splitlines()
                if (p := match_progress(line, regex))]
    epochs = ALGORITHM.defaults()["epochs"]
    assert progress[0] == (1, epochs)
    assert progress[-1] == (epochs, epochs)


def test_it_learns_the_sample(default_run: Run) -> None:
    assert default_run.series()["validation:accuracy"][-1] > 0.8
    assert default_run.evaluation["objective"] == {
        "metric": "validation:accuracy",
        "value": default_run.series()["validation:accuracy"][-1]}


def test_the_evaluation_has_the_presets_shape(default_run: Run) -> None:
    evaluation = default_run.evaluation
    assert evaluation["task"] == "classification"
    assert evaluation["split"] == "validation"
    assert evaluation["classes"] == ["no", "yes"]
    assert {"accuracy", "f1_macro"} <= set(evaluation["metrics"])
    assert [row["class"] for row in evaluation["per_class"]] == evaluation["classes"]
    assert {"precision", "recall", "f1", "support"} <= set(evaluation["per_class"][0])
    matrix = evaluation["confusion_matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert sum(map(sum, matrix)) == evaluation["samples"] == 80


def test_the_saved_model_predicts(default_run: Run) -> None:
    described = json.loads((default_run.model_dir / "model.json").read_text())
    pipeline = joblib.load(default_run.model_dir / "model.joblib")
    assert described["features"] == [
        "tenure_months", "monthly_charges", "support_calls", "contract_months"]
    # A new, cheap, month-to-month customer who called support five times.
    assert list(pipeline.predict([[1, 110.0, 5, 1], [70, 25.0, 0, 24]])) == ["yes", "no"]


# -- hyperparameters and channels -----------------------------------------------------------------

def test_hyperparameters_come_from_the_command_line(tmp_path: Path) -> None:
    result = run(tmp_path, train=[SAMPLE.read_text()],
                 argv=["--epochs", "3", "--penalty", "l1", "--learning_rate", "0.05"])
    result.check_ok()
    assert len(result.series()["validation:accuracy"]) == 3


def test_a_validation_channel_replaces_the_holdout(tmp_path: Path) -> None:
    header, *rows = SAMPLE.read_text().splitlines(keepends=True)
    result = run(tmp_path, argv=["--epochs", "5"],
                 train=[header + "".join(rows[:200]), header + "".join(rows[200:300])],
                 validation=[header + "".join(rows[300:])])
    result.check_ok()
    assert "training on 300 rows, validating on 100" in result.stdout
    assert result.evaluation["samples"] == 100


def test_a_missing_label_column_fails_with_an_error_line(tmp_path: Path) -> None:
    result = run(tmp_path, train=[SAMPLE.read_text()], argv=["--label", "churned"])
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert errors == ["ERROR: label column 'churned' is not in part-0.csv (columns: "
                      "tenure_months, monthly_charges, support_calls, contract_months, label); "
                      "set the label hyperparameter"]
    assert (tmp_path / "output" / "failure").read_text() == errors[0].removeprefix("ERROR: ")
    assert not (tmp_path / "model" / "model.joblib").exists()


def test_a_bad_hyperparameter_fails_with_an_error_line(tmp_path: Path) -> None:
    result = run(tmp_path, train=[SAMPLE.read_text()], argv=["--epochs", "0"])
    assert result.returncode == 2
    assert "ERROR: bad hyperparameter: argument --epochs: must be in [1, 1000], got 0" in (
        result.stderr.splitlines())
