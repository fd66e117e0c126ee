"""image-classification at scale, end to end on the CPU (real subprocesses, as in a job): a
standard network on an image folder decoded by the data pipeline, pretrained weights through
the `pretrained` channel, the two-stage fine-tune, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.algorithms.conftest import (
    ALGORITHMS_DIR,
    EXIT_STOPPED,
    Harness,
    Result,
    assert_complete_run,
    import_modules,
    sm_env,
)

ALGORITHM = "image-classification"
RESNET18 = {"arch": "resnet18", "image_size": 32, "batch_size": 8, "epochs": 1}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three colours, eight pictures each, of two sizes (so they must be resized)."""
    root = tmp_path_factory.mktemp("pictures") / "train"
    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(8):
            height, width = (40, 48) if i % 2 else (48, 40)
            noise = rng.normal(0, 40, (height, width, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def standard_weights(arch: str, path: Path, *, wrap: bool = False) -> dict[str, torch.Tensor]:
    """A state dict as torchvision publishes it (1000 classes), saved to `path`."""
    (standard_nets,) = import_modules(ALGORITHM, "standard_nets")
    torch.manual_seed(1)
    state = standard_nets.build_standard(arch, in_channels=3, num_classes=1000).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    # As a DDP training script saves it: wrapped, every name prefixed with "module.".
    saved = {"state_dict": {f"module.{k}": v for k, v in state.items()}} if wrap else state
    torch.save(saved, path)
    return state


@pytest.fixture(scope="module")
def resnet18_run(harness: Harness, folder: Path) -> Result:
    return harness.run(ALGORITHM, RESNET18, channels={"train": folder})


def test_resnet18_trains_on_an_image_folder(resnet18_run: Result) -> None:
    assert_complete_run(resnet18_run)
    assert "arch=resnet18" in resnet18_run.stdout
    meta = json.loads((resnet18_run.model_dir / "model.json").read_text())
    assert meta["architecture"] == {"name": "resnet18", "in_channels": 3, "num_classes": 3}
    assert meta["input"]["shape"] == [3, 32, 32]
    assert meta["input"]["mean"] == [0.485, 0.456, 0.406] and meta["input"]["scale"] == 255
    weights = torch.load(resnet18_run.model_dir / "model.pt", weights_only=True)
    assert list(weights["fc.weight"].shape) == [3, 512]
    assert resnet18_run.evaluation["classes"] == ["blue", "green", "red"]


def test_a_checkpoint_of_another_arch_is_refused(
    harness: Harness, resnet18_run: Result, folder: Path
) -> None:
    root = harness.root()
    shutil.copytree(resnet18_run.checkpoint_dir, root / "checkpoints")
    hps = {**RESNET18, "arch": "mobilenet_v3_small"}
    result = harness.run(ALGORITHM, hps, root=root, channels={"train": folder})
    assert result.returncode == 2
    assert "belongs to a different model or data (architecture changed)" in result.error_line()


def test_pretrained_weights_load_and_the_backbone_waits_for_head_epochs(
    harness: Harness, folder: Path, tmp_path: Path
) -> None:
    state = standard_weights("resnet18", tmp_path / "pretrained" / "resnet18.pth", wrap=True)
    hps = {**RESNET18, "epochs": 2, "freeze_backbone": True, "head_epochs": 1}
    result = harness.run(
        ALGORITHM, hps, channels={"train": folder, "pretrained": tmp_path / "pretrained"}
    )
    assert_complete_run(result)
    assert "pretrained: matched=100 missing=0 unexpected=0 head_replaced=2" in result.stdout
    assert "pretrained: head fc.weight [1000, 512] replaced by a new [3, 512]" in result.stdout
    assert "stage from epoch 1: the head alone trains (trainable parameters=1539)" in (
        result.stdout
    )
    assert "stage from epoch 2: every layer trains" in result.stdout
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert meta["pretrained"] == {
        "file": "resnet18.pth",
        "matched": 100,
        "missing": 0,
        "unexpected": 0,
        "head_replaced": ["fc.weight", "fc.bias"],
    }
    saved = {
        epoch: torch.load(
            result.checkpoint_dir / f"checkpoint-epoch-{epoch:06d}.pt", weights_only=True
        )["model"]
        for epoch in (1, 2)
    }
    backbone = [k for k in state if not k.startswith("fc.") and "num_batches" not in k]
    # After the head-only epoch the backbone is exactly the file's, running statistics too.
    assert all(torch.equal(saved[1][k], state[k]) for k in backbone)
    assert not torch.equal(saved[1]["fc.weight"], saved[2]["fc.weight"])
    # Then every layer trained.
    assert not torch.equal(saved[2]["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert not torch.equal(saved[2]["bn1.running_mean"], state["bn1.running_mean"])


def test_weights_of_another_architecture_are_refused(
    harness: Harness, folder: Path, tmp_path: Path
) -> None:
    standard_weights("resnet34", tmp_path / "pretrained" / "resnet34.pth")
    result = harness.run(
        ALGORITHM, RESNET18, channels={"train": folder, "pretrained": tmp_path / "pretrained"}
    )
    assert result.returncode == 2, result.stderr
    error = result.error_line()
    assert error.startswith(
        "ERROR: channel pretrained: resnet34.pth does not fit arch=resnet18: the file has 80 "
        "tensors this model lacks"
    )
    assert error.endswith("or set arch=resnet34, which it fits")
    assert "Traceback" not in result.stderr
    assert (result.root / "output" / "failure").read_text().startswith("channel pretrained:")
    assert not (result.model_dir / "model.pt").exists()


def test_workers_decode_to_the_same_batches(folder: Path) -> None:
    """Augmentation is seeded per image and epoch: worker processes change nothing."""
    image_data, pipeline, step = import_modules(ALGORITHM, "image_data", "pipeline", "step")
    images = image_data.load_channel("train", folder, image_size=0)
    splits = image_data.make_splits(images, None, validation_split=0.2, seed=0)
    plan = step.plan_execution(torch.device("cpu"), amp=True)
    batches = [[5, 1, 7, 3], [0, 2, 4, 6, 8]]
    seen = []
    for workers in (0, 2):
        feed = pipeline.make_feed(splits, plan, augment=True, seed=3, num_workers=workers)
        assert feed.workers == workers
        try:
            seen.append([list(feed.train_batches(epoch, 0, batches)) for epoch in (1, 2)])
        finally:
            feed.close()
    (inline, parallel) = seen
    for epoch in (0, 1):
        for (x0, y0), (x1, y1) in zip(inline[epoch], parallel[epoch], strict=True):
            assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert not torch.equal(inline[0][0][0], inline[1][0][0])  # a new draw each epoch


def test_an_unreadable_picture_stops_the_run_with_a_clear_error(
    harness: Harness, folder: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "train"
    shutil.copytree(folder, broken)
    data = (broken / "red" / "3.png").read_bytes()
    (broken / "red" / "3.png").write_bytes(data[: len(data) // 2])  # its header still reads
    hps = {"epochs": 1, "batch_size": 8, "num_workers": 1}
    result = harness.run(ALGORITHM, hps, channels={"train": broken})
    assert result.returncode == 2, result.stderr
    assert result.error_line() == (
        f"ERROR: image folder: cannot read image {broken / 'red' / '3.png'}: "
        "image file is truncated"
    )


def test_sigterm_to_the_process_group_stops_cleanly_with_workers(
    folder: Path, tmp_path: Path
) -> None:
    """The local runner signals the whole process group, DataLoader workers included: they
    outlive it, and the training process stops at a step with its checkpoint (exit 143)."""
    hps = {"epochs": 500, "batch_size": 4, "num_workers": 2}
    env = sm_env(tmp_path / "run", hps, {"train": folder})
    proc = subprocess.Popen(
        [sys.executable, str(ALGORITHMS_DIR / ALGORITHM / "train.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("epoch=1/"):
                break
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == EXIT_STOPPED, err[-2000:]
    assert "stopped by SIGTERM during epoch" in out
    assert "Traceback" not in err
