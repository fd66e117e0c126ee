"""image-classification's inputs: the small network's light augmentation on image folders,
16-bit and float pictures, and .npz arrays for the standard networks kept at their own size
and dtype (each batch resized on the device)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from tests.algorithms.conftest import Harness, assert_complete_run, import_modules

ALGORITHM = "image-classification"


@pytest.fixture(scope="module")
def mods() -> dict[str, ModuleType]:
    names = ("image_data", "pipeline", "step", "architectures", "trainer", "train")
    return dict(zip(names, import_modules(ALGORITHM, *names), strict=True))


def digit_pictures(root: Path, count: int, size: int) -> None:
    """The first `count` 8x8 digits as grey PNGs, upscaled (bilinear) to size x size."""
    digits = load_digits()
    for i in range(count):
        pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
        picture = Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.BILINEAR)
        folder = root / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{i}.png")


@pytest.mark.slow
def test_the_small_network_learns_digits_from_an_image_folder(
    harness: Harness, tmp_path: Path
) -> None:
    """Shifts, not ImageNet's flips and tight crops: a flipped or cut-off digit is another
    digit. (With the random resized crop and flip this run reached 0.90.)"""
    digit_pictures(tmp_path / "train", 300, 16)
    hps = {"epochs": 8, "batch_size": 16}
    result = harness.run(ALGORITHM, hps, channels={"train": tmp_path / "train"})
    assert_complete_run(result)
    assert result.evaluation["objective"]["value"] >= 0.95
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert meta["input"]["resize"].startswith("the centre square of 100.0% of the shorter side")
    assert meta["input"]["grey_repeated"] is False


def test_the_small_network_sees_shifted_whole_pictures(
    mods: dict[str, ModuleType], tmp_path: Path
) -> None:
    """Each augmented picture is the whole picture moved by at most size/8 pixels: never
    flipped, never zoomed. The standard networks keep the random resized crop."""
    pipeline = mods["pipeline"]
    pixels = np.zeros((16, 16), dtype=np.uint8)
    pixels[2:14, 3:6] = 255  # a bar on the left: a flip would put it on the right
    Image.fromarray(pixels, "L").save(tmp_path / "bar.png")
    labels = np.zeros(1, dtype=np.int64)
    common = {"image_size": 16, "grey": True, "seed": 0}
    small = pipeline.FolderDataset(
        [str(tmp_path / "bar.png")], labels, augment=True, imagenet=False, **common
    )
    assert small.shift == 2
    padded = np.pad(pixels, 2, mode="edge")
    shifts = [(dy, dx) for dy in range(5) for dx in range(5)]
    seen = set()
    for epoch in range(12):
        out = small[(0, epoch)][0][:, :, 0].numpy()
        match = [
            s for s in shifts if np.array_equal(out, padded[s[0] : s[0] + 16, s[1] : s[1] + 16])
        ]
        assert match, f"epoch {epoch}: not a shift of the picture"
        seen.add(match[0])
    assert len(seen) > 3
    plain = pipeline.FolderDataset(
        [str(tmp_path / "bar.png")], labels, augment=False, imagenet=False, **common
    )
    assert np.array_equal(plain[(0, 1)][0][:, :, 0].numpy(), pixels)  # the whole picture
    standard = pipeline.FolderDataset(
        [str(tmp_path / "bar.png")], labels, augment=True, imagenet=True, **common
    )
    assert standard.shift == 0


def test_16_bit_and_float_pictures_keep_their_contrast(
    mods: dict[str, ModuleType], tmp_path: Path
) -> None:
    """convert("L") clips them at 255 (all white); eight_bit scales them by their range."""
    pipeline, image_data = mods["pipeline"], mods["image_data"]
    ramp16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024  # 0 … 64512
    expected = (ramp16 >> 8).astype(np.uint8)
    picture = Image.fromarray(ramp16)
    assert picture.mode == "I;16"
    # The bug: anything above 255 comes out white.
    assert set(np.unique(np.asarray(picture.convert("L")))) == {0, 255}
    assert np.array_equal(np.asarray(pipeline.eight_bit(picture)), expected)
    big_endian = Image.frombytes("I;16B", (8, 8), ramp16.astype(">u2").tobytes())
    assert np.array_equal(np.asarray(pipeline.eight_bit(big_endian)), expected)
    as_int = Image.fromarray(ramp16.astype(np.int32))  # mode I, 16-bit values
    assert np.array_equal(np.asarray(pipeline.eight_bit(as_int)), expected)
    small_ints = Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8) * 4)  # ≤ 255
    assert np.array_equal(np.asarray(pipeline.eight_bit(small_ints)), np.asarray(small_ints))
    unit = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))  # mode F
    out = np.asarray(pipeline.eight_bit(unit))
    assert (out.min(), out.max(), out.dtype) == (0, 255, np.uint8)
    rgb = Image.new("RGB", (4, 4), (1, 2, 3))
    assert pipeline.eight_bit(rgb) is rgb
    # Through the folder pipeline: a 16-bit PNG on disk is grey and keeps its values.
    for name, scale in (("dark", 1), ("light", 3)):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(ramp16 // 4 * scale).save(tmp_path / name / f"{i}.png")
    images = image_data.load_channel("train", tmp_path, image_size=0)
    assert images.grey
    splits = image_data.make_splits(images, None, validation_split=0.34, seed=0)
    dataset = pipeline.FolderDataset(
        splits.val_files,
        splits.y_val,
        image_size=8,
        grey=True,
        augment=False,
        seed=0,
        imagenet=False,
    )
    values = {int(dataset[(row, 0)][0].max()) for row in range(len(dataset))}
    assert values == {(64512 // 4) >> 8, (64512 // 4 * 3) >> 8}  # 63 and 189, not 255


def test_npz_arrays_stay_at_their_size_for_a_standard_network(
    mods: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """arch=resnet18, image_size=64 on 8x8 uint8 arrays: what is held is the uint8 arrays
    at 8x8 (not float32 at 3x64x64, 48 times the bytes); each batch is resized,
    scaled, repeated to 3 channels and standardised on the device, and the network trains."""
    image_data, pipeline, step = mods["image_data"], mods["pipeline"], mods["step"]
    digits = load_digits()
    keep = digits.target < 3
    x = (digits.images[keep][:60] * 15).astype(np.uint8)
    (tmp_path / "train").mkdir()
    np.savez(tmp_path / "train" / "digits.npz", x=x, y=digits.target[keep][:60])
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train"))
    monkeypatch.delenv("SM_CHANNEL_VALIDATION", raising=False)
    hps = {"arch": "resnet18", "image_size": 64, "validation_split": 0.2, "seed": 0}
    splits = mods["train"]._load_data(hps)
    assert isinstance(splits, image_data.RawSplits)
    assert splits.input_shape == (3, 64, 64)
    assert (splits.x_train.dtype, splits.x_train.shape[1:]) == (np.uint8, (1, 8, 8))
    assert splits.x_train.nbytes + splits.x_val.nbytes == x.nbytes
    meta = mods["trainer"]._input_description(splits)
    assert meta["grey_repeated"] is True and meta["shape"] == [3, 64, 64]

    plan = step.plan_execution(torch.device("cpu"), amp=True, channels_last=True)
    feed = pipeline.make_feed(splits, plan, augment=True, seed=0, num_workers=0)
    assert (feed.x_train.dtype, tuple(feed.x_train.shape[1:])) == (torch.uint8, (1, 8, 8))
    batches = [list(range(8)), list(range(8, 16))]
    xb, yb = next(iter(feed.train_batches(1, 0, batches)))
    assert xb.shape == (8, 3, 64, 64) and xb.dtype == torch.float32
    # Without augmentation a batch is the picture resized, scaled and standardised.
    val_x, _ = next(iter(feed.val_batches()))
    first = torch.from_numpy(splits.x_val[:1].astype(np.float32))
    resized = (
        torch.nn.functional.interpolate(first, size=(64, 64), mode="bilinear", antialias=True) / 255
    )
    mean = torch.tensor(image_data.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(image_data.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(val_x[:1], (resized - mean) / std, atol=1e-5)
    assert sum(len(y) for _, y in feed.val_batches()) == len(splits.y_val)

    torch.manual_seed(0)
    arch = mods["architectures"].architecture_for(hps, splits.input_shape, len(splits.classes))
    model = plan.place(mods["architectures"].build_model(arch))
    adam = {"optimizer": "adam", "lr": 0.001, "weight_decay": 0.0}
    train_step = step.TrainStep(model, step.make_optimizer(adam, model, plan.device), plan)
    model.train()
    losses = [float(train_step(xb, yb)[0]) for _ in range(4)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_npz_data_keeps_its_dtype_and_the_small_network_its_numbers(
    mods: dict[str, ModuleType],
) -> None:
    """The small network standardises in float32 as before, whatever the stored dtype."""
    image_data = mods["image_data"]
    x = np.arange(2 * 3 * 4 * 4, dtype=np.uint16).reshape(2, 3, 4, 4)
    stored = image_data._as_nchw("train", Path("a.npz"), x)
    assert stored.dtype == np.int32  # torch has no general uint16
    as_float = image_data._as_nchw("train", Path("a.npz"), x.astype(np.float64))
    assert as_float.dtype == np.float32
    grey = image_data._as_nchw("train", Path("a.npz"), np.zeros((2, 5, 5), np.uint8))
    assert (grey.dtype, grey.shape) == (np.uint8, (2, 1, 5, 5))
