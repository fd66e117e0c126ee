"""Batches for the training loop, ready on the device.

`TensorFeed`: arrays that fit in memory (.npz, the built-in digits) go to the device once;
a batch is an index into them, augmented there by random shifts. For the small network they
are already standardised; for the standard networks (`RawSplits`) they stay as stored
(uint8 at the source size, say) and each batch is resized, scaled, made RGB and
standardised on the device.

`FolderFeed`: an image folder is decoded while training by DataLoader worker processes
(`num_workers`; 0 picks from the host's CPUs, and none for small data), each picture resized
and cropped to image_size. The standard networks get ImageNet-style augmentation: a random
resized crop (35-100 % of the area) and a horizontal flip, and the centre crop (87.5 % of the
shorter side) for validation. The small network sees the whole centre square, shifted by up
to an eighth of image_size (border pixels repeated) when training with augment: what it is
tuned for (digits, glyphs, icons), where a flip or a tight crop changes the class. 16-bit and
float pictures are brought to 8 bits first (`eight_bit`). Batches travel as uint8
(a quarter of the bytes) in pinned memory, copied without blocking while the GPU works on the
previous step, and are scaled and standardised on the device.

Augmentation draws from a generator seeded by (seed, epoch, image), so a run gives the same
result whatever the number of workers.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from image_data import FolderSplits, RawSplits, Splits
from sm_contract import UserError
from step import ExecutionPlan
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "FolderDataset",
    "FolderFeed",
    "RawFeed",
    "TensorFeed",
    "eight_bit",
    "make_feed",
    "worker_count",
]

EVAL_BATCH = 1024
FOLDER_EVAL_BATCH = 256
# Below this many images, worker processes cost more to start than they save.
SMALL_DATA = 512
MAX_AUTO_WORKERS = 16
CROP_SCALE = (0.35, 1.0)  # of the picture's area: lighter than ImageNet's (0.08, 1)
CROP_RATIO = (3 / 4, 4 / 3)
VAL_CROP = 0.875  # resize 256, crop 224 (the standard networks)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")

Batch = tuple[torch.Tensor, torch.Tensor]


def worker_count(requested: int, images: int, env: Any = None) -> int:
    """`requested`, or when 0: none for small data, else the CPUs this process may use
    shared among the processes of this host (less one for the training loop), up to 16."""
    if requested:
        return requested
    if images < SMALL_DATA:
        return 0
    env = os.environ if env is None else env
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    local = max(1, int(env.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(MAX_AUTO_WORKERS, cpus // local - 1))


class TensorFeed:
    """In-memory arrays on the device, batches by index, random shifts for augmentation."""

    eval_batch = EVAL_BATCH

    def __init__(
        self, splits: Splits | RawSplits, plan: ExecutionPlan, *, augment: bool, seed: int
    ):
        self.plan, self.seed = plan, seed
        device = plan.device
        self.x_train = torch.from_numpy(splits.x_train).to(device)
        self.y_train = torch.from_numpy(splits.y_train).to(device)
        self.x_val = torch.from_numpy(splits.x_val).to(device)
        self.y_val = torch.from_numpy(splits.y_val).to(device)
        self.shift = max(1, round(min(splits.input_shape[1:]) / 8)) if augment else 0
        self.workers = 0

    def _prepared(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        """A batch of the held arrays as the network takes it (these are already)."""
        return x

    def train_batches(self, epoch: int, rank: int, batches: Sequence[list[int]]) -> Iterator[Batch]:
        device = self.plan.device
        # On the device, like the data: a CPU generator's draws (and per-step indices or
        # .item() calls) would each be a host-device synchronisation, which left the GPU idle
        # between steps. The epoch's row order goes over once.
        rng = torch.Generator(device=device).manual_seed(self.seed * 100_003 + epoch * 31 + rank)
        order = torch.tensor([row for rows in batches for row in rows], device=device)
        offset = 0
        for rows in batches:
            index = order[offset : offset + len(rows)]
            offset += len(rows)
            xb, yb = self._prepared(self.x_train[index], train=True), self.y_train[index]
            if self.shift:
                xb = _random_shift(xb, self.shift, rng)
            yield self.plan.input(xb), yb

    def val_batches(self) -> Iterator[Batch]:
        step = self.eval_batch
        for start in range(0, len(self.y_val), step):
            xb = self._prepared(self.x_val[start : start + step], train=False)
            yield self.plan.input(xb), self.y_val[start : start + step]

    def close(self) -> None:
        pass


class RawFeed(TensorFeed):
    """The standard networks' arrays, held as stored (dtype and size); each batch is resized
    to the network's size (bilinear, antialiased, as PIL resizes), scaled into [0, 1], made
    3 channels (grey repeated, RGBA's alpha dropped) and standardised with ImageNet's mean and
    std, on the device. Augmentation: the same random shifts, at the network's size."""

    eval_batch = FOLDER_EVAL_BATCH

    def __init__(self, splits: RawSplits, plan: ExecutionPlan, *, augment: bool, seed: int):
        super().__init__(splits, plan, augment=augment, seed=seed)
        device = plan.device
        self.size = splits.size
        self.scales = {True: splits.scale, False: splits.val_scale}
        self.mean = torch.tensor(splits.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(splits.std, device=device).view(1, 3, 1, 1)

    def _prepared(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        x = x[:, :3].float()  # RGBA: the alpha channel is dropped
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True)
        x = (x / self.scales[train] - self.mean) / self.std  # grey broadcasts to 3 channels
        return x.contiguous()


class FolderDataset(Dataset[tuple[torch.Tensor, int]]):
    """Pictures decoded to uint8 [H, W, C] tensors; an item is asked for as (row, epoch)."""

    def __init__(
        self,
        files: Sequence[str],
        labels: np.ndarray,
        *,
        image_size: int,
        grey: bool,
        augment: bool,
        seed: int,
        imagenet: bool = True,
    ) -> None:
        # One numpy array of bytes, not a list of str: forked workers touching a million
        # Python objects would copy the pages that hold their reference counts.
        self.files = np.array([os.fsencode(f) for f in files])
        self.labels = labels
        self.size, self.mode = image_size, ("L" if grey else "RGB")
        self.augment, self.seed, self.imagenet = augment, seed, imagenet
        self.shift = max(1, round(image_size / 8)) if augment and not imagenet else 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        from PIL import Image

        row, epoch = key
        path = os.fsdecode(self.files[row])
        try:
            with Image.open(path) as image:
                # JPEG decodes at 1/2, 1/4 or 1/8 scale when that still leaves enough pixels.
                need = self.size * (2 if self.augment else 1.2)
                image.draft(self.mode, (math.ceil(need), math.ceil(need)))
                picture = eight_bit(image).convert(self.mode)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # OSError: truncated or not a picture; SyntaxError: a broken PNG chunk.
            raise UserError(f"image folder: cannot read image {path}: {exc}") from exc
        size = (self.size, self.size)
        rng = np.random.default_rng([self.seed, epoch, row]) if self.augment else None
        if rng is not None and self.imagenet:
            picture = picture.resize(size, Image.Resampling.BILINEAR, box=_random_box(picture, rng))
            if rng.random() < 0.5:
                picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            share = VAL_CROP if self.imagenet else 1.0
            box = _centre_box(picture, share)
            picture = picture.resize(size, Image.Resampling.BILINEAR, box=box)
        array = np.asarray(picture, dtype=np.uint8)
        array = array[:, :, None] if array.ndim == 2 else array
        if rng is not None and self.shift:
            array = _shifted(array, self.shift, rng)
        return torch.from_numpy(array.copy()), int(self.labels[row])


def eight_bit(image: Any) -> Any:
    """A picture in 8 bits per channel. Pillow's convert("L") clips 16-bit and float values
    at 255 (a 16-bit picture would come out white), so they are scaled first, by the range
    their largest value implies: I;16 keeps its high byte, and so does a 32-bit integer (I)
    picture whose values fit 16 bits (one up to 255 is kept as it is); a float (F) picture
    up to 1.0 is taken as [0, 1], up to 255 as 8-bit, up to 65535 as 16-bit values; anything
    larger is scaled by its own maximum. Negative values become 0. Other modes are returned
    as they are."""
    from PIL import Image

    mode = image.mode
    if mode not in (*_SIXTEEN_BIT, "I", "F"):
        return image
    values = np.asarray(image)
    peak = float(values.max()) if values.size else 0.0
    if mode in _SIXTEEN_BIT or (mode == "I" and 255 < peak <= 65535):
        high_byte = np.clip(values.astype(np.int64), 0, 65535) >> 8
        return Image.fromarray(high_byte.astype(np.uint8), "L")
    if mode == "F" and peak <= 1.0:
        top = 1.0
    elif peak <= 255:
        top = 255.0
    elif peak <= 65535:
        top = 65535.0
    else:
        top = peak
    scaled = np.clip(values.astype(np.float64) * (255.0 / top), 0, 255)
    return Image.fromarray(np.rint(scaled).astype(np.uint8), "L")


def _shifted(array: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """The picture [H, W, C] moved by up to `shift` pixels each way, the border repeated into
    the gap (what the small network's in-memory feed does on the device)."""
    height, width = array.shape[:2]
    padded = np.pad(array, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
    dy, dx = rng.integers(0, 2 * shift + 1, size=2)
    return padded[dy : dy + height, dx : dx + width]


def _random_box(picture: Any, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """torchvision's RandomResizedCrop region: an area share and aspect ratio at random."""
    width, height = picture.size
    area = width * height
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = math.sqrt(target * ratio)
        h = math.sqrt(target / ratio)
        if 0 < w <= width and 0 < h <= height:
            left = rng.uniform(0, width - w)
            top = rng.uniform(0, height - h)
            return left, top, left + w, top + h
    return _centre_box(picture, share=1.0)


def _centre_box(picture: Any, share: float = VAL_CROP) -> tuple[float, float, float, float]:
    width, height = picture.size
    side = min(width, height) * share
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


class _EpochBatches:
    """The batch sampler: this epoch's batches of rows, each row tagged with the epoch. The
    loader iterates it in the main process, so persistent workers see each new epoch."""

    def __init__(self) -> None:
        self.batches: Sequence[list[int]] = []
        self.epoch = 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for rows in self.batches:
            yield [(row, self.epoch) for row in rows]

    def __len__(self) -> int:
        return len(self.batches)


class FolderFeed:
    """An image folder decoded by DataLoader workers, batches standardised on the device."""

    def __init__(
        self, splits: FolderSplits, plan: ExecutionPlan, *, augment: bool, seed: int, workers: int
    ) -> None:
        self.plan = plan
        self.workers = workers
        grey = splits.channels == 1
        common = {
            "image_size": splits.image_size,
            "grey": grey,
            "seed": seed,
            "imagenet": splits.imagenet,
        }
        train = FolderDataset(splits.train_files, splits.y_train, augment=augment, **common)
        val = FolderDataset(splits.val_files, splits.y_val, augment=False, **common)
        self.sampler = _EpochBatches()
        rows = list(range(len(splits.val_files)))
        val_batches = _EpochBatches()
        step = FOLDER_EVAL_BATCH
        val_batches.batches = [rows[i : i + step] for i in range(0, len(rows), step)]
        # Training keeps its workers from epoch to epoch; validation starts them each time,
        # so two sets of idle processes don't sit side by side.
        self.train_loader = self._loader(train, self.sampler, persistent=True)
        self.val_loader = self._loader(val, val_batches, persistent=False)
        device = plan.device
        mean = torch.tensor(splits.mean, device=device).view(1, -1, 1, 1) * 255
        std = torch.tensor(splits.std, device=device).view(1, -1, 1, 1) * 255
        self.shift, self.inverse_scale = mean, 1 / std

    def _loader(
        self, dataset: FolderDataset, sampler: _EpochBatches, *, persistent: bool
    ) -> DataLoader[Any]:
        workers = self.workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.plan.device.type == "cuda",
            persistent_workers=persistent and workers > 0,
            worker_init_fn=_ignore_stop_signals if workers else None,
            prefetch_factor=4 if workers else None,
        )

    def _on_device(self, batch: Sequence[torch.Tensor]) -> Batch:
        images, labels = batch
        device = self.plan.device
        x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = x.sub_(self.shift).mul_(self.inverse_scale)
        # [N,H,W,C] permuted is already channels-last; otherwise made contiguous NCHW.
        x = x if self.plan.channels_last else x.contiguous()
        return x, labels.to(device, non_blocking=True)

    def train_batches(self, epoch: int, rank: int, batches: Sequence[list[int]]) -> Iterator[Batch]:
        self.sampler.batches, self.sampler.epoch = batches, epoch
        for batch in _reraised(self.train_loader):
            yield self._on_device(batch)

    def val_batches(self) -> Iterator[Batch]:
        for batch in _reraised(self.val_loader):
            yield self._on_device(batch)

    def close(self) -> None:
        for loader in (self.train_loader, self.val_loader):
            iterator = getattr(loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()


def _ignore_stop_signals(_worker_id: int) -> None:
    """A worker outlives a SIGTERM or SIGINT sent to the whole process group (how the local
    runner stops a job, and what Ctrl-C in a shell sends): the training process finishes its
    step, keeps its checkpoint and exits 143, shutting its workers down. PyTorch's own worker
    handling would end the worker at once and fail the training process with a RuntimeError."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _reraised(loader: DataLoader[Any]) -> Iterator[Any]:
    """The loader's batches; an unreadable picture in a worker becomes one clean UserError
    (the loader re-raises it with the worker's traceback in the message)."""
    try:
        yield from loader
    except UserError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        last = lines[-1] if lines else str(exc)
        raise UserError(last.split("UserError: ", 1)[-1]) from None


def make_feed(
    splits: Splits | FolderSplits | RawSplits,
    plan: ExecutionPlan,
    *,
    augment: bool,
    seed: int,
    num_workers: int,
) -> TensorFeed | FolderFeed:
    if isinstance(splits, FolderSplits):
        workers = worker_count(num_workers, len(splits.train_files))
        return FolderFeed(splits, plan, augment=augment, seed=seed, workers=workers)
    if isinstance(splits, RawSplits):
        return RawFeed(splits, plan, augment=augment, seed=seed)
    return TensorFeed(splits, plan, augment=augment, seed=seed)


def _random_shift(x: torch.Tensor, shift: int, rng: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `shift` pixels, repeating the border into the gap.
    `rng` is a generator on x's device."""
    n, _, height, width = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=rng, device=x.device)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=rng, device=x.device)
    rows = (torch.arange(height, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(width, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]
