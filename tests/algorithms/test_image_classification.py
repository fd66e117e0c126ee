"""image-classification end to end: real subprocesses under an /opt/ml-like root."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tests.algorithms.conftest import (
    EXIT_STOPPED,
    Harness,
    Result,
    assert_complete_run,
    import_modules,
)

ALGORITHM = "image-classification"
SMALL = {"epochs": 2, "seed": 3}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def builtin_run(harness: Harness) -> Result:
    return harness.run(ALGORITHM, SMALL)


def epoch_lines(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("epoch=")]


def test_builtin_digits_run_writes_every_output(builtin_run: Result) -> None:
    assert_complete_run(builtin_run)
    assert builtin_run.evaluation["classes"] == [str(d) for d in range(10)]
    assert (builtin_run.model_dir / "model.pt").is_file()
    assert builtin_run.metric_values("validation:accuracy")[-1] > 0.7  # it learns already
    assert [line.split()[0] for line in epoch_lines(builtin_run)] == ["epoch=1/2", "epoch=2/2"]


def test_the_saved_model_reloads_from_model_json(builtin_run: Result) -> None:
    import torch

    (architectures,) = import_modules(ALGORITHM, "architectures")
    meta = json.loads((builtin_run.model_dir / "model.json").read_text())
    model = architectures.build_model(meta["architecture"])
    model.load_state_dict(torch.load(builtin_run.model_dir / "model.pt", weights_only=True))
    assert meta["classes"] == builtin_run.evaluation["classes"]
    assert meta["input"]["shape"] == [1, 8, 8]


def test_same_seed_gives_the_same_metrics(harness: Harness, builtin_run: Result) -> None:
    again = harness.run(ALGORITHM, SMALL)
    assert epoch_lines(again) == epoch_lines(builtin_run)
    assert again.evaluation == builtin_run.evaluation


def test_resumes_from_the_latest_checkpoint(harness: Harness, builtin_run: Result) -> None:
    root = harness.root()
    shutil.copytree(builtin_run.checkpoint_dir, root / "checkpoints")
    resumed = harness.run(ALGORITHM, {**SMALL, "epochs": 3}, root=root)
    assert_complete_run(resumed)
    assert "resumed from checkpoint epoch=2" in resumed.stdout
    assert [line.split()[0] for line in epoch_lines(resumed)] == ["epoch=3/3"]


def test_a_checkpoint_of_another_model_is_refused(harness: Harness, builtin_run: Result) -> None:
    root = harness.root()
    shutil.copytree(builtin_run.checkpoint_dir, root / "checkpoints")
    result = harness.run(ALGORITHM, {**SMALL, "width": 8}, root=root)
    assert result.returncode == 2
    assert "belongs to a different model or data (architecture changed)" in result.error_line()


def test_npz_channel(harness: Harness, tmp_path: Path) -> None:
    digits = load_digits()
    keep = digits.target < 4
    x = (digits.images[keep] * 16).astype(np.uint8)  # [N,H,W]
    labels = np.array(["zero", "one", "two", "three"])[digits.target[keep]]
    (tmp_path / "train").mkdir()
    np.savez(tmp_path / "train" / "digits.npz", x=x, y=labels)
    result = harness.run(ALGORITHM, {"epochs": 3}, channels={"train": tmp_path / "train"})
    assert_complete_run(result)
    assert result.evaluation["classes"] == ["one", "three", "two", "zero"]
    assert result.evaluation["objective"]["value"] > 0.8


def test_image_folder_channel_resized(harness: Harness, tmp_path: Path) -> None:
    digits = load_digits()
    for i in range(90):
        label = i % 3
        image = digits.images[digits.target == label][i // 3] * 15
        folder = tmp_path / "train" / f"digit-{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8), mode="L").save(folder / f"{i}.png")
    hps = {"epochs": 2, "image_size": 12}
    result = harness.run(ALGORITHM, hps, channels={"train": tmp_path / "train"})
    assert_complete_run(result)
    assert result.evaluation["classes"] == ["digit-0", "digit-1", "digit-2"]
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert meta["input"]["shape"] == [1, 12, 12]


def test_npz_without_labels_fails_with_a_clear_error(harness: Harness, tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", images=np.zeros((4, 8, 8)))
    result = harness.run(ALGORITHM, SMALL, channels={"train": tmp_path})
    assert result.returncode == 2
    assert result.error_line() == (
        "ERROR: channel train: bad.npz must hold arrays 'x' and 'y' (found images)"
    )


def test_a_bad_hyperparameter_fails_with_a_clear_error(harness: Harness) -> None:
    result = harness.run(ALGORITHM, {"optimizer": "rmsprop"})
    assert result.returncode == 2
    assert result.error_line() == (
        "ERROR: hyperparameter optimizer: expected one of adam, sgd, got 'rmsprop'"
    )
    assert "Traceback" not in result.stderr


def test_sigterm_stops_after_keeping_a_checkpoint(harness: Harness) -> None:
    result, took = harness.run_until_sigterm(ALGORITHM, {"epochs": 500}, after_line="epoch=1/")
    assert result.returncode == EXIT_STOPPED, result.stderr
    assert re.search(
        r"stopped by SIGTERM during epoch \d+/500; checkpoint epoch=\d+", result.stdout
    )
    assert took < 10
    assert list(result.checkpoint_dir.glob("checkpoint-epoch-*.pt"))


def test_two_process_data_parallel_run(harness: Harness) -> None:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = harness.run(ALGORITHM, SMALL, launcher=launcher)
    assert_complete_run(result)
    assert "world_size=2" in result.stdout
    # Rank 0 alone reports: one line per epoch, not one per process.
    assert [line.split()[0] for line in epoch_lines(result)] == ["epoch=1/2", "epoch=2/2"]
