"""image-classification's networks, pretrained weights and execution plan, in-process:
torchvision's key layout, the pretrained key matching and refusals, freezing, and the GPU
code path (bfloat16/float16 autocast, channels-last) exercised on the CPU."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from tests.algorithms.conftest import import_modules

ALGORITHM = "image-classification"


@pytest.fixture(scope="module")
def mods() -> dict[str, ModuleType]:
    names = ("standard_nets", "architectures", "pretrained", "step", "pipeline", "image_data")
    return dict(zip(names, import_modules(ALGORITHM, *names), strict=True))


def shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def standard(mods: dict[str, ModuleType], arch: str, classes: int = 1000) -> torch.nn.Module:
    return mods["standard_nets"].build_standard(arch, in_channels=3, num_classes=classes)


# Names and shapes as in torchvision's resnet18 state dict (IMAGENET1K_V1), hand-listed.
RESNET18_KEYS = {
    "conv1.weight": [64, 3, 7, 7],
    "bn1.weight": [64],
    "bn1.running_mean": [64],
    "bn1.num_batches_tracked": [],
    "layer1.0.conv1.weight": [64, 64, 3, 3],
    "layer1.1.bn2.bias": [64],
    "layer2.0.conv1.weight": [128, 64, 3, 3],
    "layer2.0.downsample.0.weight": [128, 64, 1, 1],
    "layer2.0.downsample.1.running_var": [128],
    "layer3.1.conv2.weight": [256, 256, 3, 3],
    "layer4.0.downsample.0.weight": [512, 256, 1, 1],
    "layer4.1.bn2.running_var": [512],
    "fc.weight": [1000, 512],
    "fc.bias": [1000],
}


def test_resnet18_has_torchvision_key_layout(mods: dict[str, ModuleType]) -> None:
    model = standard(mods, "resnet18")
    layout = shapes(model)
    assert {k: layout.get(k) for k in RESNET18_KEYS} == RESNET18_KEYS
    assert len(layout) == 122  # 102 tensors + 20 num_batches_tracked, as torchvision's
    assert "layer1.0.downsample.0.weight" not in layout
    assert sum(p.numel() for p in model.parameters()) == 11_689_512


def test_resnet34_and_resnet50_have_torchvision_sizes(mods: dict[str, ModuleType]) -> None:
    resnet34 = standard(mods, "resnet34")
    assert sum(p.numel() for p in resnet34.parameters()) == 21_797_672
    assert shapes(resnet34)["layer3.5.bn2.weight"] == [256]
    resnet50 = standard(mods, "resnet50")
    layout = shapes(resnet50)
    assert layout["layer1.0.conv3.weight"] == [256, 64, 1, 1]
    assert layout["layer1.0.downsample.0.weight"] == [256, 64, 1, 1]
    assert layout["layer2.0.conv2.weight"] == [128, 128, 3, 3]  # v1.5: stride in the 3x3
    assert layout["layer4.2.bn3.running_mean"] == [2048]
    assert layout["fc.weight"] == [1000, 2048]
    assert len(layout) == 320
    assert sum(p.numel() for p in resnet50.parameters()) == 25_557_032


def test_mobilenet_v3_small_layout_and_forward(mods: dict[str, ModuleType]) -> None:
    layout = shapes(standard(mods, "mobilenet_v3_small"))
    expected = {
        "features.0.0.weight": [16, 3, 3, 3],
        "features.0.1.running_var": [16],
        "features.1.block.0.0.weight": [16, 1, 3, 3],
        "features.1.block.1.fc1.weight": [8, 16, 1, 1],
        "features.1.block.1.fc2.bias": [16],
        "features.1.block.2.0.weight": [16, 16, 1, 1],
        "features.4.block.2.fc1.weight": [24, 96, 1, 1],
        "features.11.block.3.1.running_mean": [96],
        "features.12.0.weight": [576, 96, 1, 1],
        "classifier.0.weight": [1024, 576],
        "classifier.3.weight": [1000, 1024],
    }
    assert {k: layout.get(k) for k in expected} == expected
    assert "features.13.0.weight" not in layout
    model = standard(mods, "mobilenet_v3_small", classes=7)
    assert sum(p.numel() for p in standard(mods, "mobilenet_v3_small").parameters()) == 2_542_856
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_pretrained_matching_loads_the_backbone_and_replaces_the_head(
    mods: dict[str, ModuleType],
) -> None:
    pretrained = mods["pretrained"]
    source = standard(mods, "resnet18").state_dict()
    model = standard(mods, "resnet18", classes=3)
    loadable, report = pretrained.match_state_dict(model, source)
    assert report.refusal() is None
    assert (len(report.matched), len(report.missing), len(report.unexpected)) == (100, 0, 0)
    assert [(k, f, w) for k, f, w in report.head_replaced] == [
        ("fc.weight", [1000, 512], [3, 512]),
        ("fc.bias", [1000], [3]),
    ]
    assert "fc.weight" not in loadable and "layer4.1.conv2.weight" in loadable


@pytest.mark.parametrize(
    ("arch", "why", "guess"),
    [
        ("resnet34", "the file has 80 tensors this model lacks", "resnet34"),
        ("mobilenet_v3_small", "only 0 of the model's 100 backbone tensors", "mobilenet_v3_small"),
        ("resnet50", "backbone tensors have other shapes", "resnet50"),
    ],
)
def test_weights_of_another_architecture_are_refused(
    mods: dict[str, ModuleType], arch: str, why: str, guess: str
) -> None:
    pretrained = mods["pretrained"]
    state = standard(mods, arch).state_dict()
    _, report = pretrained.match_state_dict(standard(mods, "resnet18", classes=3), state)
    assert why in (report.refusal() or "")
    assert pretrained.guess_arch(state) == guess


def test_state_dicts_are_unwrapped_and_pickled_models_refused(
    mods: dict[str, ModuleType], tmp_path: Path
) -> None:
    pretrained = mods["pretrained"]
    weights = {"conv.weight": torch.ones(2, 2), "conv.bias": torch.zeros(2)}
    for wrapped in (
        {"state_dict": {f"module.{k}": v for k, v in weights.items()}, "epoch": 3},
        {"model": {f"_orig_mod.{k}": v for k, v in weights.items()}, "optimizer": {}},
        weights,
    ):
        torch.save(wrapped, tmp_path / "w.pth")
        assert set(pretrained.read_state_dict(tmp_path / "w.pth")) == set(weights)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pth")  # the model object, not weights
    with pytest.raises(Exception, match="weights_only=True") as refused:
        pretrained.read_state_dict(tmp_path / "model.pth")
    assert type(refused.value).__name__ == "UserError"
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(Exception, match="holds no state dict"):
        pretrained.read_state_dict(tmp_path / "list.pth")


SMALL = {"name": "resnet", "in_channels": 3, "num_classes": 3, "width": 8}
SMALL.update(blocks_per_stage=1, stem_stride=1)


def test_a_frozen_backbone_stays_as_loaded(mods: dict[str, ModuleType]) -> None:
    architectures, step = mods["architectures"], mods["step"]
    torch.manual_seed(0)
    model = architectures.build_model(SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = step.plan_execution(torch.device("cpu"), amp=True)
    hps = {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01}
    train_step = step.TrainStep(model, step.make_optimizer(hps, model, plan.device), plan)
    architectures.set_backbone_frozen(model, True)
    model.train()
    architectures.keep_frozen_bn_in_eval(model)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        train_step(x, y)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}
    architectures.set_backbone_frozen(model, False)
    model.train()
    train_step(x, y)
    after = model.state_dict()
    assert not torch.equal(before["features.0.weight"], after["features.0.weight"])
    assert not torch.equal(before["features.1.running_mean"], after["features.1.running_mean"])


def test_which_epochs_train_the_head_alone() -> None:
    (trainer,) = import_modules(ALGORITHM, "trainer")

    def frozen(freeze_backbone: bool, head_epochs: int) -> list[bool]:
        hps = {"freeze_backbone": freeze_backbone, "head_epochs": head_epochs}
        return [trainer.frozen_in(epoch, hps) for epoch in (1, 2, 3)]

    assert frozen(False, 0) == [False, False, False]
    assert frozen(True, 0) == [True, True, True]  # a linear probe
    assert frozen(True, 2) == [True, True, False]
    assert frozen(False, 1) == [True, False, False]  # head_epochs alone implies the freeze


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_gpu_path_runs_on_the_cpu(
    mods: dict[str, ModuleType], tmp_path: Path, dtype: torch.dtype
) -> None:
    """What a GPU run does differently — autocast to bfloat16 or float16 (with gradient
    scaling), channels-last model and batches from the folder pipeline — on the CPU."""
    step, pipeline, image_data = mods["step"], mods["pipeline"], mods["image_data"]
    cpu = torch.device("cpu")
    assert step.plan_execution(cpu, amp=True).amp_dtype is None  # the real plan on a CPU
    plan = step.ExecutionPlan(cpu, amp_dtype=dtype, channels_last=True, compile=False)
    for i in range(6):
        folder = tmp_path / f"c{i % 2}"
        folder.mkdir(exist_ok=True)
        pixels = np.full((20, 24, 3), 60 + 120 * (i % 2), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    images = image_data.load_channel("train", tmp_path, image_size=0)
    splits = image_data.make_splits(
        images, None, validation_split=0.34, seed=0, imagenet=True, image_size=16
    )
    feed = pipeline.make_feed(splits, plan, augment=True, seed=0, num_workers=0)
    model = plan.place(mods["architectures"].build_model({**SMALL, "num_classes": 2}))
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    hps = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}
    train_step = step.TrainStep(model, step.make_optimizer(hps, model, cpu), plan)
    assert train_step.scaler.is_enabled() == (dtype == torch.float16)
    batches = list(feed.train_batches(1, 0, [[0, 1, 2, 3]]))
    xb, yb = batches[0]
    assert xb.shape == (4, 3, 16, 16) and xb.dtype == torch.float32
    assert xb.is_contiguous(memory_format=torch.channels_last)
    loss, logits = train_step(xb, yb)
    assert logits.dtype == dtype and torch.isfinite(loss)
    val = list(feed.val_batches())
    assert sum(len(y) for _, y in val) == len(splits.y_val)


def test_worker_count(mods: dict[str, ModuleType]) -> None:
    worker_count = mods["pipeline"].worker_count
    assert worker_count(3, 10) == 3
    assert worker_count(0, 100) == 0  # small data: decoded in the training process
    assert 1 <= worker_count(0, 100_000, {"LOCAL_WORLD_SIZE": "8"}) <= 16
