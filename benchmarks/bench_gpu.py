"""GPU throughput of image-classification: its training step against a plain PyTorch loop,
and its input pipeline against the GPU's step rate.

    .venv/bin/python benchmarks/bench_gpu.py [--batch N] [--steps N] [--images N]
        [--workers N] [--optimizer adam|sgd] [--compile] [--cpu]

**Step.** ResNet-50 at 224×224, a synthetic batch already on the device (so only the step
counts), mixed precision (bfloat16 where the GPU has it, else float16 with gradient scaling),
channels-last. *trainbot* is the preset's own code, imported from
``algorithms/image-classification`` — ``architectures.build_model``,
``step.configure_backends`` / ``plan_execution`` / ``make_optimizer`` / ``TrainStep``, set
up as ``trainer.py`` sets them up (deterministic cuDNN, fused AdamW on CUDA). *plain* is the
loop anyone would write, here: the same network, ``torch.autocast``, channels-last,
``zero_grad`` / ``backward`` / ``step``, cuDNN left at PyTorch's defaults — and the same
optimizer implementation as trainbot's step (``plain_optimizer``: AdamW's fused CUDA kernel
on GPUs, Nesterov SGD otherwise as trainbot builds it), so the ratio compares the steps'
own code, not two optimizer kernels (PyTorch's default foreach AdamW is slower than fused).
Runs alternate trainbot, plain, trainbot, plain; each times ``--steps``
steps after warm-up steps; best of two each. The figure is trainbot ÷ plain (TARGET ≥ 0.95).
On a GPU a third loop, plain with ``cudnn.benchmark = True`` (autotuned, not deterministic),
is shown for information: what trainbot's determinism costs.

**Pipeline.** A generated image folder (``--images`` JPEGs of 256×256, 10 classes) through
the preset's ``pipeline.FolderFeed``: DataLoader workers (``--workers``, 0 = the preset's
automatic count) decode, random-resized-crop and flip to the step's size, batches of uint8
in pinned memory are copied without blocking and standardised on the device. images/s over
two epochs after a warm-up epoch (workers starting), compared with the step rate above:
≥ 1× means the pipeline keeps the device busy.

Without a GPU (or with ``--cpu``) the same procedure runs at CPU sizes — ResNet-18 at
64×64, batch 32, a few steps; 600 pictures — within a minute on 2 cores, and the GPU row
says "skipped: no GPU".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

ALGORITHM_DIR = c.ROOT / "algorithms" / "image-classification"
SHARED_DIR = c.ROOT / "algorithms" / "_shared"
RATIO_TARGET = 0.95
TARGET = f"trainbot step ≥ {RATIO_TARGET:.2f}× a plain loop (ResNet-50, 224 px)"
PIPELINE_TARGET = "≥ 1× the step rate"
PICTURE_SIZE = 256
CLASSES = 10


def preset_modules() -> dict[str, Any]:
    """The preset's own modules, imported as its train.py imports them."""
    for folder in (SHARED_DIR, ALGORITHM_DIR):
        if str(folder) not in sys.path:
            sys.path.insert(1, str(folder))
    import architectures
    import image_data
    import pipeline
    import step

    return {"architectures": architectures, "image_data": image_data, "pipeline": pipeline,
            "step": step}


class Setup:
    def __init__(self, *, device: Any, arch: str, size: int, batch: int, steps: int,
                 warmup: int, optimizer: str, compile: bool) -> None:
        self.device, self.arch, self.size, self.batch = device, arch, size, batch
        self.steps, self.warmup, self.optimizer, self.compile = steps, warmup, optimizer, compile
        self.hps = {"optimizer": optimizer, "lr": 0.001, "momentum": 0.9, "weight_decay": 5e-4}


def _batch(torch: Any, setup: Setup, plan: Any) -> tuple[Any, Any]:
    generator = torch.Generator(device=setup.device).manual_seed(0)
    x = torch.randn(setup.batch, 3, setup.size, setup.size, device=setup.device,
                    generator=generator)
    y = torch.randint(0, 1000, (setup.batch,), device=setup.device, generator=generator)
    return plan.input(x), y


def _timed(torch: Any, setup: Setup, run_step: Any) -> float:
    """images/s over setup.steps steps, after setup.warmup steps."""
    cuda = setup.device.type == "cuda"
    for _ in range(setup.warmup):
        run_step()
    if cuda:
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(setup.steps):
        run_step()
    if cuda:
        torch.cuda.synchronize()
    return setup.batch * setup.steps / (time.perf_counter() - began)


