"""image-classification under DDP when one rank fails: an unreadable picture in one rank's
shard, or in the validation set that rank 0 alone decodes, ends every rank at once (not after
the process group's timeout) with exit 2 and one `ERROR:` line naming the file.

The two processes are started as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR, …), but
by the test itself, so each one's exit status and output can be checked.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.algorithms.conftest import ALGORITHMS_DIR, import_modules, sm_env

ALGORITHM = "image-classification"
HPS = {"epochs": 2, "batch_size": 4, "seed": 5}
PROMPTLY = 60  # seconds; gloo's own timeout is 30 minutes

pytestmark = pytest.mark.slow


def pictures(root: Path, count: int = 8) -> None:
    """Two classes of 16x16 grey pictures: dark and light."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 60), ("light", 190)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = np.clip(level + rng.normal(0, 20, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / name / f"{i}.png")


def truncate(path: Path) -> None:
    """Half the file: its header still reads (so the start-up sample passes), decoding fails."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_two_ranks(
    root: Path, channels: dict[str, Path]
) -> tuple[list[subprocess.CompletedProcess[str]], float]:
    env = sm_env(root, HPS, channels)
    env.update(
        {
            "WORLD_SIZE": "2",
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
        }
    )
    script = str(ALGORITHMS_DIR / ALGORITHM / "train.py")
    began = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, script],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            cwd=root.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    done = []
    try:
        for proc in procs:
            left = max(1.0, PROMPTLY - (time.monotonic() - began))
            out, err = proc.communicate(timeout=left)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done, time.monotonic() - began


def first_file_of_rank_1(folder: Path) -> Path:
    """The first picture rank 1 decodes in epoch 1 (the preset's split and sampler)."""
    from torch.utils.data import DistributedSampler

    (image_data,) = import_modules(ALGORITHM, "image_data")
    images = image_data.load_channel("train", folder, image_size=0)
    splits = image_data.make_splits(images, None, validation_split=0.2, seed=HPS["seed"])
    sampler = DistributedSampler(
        range(len(splits.y_train)), num_replicas=2, rank=1, seed=HPS["seed"]
    )
    sampler.set_epoch(1)
    return Path(splits.train_files[next(iter(sampler))])


def check_left_together(
    done: list[subprocess.CompletedProcess[str]], took: float, bad: Path, root: Path
) -> None:
    assert took < PROMPTLY
    for rank, proc in enumerate(done):
        assert proc.returncode == 2, f"rank {rank}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [
        (rank, line)
        for rank, proc in enumerate(done)
        for line in proc.stderr.splitlines()
        if line.startswith("ERROR: ")
    ]
    expected = f"ERROR: image folder: cannot read image {bad}: image file is truncated"
    assert errors == [(0, expected)]  # once, from rank 0
    assert (root / "output" / "failure").read_text() == expected.removeprefix("ERROR: ") + "\n"
    assert not (root / "model" / "model.pt").exists()


def test_a_bad_picture_in_one_ranks_shard_ends_both_ranks(tmp_path: Path) -> None:
    folder = tmp_path / "train"
    pictures(folder)
    bad = first_file_of_rank_1(folder)
    truncate(bad)
    root = tmp_path / "run"
    done, took = run_two_ranks(root, {"train": folder})
    check_left_together(done, took, bad, root)
    assert "epoch=1/" not in done[0].stdout  # it failed in the first epoch's first step


def test_a_bad_validation_picture_ends_both_ranks(tmp_path: Path) -> None:
    """Rank 0 alone decodes the validation set: rank 1 learns of the failure and leaves."""
    pictures(tmp_path / "train")
    pictures(tmp_path / "validation", count=3)
    bad = tmp_path / "validation" / "light" / "1.png"
    truncate(bad)
    root = tmp_path / "run"
    channels = {"train": tmp_path / "train", "validation": tmp_path / "validation"}
    done, took = run_two_ranks(root, channels)
    check_left_together(done, took, bad, root)
