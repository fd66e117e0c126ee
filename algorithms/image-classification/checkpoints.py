"""Epoch checkpoints in SM_CHECKPOINT_DIR, which SageMaker syncs to S3 and restores on a
restarted (spot) job. Written atomically; the newest readable one wins on resume.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from sm_contract import log

__all__ = ["load_latest", "save"]

_NAME = re.compile(r"^checkpoint-epoch-(\d+)\.pt$")
_KEEP = 2


def save(directory: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write checkpoint `epoch` and drop all but the newest few."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-epoch-{epoch:06d}.pt"
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    for old in _checkpoints(directory)[_KEEP:]:
        old.unlink(missing_ok=True)
    return path


def load_latest(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, with its path; None when there is none."""
    for path in _checkpoints(directory):
        try:
            return path, torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file must not block resuming from an older one
            log(f"skipping unreadable checkpoint {path.name}: {type(exc).__name__}")
    return None


def _checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files, newest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]