def trainbot_rate(mods: dict[str, Any], setup: Setup) -> tuple[float, str]:
    """The preset's step, set up as trainer.py sets it up."""
    import torch

    step = mods["step"]
    torch.manual_seed(0)
    step.configure_backends(deterministic=True)
    plan = step.plan_execution(setup.device, amp=True, compile=setup.compile)
    model = plan.place(mods["architectures"].build_model(
        {"name": setup.arch, "in_channels": 3, "num_classes": 1000}))
    optimizer = step.make_optimizer(setup.hps, model, setup.device)
    train_step = step.TrainStep(plan.wrap(model), optimizer, plan)
    model.train()
    x, y = _batch(torch, setup, plan)
    rate = _timed(torch, setup, lambda: train_step(x, y))
    return rate, plan.amp_name


def plain_rate(mods: dict[str, Any], setup: Setup, *, autotune: bool = False) -> float:
    """The loop a user would write around the same network."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.backends.cudnn.deterministic = False  # PyTorch's defaults
    torch.backends.cudnn.benchmark = autotune
    cuda = setup.device.type == "cuda"
    model = mods["architectures"].build_model(
        {"name": setup.arch, "in_channels": 3, "num_classes": 1000})
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(setup.device, memory_format=memory_format)
    model.train()
    optimizer = plain_optimizer(torch, model, setup)
    dtype = None
    if cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(setup.device.type, enabled=dtype == torch.float16)
    generator = torch.Generator(device=setup.device).manual_seed(0)
    x = torch.randn(setup.batch, 3, setup.size, setup.size, device=setup.device,
                    generator=generator).contiguous(memory_format=memory_format)
    y = torch.randint(0, 1000, (setup.batch,), device=setup.device, generator=generator)

    def one_step() -> None:
        with torch.autocast(setup.device.type, dtype=dtype or torch.float32,
                            enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    rate = _timed(torch, setup, one_step)
    return rate


def plain_optimizer(torch: Any, model: Any, setup: Setup) -> Any:
    """The plain loop's optimizer: written out here, but the same implementation that
    trainbot's ``step.make_optimizer`` picks (fused AdamW on CUDA), so that the step ratio
    compares like with like."""
    hps = setup.hps
    if setup.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=hps["lr"], momentum=hps["momentum"],
                               nesterov=True, weight_decay=hps["weight_decay"])
    fused = {"fused": True} if setup.device.type == "cuda" else {}
    return torch.optim.AdamW(model.parameters(), lr=hps["lr"],
                             weight_decay=hps["weight_decay"], **fused)


def make_pictures(root: Path, count: int) -> None:
    """`count` JPEGs of 256×256: smooth colour fields with noise, like photos to a decoder."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, PICTURE_SIZE, dtype=np.float32)
    for i in range(count):
        folder = root / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.uniform(0, 255, 3).astype(np.float32)
        slope = rng.uniform(-120, 120, (2, 3)).astype(np.float32)
        field = (base + ramp[:, None, None] * slope[0] + ramp[None, :, None] * slope[1])
        noise = rng.normal(0, 12, (PICTURE_SIZE, PICTURE_SIZE, 3)).astype(np.float32)
        pixels = np.clip(field + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def pipeline_rate(mods: dict[str, Any], setup: Setup, root: Path, workers: int
                  ) -> tuple[float, int]:
    """images/s of the preset's FolderFeed over two epochs after a warm-up epoch."""
    import torch

    image_data, pipeline, step = mods["image_data"], mods["pipeline"], mods["step"]
    images = image_data.load_channel("train", root, image_size=0)
    splits = image_data.make_splits(images, None, validation_split=0.05, seed=0, imagenet=True,
                                    image_size=setup.size)
    plan = step.plan_execution(setup.device, amp=True)
    feed = pipeline.make_feed(splits, plan, augment=True, seed=0, num_workers=workers)
    rows = list(range(len(splits.y_train)))
    batches = [rows[i:i + setup.batch] for i in range(0, len(rows), setup.batch)]
    cuda = setup.device.type == "cuda"
    try:
        seen, began = 0, 0.0
        for epoch in (1, 2, 3):
            if epoch == 2:
                if cuda:
                    torch.cuda.synchronize()
                began = time.perf_counter()
            for xb, _ in feed.train_batches(epoch, 0, batches):
                seen += len(xb) if epoch > 1 else 0
        if cuda:
            torch.cuda.synchronize()
        return seen / (time.perf_counter() - began), feed.workers
    finally:
        feed.close()


def measure(mods: dict[str, Any], setup: Setup, *, images: int, workers: int,
            autotune: bool) -> dict[str, Any]:
    trainbot, plain = [], []
    amp = "off"
    for _ in range(2):  # alternating, so drift (clocks, other work) hits both
        rate, amp = trainbot_rate(mods, setup)
        trainbot.append(rate)
        plain.append(plain_rate(mods, setup))
        print(f"  step: trainbot {rate:,.1f} img/s, plain {plain[-1]:,.1f} img/s", flush=True)
    tuned = plain_rate(mods, setup, autotune=True) if autotune else None
    if tuned:
        print(f"  step: plain with cudnn.benchmark {tuned:,.1f} img/s (not deterministic)")
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        root = Path(tmp) / "train"
        began = time.perf_counter()
        make_pictures(root, images)
        print(f"  pipeline: {images} JPEGs of {PICTURE_SIZE}×{PICTURE_SIZE} written in "
              f"{time.perf_counter() - began:.1f} s", flush=True)
        fed, used = pipeline_rate(mods, setup, root, workers)
    best_trainbot, best_plain = max(trainbot), max(plain)
    return {"trainbot": best_trainbot, "plain": best_plain, "ratio": best_trainbot / best_plain,
            "tuned": tuned, "amp": amp, "pipeline": fed, "workers": used,
            "feeds": fed / best_trainbot}


def describe(setup: Setup, r: dict[str, Any]) -> str:
    return (f"{setup.arch} {setup.size}px b{setup.batch} amp={r['amp']}: trainbot "
            f"{r['trainbot']:,.0f} vs plain {r['plain']:,.0f} img/s ({r['ratio']:.2f}×); "
            f"pipeline {r['pipeline']:,.0f} img/s with {_workers(r['workers'])} = "
            f"{r['feeds']:.2f}× the step rate")


def _workers(count: int) -> str:
    return f"{count} worker{'' if count == 1 else 's'}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=0, help="default 256 (GPU), 32 (CPU)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps; default 30 / 8")
    parser.add_argument("--images", type=int, default=0, help="pictures; default 4000 / 600")
    parser.add_argument("--workers", type=int, default=0, help="0: the preset's automatic count")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--compile", action="store_true", help="torch.compile trainbot's step")
    parser.add_argument("--cpu", action="store_true", help="the CPU figures even with a GPU")
    args = parser.parse_args(argv)
    c.fake_aws_env()
    try:
        import torch
    except ImportError:
        print("skipped: torch is not installed here")
        c.result("gpu throughput", "skipped: no torch", TARGET, "SKIP")
        return 0
    mods = preset_modules()
    gpu = torch.cuda.is_available() and not args.cpu
    if gpu:
        setup = Setup(device=torch.device("cuda", 0), arch="resnet50", size=224,
                      batch=args.batch or 256, steps=args.steps or 30, warmup=10,
                      optimizer=args.optimizer, compile=args.compile)
        name, images = torch.cuda.get_device_name(0), args.images or 4000
    else:
        setup = Setup(device=torch.device("cpu"), arch="resnet18", size=64,
                      batch=args.batch or 32, steps=args.steps or 8, warmup=2,
                      optimizer=args.optimizer, compile=args.compile)
        name, images = "CPU", args.images or 600
    print(f"gpu throughput on {name} (torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads): {setup.arch} at {setup.size}×{setup.size}, batch {setup.batch}, "
          f"{setup.optimizer}, {setup.steps} timed steps after {setup.warmup}", flush=True)
    r = measure(mods, setup, images=images, workers=args.workers, autotune=gpu)
    figure = describe(setup, r)
    print(f"TARGET: {TARGET}; pipeline {PIPELINE_TARGET}")
    if gpu:
        print(f"summary: {figure} on {name}")
        c.result("gpu throughput", figure, TARGET,
                 c.verdict(r["ratio"] >= RATIO_TARGET))
        c.result("gpu input pipeline", f"{r['pipeline']:,.0f} img/s, {_workers(r['workers'])} = "
                 f"{r['feeds']:.2f}× the step rate", PIPELINE_TARGET, c.verdict(r["feeds"] >= 1))
        return 0
    print("GPU: skipped: no GPU" if not torch.cuda.is_available() else "GPU: skipped: --cpu")
    print(f"summary: GPU skipped; CPU {figure}")
    c.result("gpu throughput", f"skipped: no GPU (CPU {figure})", TARGET, "SKIP")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
