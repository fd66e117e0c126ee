"""Epoch checkpoints (torch state dicts) in SM_CHECKPOINT_DIR, through the shared
checkpoint_files: written atomically, the newest two kept, the newest readable one wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from checkpoint_files import CheckpointFiles

__all__ = ["load_latest", "save"]


def save(directory: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write checkpoint `epoch` and drop all but the newest few."""
    return _files(directory).write(epoch, lambda path: torch.save(state, path))


def load_latest(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, with its path; None when there is none."""

    def load(path: Path) -> dict[str, Any]:
        return torch.load(path, map_location="cpu", weights_only=True)

    return next(_files(directory).readable(load), None)


def _files(directory: Path) -> CheckpointFiles:
    return CheckpointFiles(directory, "epoch", ".pt")
