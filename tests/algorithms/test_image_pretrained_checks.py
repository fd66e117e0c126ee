"""image-classification's pretrained channel and fine-tuning, the checks around them: every
wrapper's prefix taken off, torch's refusal text made plain, fine-tuning without weights and
an empty channel refused, the stage said after a resume; and bench_gpu.py's plain loop using
trainbot's optimizer implementation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.algorithms.conftest import ALGORITHMS_DIR, Harness, import_modules

ALGORITHM = "image-classification"
BENCH = ALGORITHMS_DIR.parent / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def mods() -> dict[str, ModuleType]:
    names = ("pretrained", "trainer", "step")
    return dict(zip(names, import_modules(ALGORITHM, *names), strict=True))


WEIGHTS = {"conv.weight": torch.ones(2, 2), "fc.bias": torch.zeros(2)}


@pytest.mark.parametrize(
    "saved",
    [
        {f"_orig_mod.module.{k}": v for k, v in WEIGHTS.items()},  # compiled, then DDP
        {f"module._orig_mod.{k}": v for k, v in WEIGHTS.items()},
        {"state_dict": {f"model.{k}": v for k, v in WEIGHTS.items()}, "epoch": 3},  # Lightning
        {"state_dict": {f"model._orig_mod.{k}": v for k, v in WEIGHTS.items()}},
    ],
)
def test_every_wrapper_prefix_is_taken_off(
    mods: dict[str, ModuleType], tmp_path: Path, saved: dict[str, object]
) -> None:
    torch.save(saved, tmp_path / "w.pth")
    assert set(mods["pretrained"].read_state_dict(tmp_path / "w.pth")) == set(WEIGHTS)


def test_a_prefix_only_some_keys_have_stays(mods: dict[str, ModuleType]) -> None:
    state = {"model.conv.weight": torch.ones(1), "fc.bias": torch.ones(1)}
    assert set(mods["pretrained"].strip_prefixes(state)) == set(state)


def test_torchs_refusal_reaches_the_error_line_as_plain_text(
    mods: dict[str, ModuleType], tmp_path: Path
) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pth")  # the object, not weights
    with pytest.raises(Exception, match="weights_only=True") as refused:
        mods["pretrained"].read_state_dict(tmp_path / "model.pth")
    message = str(refused.value)
    assert "Unsupported global" in message and "torch.nn.modules.linear.Linear" in message
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in message), repr(message)
    plain = mods["pretrained"].plain_text("a \x1b[1mbold\x1b[0m\n\tword\x07 end")
    assert plain == "a bold word end"


@pytest.mark.parametrize(
    ("hps", "says"),
    [
        ({"freeze_backbone": True}, "freeze_backbone=true fine-tunes pretrained weights"),
        ({"head_epochs": 2}, "head_epochs > 0 fine-tunes pretrained weights"),
    ],
)
def test_fine_tuning_without_weights_is_refused(
    harness: Harness, hps: dict[str, object], says: str
) -> None:
    result = harness.run(ALGORITHM, {"arch": "resnet18", **hps})
    assert result.returncode == 2, result.stderr
    assert result.error_line().startswith(f"ERROR: {says}, but there is no pretrained channel")
    assert "Traceback" not in result.stderr
    assert (result.root / "output" / "failure").is_file()


def test_an_empty_pretrained_channel_is_refused(harness: Harness, tmp_path: Path) -> None:
    (tmp_path / "pretrained").mkdir()
    result = harness.run(ALGORITHM, {"epochs": 1}, channels={"pretrained": tmp_path / "pretrained"})
    assert result.returncode == 2, result.stderr
    assert result.error_line() == (
        f"ERROR: channel pretrained: {tmp_path / 'pretrained'} is empty; give it one "
        ".pt/.pth/.bin state dict file, or leave the channel out to train from scratch"
    )


def test_the_stage_is_said_at_each_start_and_after_a_resume(mods: dict[str, ModuleType]) -> None:
    stage_line = mods["trainer"].stage_line
    two_stage = {"freeze_backbone": False, "head_epochs": 2}
    one_stage = {"freeze_backbone": False, "head_epochs": 0}

    def line(epoch: int, hps: dict[str, object], **kw: bool) -> str | None:
        return stage_line(epoch, hps, trainable=10, **{"changed": False, "resumed": False, **kw})

    assert (
        line(1, two_stage) == "stage from epoch 1: the head alone trains (trainable parameters=10)"
    )
    assert line(3, two_stage, changed=True) == (
        "stage from epoch 3: every layer trains (trainable parameters=10)"
    )
    # Resumed from the checkpoint of epoch 3 into stage 2: said again.
    assert line(4, two_stage, resumed=True) == (
        "stage from epoch 4: every layer trains (trainable parameters=10)"
    )
    assert line(1, one_stage) is None
    assert line(4, one_stage, resumed=True) is None


def test_the_benchmarks_plain_loop_uses_trainbots_optimizer(mods: dict[str, ModuleType]) -> None:
    """The step ratio compares like with like: fused AdamW on CUDA for both loops."""
    spec = importlib.util.spec_from_file_location("bench_gpu_under_test", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = torch.nn.Linear(3, 2)
    for device in ("cuda", "cpu"):
        for optimizer in ("adam", "sgd"):
            setup = bench.Setup(
                device=torch.device(device),
                arch="resnet18",
                size=64,
                batch=2,
                steps=1,
                warmup=0,
                optimizer=optimizer,
                compile=False,
            )
            plain = bench.plain_optimizer(torch, model, setup)
            trainbot = mods["step"].make_optimizer(setup.hps, model, torch.device(device))
            assert type(plain) is type(trainbot)
            assert plain.defaults == trainbot.defaults, (device, optimizer)
    assert plain.defaults.get("fused") is not True  # CPU: PyTorch's default implementation
