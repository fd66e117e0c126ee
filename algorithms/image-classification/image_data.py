"""Image datasets: the built-in digits and `.npz` files as arrays in memory, or an image
folder as a list of files that DataLoader workers decode while training (pipeline.py).

A channel directory holds either `.npz` files (arrays `x` as [N,H,W] or [N,C,H,W], and `y`)
or one subfolder per class with image files in it (PNG, JPEG, BMP, GIF).
Everything here runs before torch is imported, so bad data fails in a fraction of a second:
an image folder is listed and a sample of its files opened, not decoded whole.

Normalisation: the `small` network standardises arrays with the training data's own mean and
std per channel. The standard networks (`imagenet=True`) see what torchvision's ImageNet
weights were trained on: 3 channels (grey repeated), values scaled to [0, 1], then ImageNet's
mean and std; their arrays stay as stored (`RawSplits`: dtype and size) and each batch is
resized and standardised on the device, so 224x224 inputs never exist for the whole data set.
Image folders are always scaled by 1/255 and use ImageNet's mean and std (or 0.5/0.25 for
grey pictures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from evaluation import holdout_split
from sm_contract import UserError, data_files

__all__ = [
    "BUILTIN_SOURCE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FolderSet",
    "FolderSplits",
    "ImageSet",
    "RawSplits",
    "Splits",
    "load_builtin",
    "load_channel",
    "make_splits",
]

BUILTIN_SOURCE = "builtin:sklearn.datasets.load_digits"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
GREY_MEAN, GREY_STD = [0.5], [0.25]
DEFAULT_STANDARD_SIZE = 224
# Pillow's one-channel modes; 16-bit and float pictures are brought to 8 bits when decoded
# (pipeline.eight_bit).
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_SAMPLED = 32


@dataclass(frozen=True)
class ImageSet:
    """Images [N,C,H,W] (float32, or .npz data's own dtype: see `_STORED`), labels as strings
    (mapped to classes by the caller). `scale`: what divides the values into [0, 1] (255 for
    uint8 data)."""

    x: np.ndarray
    labels: np.ndarray
    source: str
    scale: float = 1.0

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class FolderSet:
    """An image folder: its files, their labels (the class subfolder) and what a sample of
    them showed (`grey`: every sampled picture has one channel; `first_size`: (w, h))."""

    files: list[str]
    labels: np.ndarray
    source: str
    grey: bool
    first_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.labels)


def load_builtin(*, image_size: int = 0) -> ImageSet:
    """The 8x8 digits (values 0-16), resized to image_size x image_size when it is > 0."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    if image_size and image_size != 8:
        images = _resize(images, image_size)
    return ImageSet(images, digits.target.astype(str), BUILTIN_SOURCE, scale=16.0)


def load_channel(name: str, root: Path, *, image_size: int) -> ImageSet | FolderSet:
    """Channel `name` from `root`: .npz arrays (resized to image_size x image_size when it
    is > 0) or an image folder (resized as it is read)."""
    if data_files(root, [".npz"]):
        images = _load_npz(name, root)
        if image_size and images.x.shape[-2:] != (image_size, image_size):
            resized = _resize(images.x, image_size)
            images = ImageSet(resized, images.labels, images.source, images.scale)
        return images
    if data_files(root, IMAGE_SUFFIXES):
        return _scan_image_folder(name, root)
    raise UserError(
        f"channel {name}: found no .npz files and no class subfolders of images in {root}"
    )


def _load_npz(name: str, root: Path) -> ImageSet:
    xs, ys = [], []
    all_uint8 = True
    for path in data_files(root, [".npz"]):
        try:
            with np.load(path, allow_pickle=False) as arrays:
                if "x" not in arrays or "y" not in arrays:
                    found = ", ".join(arrays.files) or "nothing"
                    raise UserError(
                        f"channel {name}: {path.name} must hold arrays 'x' and 'y' (found {found})"
                    )
                x, y = arrays["x"], arrays["y"]
        except (OSError, ValueError) as exc:
            raise UserError(f"channel {name}: cannot read {path.name}: {exc}") from exc
        all_uint8 &= x.dtype == np.uint8
        xs.append(_as_nchw(name, path, x))
        if y.ndim != 1 or len(y) != len(x):
            raise UserError(
                f"channel {name}: {path.name}: y must be 1-D with one label per image "
                f"(x has {len(x)} images, y has shape {list(y.shape)})"
            )
        ys.append(y.astype(str))
    shapes = {x.shape[1:] for x in xs}
    if len(shapes) > 1:
        raise UserError(f"channel {name}: .npz files hold images of different shapes {shapes}")
    if len({part.dtype for part in xs}) > 1:
        xs = [part.astype(np.float32) for part in xs]
    x = np.concatenate(xs) if len(xs) > 1 else xs[0]
    peak = max(abs(float(x.max())), abs(float(x.min()))) if x.size else 1.0
    scale = 255.0 if all_uint8 else (1.0 if peak <= 1.0 else peak)
    return ImageSet(x, np.concatenate(ys), f"{root} (npz)", scale)


# dtypes kept as stored (torch has them all, on every device); others become float32, and
# uint16 (which torch barely supports) int32.
_STORED = (np.uint8, np.int8, np.int16, np.int32, np.float16, np.float32)


def _stored_dtype(x: np.ndarray) -> np.dtype:
    if any(x.dtype == kept for kept in _STORED):
        return x.dtype
    return np.dtype(np.int32) if x.dtype == np.uint16 else np.dtype(np.float32)


def _as_nchw(name: str, path: Path, x: np.ndarray) -> np.ndarray:
    """[N,C,H,W] in the stored dtype (see _STORED)."""
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise UserError(f"channel {name}: {path.name}: x must be numeric, not {x.dtype}")
    dtype = _stored_dtype(x)
    if x.ndim == 3:
        return x.astype(dtype, copy=False)[:, None, :, :]
    if x.ndim == 4 and x.shape[1] <= 4:
        return x.astype(dtype, copy=False)
    if x.ndim == 4 and x.shape[3] <= 4:
        # Channels-last arrays (what PIL and most loaders produce) are common enough to accept.
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(dtype, copy=False)
    raise UserError(
        f"channel {name}: {path.name}: x must be [N,H,W] or [N,C,H,W], got shape {list(x.shape)}"
    )


def _scan_image_folder(name: str, root: Path) -> FolderSet:
    try:
        from PIL import Image
    except ImportError as exc:
        raise UserError(f"channel {name}: reading image folders needs Pillow") from exc
    files = data_files(root, IMAGE_SUFFIXES)
    loose = [path for path in files if path.parent == root]
    if loose:
        raise UserError(
            f"channel {name}: images must sit in one subfolder per class, "
            f"but {loose[0].name} is at the top of the channel"
        )
    # Headers only, of a sample spread over the folder: a million files are not opened twice.
    # A file that fails later, while training, stops the run with the same kind of error.
    step = max(1, len(files) // _SAMPLED)
    modes, first_size = [], (0, 0)
    for path in files[::step][:_SAMPLED]:
        try:
            with Image.open(path) as image:
                modes.append(image.mode)
                first_size = first_size if modes[1:] else image.size
        except OSError as exc:
            raise UserError(f"channel {name}: cannot read image {path.name}: {exc}") from exc
    # The class is the first folder under the channel root, so nested layouts still work.
    labels = np.array([path.relative_to(root).parts[0] for path in files])
    grey = all(mode in _GREY_MODES for mode in modes)
    return FolderSet([str(p) for p in files], labels, f"{root} (image folder)", grey, first_size)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((*x.shape[:2], size, size), dtype=np.float32)
    for i, image in enumerate(x):
        for c, plane in enumerate(image):
            plane_image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
            resized = plane_image.resize((size, size), Image.Resampling.BILINEAR)
            out[i, c] = np.asarray(resized)
    return out


@dataclass(frozen=True)
class Splits:
    """Normalised train and validation arrays in memory, labels as indices into `classes`.
    The model's input is ((raw / scale) - mean) / std per channel."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[str]
    mean: list[float]
    std: list[float]
    source: str
    scale: float = 1.0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.x_train.shape[1:]
        return int(channels), int(height), int(width)


@dataclass(frozen=True)
class RawSplits:
    """Arrays for the standard networks, kept as stored (dtype, size: no float copy at the
    network's size): each batch is resized (bilinear, antialiased) to `size`, divided by
    `scale` (`val_scale` for the validation array), grey repeated to 3 channels (RGBA loses
    alpha) and standardised with ImageNet's `mean` and `std` on the device (pipeline.py)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[str]
    size: tuple[int, int]
    source: str
    scale: float = 1.0
    val_scale: float = 1.0
    grey_repeated: bool = False
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return 3, self.size[0], self.size[1]


@dataclass(frozen=True)
class FolderSplits:
    """Train and validation files of an image folder, decoded while training: resized and
    cropped to image_size square, `channels` 1 (grey) or 3, scaled by 1/255 and standardised
    with `mean` and `std`. `imagenet`: the standard networks' geometry (random resized crop
    and flip, centre 87.5 % for validation) rather than the small network's (the whole
    centre square, shifted a few pixels)."""

    train_files: list[str]
    y_train: np.ndarray
    val_files: list[str]
    y_val: np.ndarray
    classes: list[str]
    channels: int
    image_size: int
    mean: list[float]
    std: list[float]
    source: str
    scale: float = 255.0
    imagenet: bool = False
    grey_repeated: bool = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.channels, self.image_size, self.image_size


def make_splits(
    train: ImageSet | FolderSet,
    validation: ImageSet | FolderSet | None,
    *,
    validation_split: float,
    seed: int,
    imagenet: bool = False,
    image_size: int = 0,
) -> Splits | FolderSplits | RawSplits:
    """Map labels to classes, hold out a stratified validation split when no validation
    channel was given, and settle the normalisation (see the module's docstring)."""
    if validation is not None and type(validation) is not type(train):
        raise UserError(
            "the train and validation channels must be of one kind: both .npz files or both "
            "image folders"
        )
    classes = _sorted_classes(np.unique(train.labels))
    if len(classes) < 2:
        raise UserError(f"training data has {len(classes)} class; at least 2 are needed")
    index = {name: i for i, name in enumerate(classes)}
    y = np.array([index[label] for label in train.labels], dtype=np.int64)
    if validation is None:
        train_rows, val_rows = holdout_split(y, validation_split, seed, stratify=True)
        y_train, y_val = y[train_rows], y[val_rows]
    else:
        unknown = sorted(set(validation.labels) - set(classes))
        if unknown:
            raise UserError(f"validation data has classes not in training data: {unknown[:5]}")
        train_rows, val_rows = np.arange(len(y)), np.arange(len(validation))
        y_train = y
        y_val = np.array([index[label] for label in validation.labels], dtype=np.int64)
    if len(y_val) == 0:
        raise UserError("the validation split is empty; add data or raise validation_split")
    held = validation if validation is not None else train
    if isinstance(train, FolderSet):
        assert isinstance(held, FolderSet)
        grey = train.grey and held.grey and not imagenet
        size = image_size or (DEFAULT_STANDARD_SIZE if imagenet else min(train.first_size))
        return FolderSplits(
            train_files=[train.files[i] for i in train_rows],
            y_train=y_train,
            val_files=[held.files[i] for i in val_rows],
            y_val=y_val,
            classes=classes,
            channels=1 if grey else 3,
            image_size=int(size),
            mean=GREY_MEAN if grey else IMAGENET_MEAN,
            std=GREY_STD if grey else IMAGENET_STD,
            source=train.source,
            imagenet=imagenet,
            grey_repeated=imagenet and train.grey and held.grey,
        )
    assert isinstance(held, ImageSet)
    if imagenet:
        return _raw_splits(train, held, train_rows, y_train, val_rows, y_val, classes, image_size)
    if held.x.shape[1:] != train.x.shape[1:]:
        raise UserError(
            f"validation images are {list(held.x.shape[1:])}, training images "
            f"{list(train.x.shape[1:])}; set image_size to bring both to one size"
        )
    x_train = train.x[train_rows].astype(np.float32, copy=False)
    x_val = held.x[val_rows].astype(np.float32, copy=False)
    mean = x_train.mean(axis=(0, 2, 3))
    std = x_train.std(axis=(0, 2, 3)) + 1e-6
    scale = (mean[None, :, None, None], std[None, :, None, None])
    return Splits(
        x_train=((x_train - scale[0]) / scale[1]).astype(np.float32),
        y_train=y_train,
        x_val=((x_val - scale[0]) / scale[1]).astype(np.float32),
        y_val=y_val,
        classes=classes,
        mean=mean.tolist(),
        std=std.tolist(),
        source=train.source,
    )


def _raw_splits(
    train: ImageSet,
    held: ImageSet,
    train_rows: np.ndarray,
    y_train: np.ndarray,
    val_rows: np.ndarray,
    y_val: np.ndarray,
    classes: list[str],
    image_size: int,
) -> RawSplits:
    for images in (train, held):
        if images.x.shape[1] not in (1, 3, 4):
            raise UserError(
                f"the standard networks take grey or RGB(A) images; these have "
                f"{images.x.shape[1]} channels (use arch=small)"
            )
    if not image_size and held.x.shape[2:] != train.x.shape[2:]:
        raise UserError(
            f"validation images are {list(held.x.shape[1:])}, training images "
            f"{list(train.x.shape[1:])}; set image_size to bring both to one size"
        )
    height, width = train.x.shape[2:]
    # A holdout split of the train channel copies the selected rows (in the stored dtype);
    # with a validation channel both arrays are used as they are.
    split = held is train
    x_train = train.x[train_rows] if split else train.x
    x_val = held.x[val_rows] if split else held.x
    return RawSplits(
        x_train=np.ascontiguousarray(x_train),
        y_train=y_train,
        x_val=np.ascontiguousarray(x_val),
        y_val=y_val,
        classes=classes,
        size=(image_size, image_size) if image_size else (int(height), int(width)),
        source=train.source,
        scale=train.scale,
        val_scale=held.scale,
        grey_repeated=train.x.shape[1] == 1 or held.x.shape[1] == 1,
    )


def _sorted_classes(labels: np.ndarray) -> list[str]:
    names = [str(label) for label in labels]
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)
