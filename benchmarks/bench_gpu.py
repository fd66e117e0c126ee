"""GPU throughput: image-classification training samples/s with mixed precision (AMP) on vs
off. Only where a GPU is present (``torch.cuda.is_available()``); elsewhere it says it was
skipped and exits 0.

    .venv/bin/python benchmarks/bench_gpu.py [--images 20000] [--epochs 6]
        [--batch-sizes 256,1024] [--cpu]

The script runs directly (no bot) in a run folder prepared exactly as the local backend
prepares one for pool ``gpu-1`` (one visible GPU, SM_* environment), on a synthetic .npz
train channel (3×32×32 images, 10 classes) larger than the built-in digits. Throughput is
measured from the script's own per-epoch lines: train samples × (epochs − 1) over the time
between the first and the last ``epoch=k/N`` line, so start-up, data loading and the first
(warm-up) epoch don't count (each epoch's validation and checkpoint do, as in a real run).
``--cpu`` runs the same procedure on the CPU with a small data set (AMP has no effect
there) — to check the benchmark itself.

Two batch sizes: the preset's default (256), where this small network's step is bound by
per-step overhead rather than arithmetic, and 1024, where the tensor cores matter. No
target: the issue asks for the figures; what they show is where AMP pays.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

RUN_TIMEOUT_S = 240
TARGET = "none (samples/s, AMP on vs off)"
_EPOCH = re.compile(r"epoch=(\d+)/(\d+)")
_ANNOUNCE = re.compile(r"device=(\w+) amp=(\w+).*?train=(\d+)")


def _dataset(folder: Path, images: int, size: int = 32) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, images)
    # Learnable: each class has its own mean pattern, plus noise.
    patterns = rng.normal(0, 1, (10, 3, size, size)).astype("float32")
    x = patterns[y] + rng.normal(0, 1.5, (images, 3, size, size)).astype("float32")
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "synthetic.npz", x=x, y=y)


def run(deps: Any, root: Path, data: Path, *, amp: bool, epochs: int, batch: int,
        pool: str, tag: str) -> dict[str, Any]:
    from bench_local_overhead import prepare_direct

    params = {"epochs": epochs, "batch_size": batch, "amp": amp, "width": 32, "augment": False}
    run_dir, record, env = prepare_direct(deps, "image-classification", f"gpu-{tag}", root,
                                          params=params, pool=pool,
                                          data={"train": data.as_uri()})
    marks: list[tuple[int, float]] = []
    announce: dict[str, Any] = {}
    began = time.perf_counter()
    proc = subprocess.Popen(record["command"], cwd=record["cwd"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            now = time.perf_counter()
            tail = [*tail, line.rstrip()][-5:]
            if (m := _ANNOUNCE.search(line)) and not announce:
                announce = {"device": m.group(1), "amp": m.group(2), "train": int(m.group(3))}
            elif m := _EPOCH.search(line):
                marks.append((int(m.group(1)), now))
            if now - began > RUN_TIMEOUT_S:
                proc.kill()
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wall = time.perf_counter() - began
    throughput = None
    if len(marks) >= 2 and announce.get("train"):
        (first, t1), (last, t2) = marks[0], marks[-1]
        if t2 > t1:
            throughput = announce["train"] * (last - first) / (t2 - t1)
    return {"amp": amp, "code": code, "wall": wall, "throughput": throughput,
            "announce": announce, "epochs_seen": len(marks), "tail": tail,
            "run": run_dir.root}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-sizes", default="256,1024",
                        help="comma-separated; each is measured AMP off/on/off/on")
    parser.add_argument("--cpu", action="store_true",
                        help="run the procedure on the CPU (small data) to check it")
    args = parser.parse_args(argv)
    c.fake_aws_env()
    try:
        import torch
    except ImportError:
        print("skipped: torch is not installed here")
        c.result("gpu throughput", "skipped: no torch", TARGET, "SKIP")
        return 0
    has_gpu = torch.cuda.is_available()
    if not has_gpu and not args.cpu:
        print("skipped: no GPU on this machine (torch.cuda.is_available() is False)")
        print("summary: GPU throughput skipped — no GPU")
        c.result("gpu throughput", "skipped: no GPU on this machine", TARGET, "SKIP")
        return 0
    if has_gpu:
        name = torch.cuda.get_device_name(0)
        images, pool = args.images, "gpu-1"
    else:
        name, images, pool = "CPU (--cpu check; AMP is a no-op here)", min(args.images, 2000), \
            "local-cpu"
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    print(f"gpu throughput: image-classification on {name}; {images} synthetic 3×32×32 "
          f"images, {args.epochs} epochs, batch sizes {batch_sizes}, width 32, no augmentation")

    from bench_local_overhead import make_deps

    figures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        root = Path(tmp)
        deps, _ = make_deps(root / "home")
        data = root / "data" / "train"
        _dataset(data, images)
        for batch in batch_sizes:
            results = []
            # Off, on, off, on: alternating, so drift (clocks, other work) hits both.
            for i, amp in enumerate((False, True, False, True)):
                r = run(deps, root, data, amp=amp, epochs=args.epochs, batch=batch,
                        pool=pool, tag=f"b{batch}-{i}")
                results.append(r)
                shown = f"{r['throughput']:,.0f} samples/s" if r["throughput"] else "no figure"
                print(f"  batch {batch} amp={'on ' if amp else 'off'} run {i // 2 + 1}: {shown}, "
                      f"wall {r['wall']:.1f} s, exit {r['code']}, script says "
                      f"{r['announce'] or '-'}")
                if r["code"] != 0:
                    print("    " + "\n    ".join(r["tail"]))
            on = [r["throughput"] for r in results if r["amp"] and r["throughput"]]
            off = [r["throughput"] for r in results if not r["amp"] and r["throughput"]]
            if not on or not off:
                print(f"  batch {batch}: no throughput figure (see the runs above)")
                figures.append(f"batch {batch}: no figure")
                continue
            best_on, best_off = max(on), max(off)
            print(f"  batch {batch}: AMP on {best_on:,.0f} vs off {best_off:,.0f} samples/s "
                  f"(best of 2 each) → {best_on / best_off:.2f}×")
            figures.append(f"batch {batch}: on {best_on:,.0f} vs off {best_off:,.0f} samples/s "
                           f"({best_on / best_off:.2f}×)")
    measured = [f for f in figures if "no figure" not in f]
    figure = "; ".join(figures)
    print(f"summary: AMP {figure} on {name}")
    c.result("gpu throughput", f"AMP {figure}", TARGET, "INFO" if measured else "FAIL")
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
