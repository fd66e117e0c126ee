"""Image datasets as numpy arrays: the built-in digits, `.npz` files, or an image folder.

A channel directory holds either `.npz` files (arrays `x` as [N,H,W] or [N,C,H,W], and `y`)
or one subfolder per class with image files in it (PNG, JPEG, BMP, GIF).
Everything is loaded before torch is imported, so bad data fails in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from evaluation import holdout_split
from sm_contract import UserError, data_files

__all__ = ["BUILTIN_SOURCE", "ImageSet", "Splits", "load_builtin", "load_channel", "make_splits"]

BUILTIN_SOURCE = "builtin:sklearn.datasets.load_digits"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class ImageSet:
    """Images [N,C,H,W] float32, labels as strings (mapped to classes by the caller)."""

    x: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def load_builtin() -> ImageSet:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    return ImageSet(images, digits.target.astype(str), BUILTIN_SOURCE)


def load_channel(name: str, root: Path, *, image_size: int) -> ImageSet:
    """Load channel `name` from `root`, resized to image_size x image_size when it is > 0."""
    if data_files(root, [".npz"]):
        images = _load_npz(name, root)
    elif data_files(root, IMAGE_SUFFIXES):
        images = _load_image_folder(name, root, image_size)
    else:
        raise UserError(
            f"channel {name}: found no .npz files and no class subfolders of images in {root}"
        )
    if image_size and images.x.shape[-2:] != (image_size, image_size):
        images = ImageSet(_resize(images.x, image_size), images.labels, images.source)
    return images


def _load_npz(name: str, root: Path) -> ImageSet:
    xs, ys = [], []
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
    return ImageSet(np.concatenate(xs), np.concatenate(ys), f"{root} (npz)")


def _as_nchw(name: str, path: Path, x: np.ndarray) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"channel {name}: {path.name}: x must be numeric, not {x.dtype}")
    if x.ndim == 3:
        return x.astype(np.float32)[:, None, :, :]
    if x.ndim == 4 and x.shape[1] <= 4:
        return x.astype(np.float32)
    if x.ndim == 4 and x.shape[3] <= 4:
        # Channels-last arrays (what PIL and most loaders produce) are common enough to accept.
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)
    raise UserError(
        f"channel {name}: {path.name}: x must be [N,H,W] or [N,C,H,W], got shape {list(x.shape)}"
    )


def _load_image_folder(name: str, root: Path, image_size: int) -> ImageSet:
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
    opened = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
                opened.append((path, image.copy()))
        except OSError as exc:
            raise UserError(f"channel {name}: cannot read image {path.name}: {exc}") from exc
    mode = "L" if all(image.mode in ("1", "L", "LA", "I", "I;16") for _, image in opened) else "RGB"
    arrays = []
    first_size = opened[0][1].size
    for path, image in opened:
        image = image.convert(mode)
        if image_size:
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        elif image.size != first_size:
            raise UserError(
                f"channel {name}: images differ in size ({first_size[0]}x{first_size[1]} and "
                f"{image.size[0]}x{image.size[1]} in {path.name}); set image_size to resize them"
            )
        array = np.asarray(image, dtype=np.float32)
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    # The class is the first folder under the channel root, so nested layouts still work.
    labels = np.array([path.relative_to(root).parts[0] for path, _ in opened])
    return ImageSet(np.stack(arrays), labels, f"{root} (image folder)")


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
    """Normalised train and validation arrays, labels as indices into `classes`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[str]
    mean: list[float]
    std: list[float]
    source: str


def make_splits(
    train: ImageSet, validation: ImageSet | None, *, validation_split: float, seed: int
) -> Splits:
    """Map labels to classes, hold out a stratified validation split when no validation
    channel was given, and standardise each channel with the training mean and std."""
    classes = _sorted_classes(np.unique(train.labels))
    if len(classes) < 2:
        raise UserError(f"training data has {len(classes)} class; at least 2 are needed")
    index = {name: i for i, name in enumerate(classes)}
    y = np.array([index[label] for label in train.labels], dtype=np.int64)
    if validation is None:
        train_rows, val_rows = holdout_split(y, validation_split, seed, stratify=True)
        x_train, y_train = train.x[train_rows], y[train_rows]
        x_val, y_val = train.x[val_rows], y[val_rows]
    else:
        unknown = sorted(set(validation.labels) - set(classes))
        if unknown:
            raise UserError(f"validation data has classes not in training data: {unknown[:5]}")
        if validation.x.shape[1:] != train.x.shape[1:]:
            raise UserError(
                f"validation images are {list(validation.x.shape[1:])}, training images "
                f"{list(train.x.shape[1:])}; set image_size to bring both to one size"
            )
        x_train, y_train = train.x, y
        x_val = validation.x
        y_val = np.array([index[label] for label in validation.labels], dtype=np.int64)
    if len(y_val) == 0:
        raise UserError("the validation split is empty; add data or raise validation_split")
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


def _sorted_classes(labels: np.ndarray) -> list[str]:
    names = [str(label) for label in labels]
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)
