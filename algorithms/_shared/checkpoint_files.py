"""Numbered checkpoint files in SM_CHECKPOINT_DIR, which SageMaker syncs to S3 and restores on
a restarted (spot) job: `checkpoint-<unit>-000012<suffix>`, written atomically, the newest
few kept. Resuming reads the newest one that loads and refuses one of another model or data.

The file format is the caller's (a pickled boosting run, a torch state dict); this module
only names, orders, writes and reads the files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sm_contract import UserError, log

__all__ = ["CheckpointFiles", "refuse_foreign"]

KEEP = 2


@dataclass(frozen=True)
class CheckpointFiles:
    """The checkpoints of one kind (`unit`: epoch, iteration) in `directory`."""

    directory: Path
    unit: str
    suffix: str
    keep: int = KEEP

    def write(self, number: int, dump: Callable[[Path], None]) -> Path:
        """`dump(path)` writes checkpoint `number`; a reader never sees half a file, and all
        but the newest `keep` are dropped afterwards."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"checkpoint-{self.unit}-{number:06d}{self.suffix}"
        partial = path.with_name(path.name + ".partial")
        dump(partial)
        os.replace(partial, path)
        for old in self.newest_first()[self.keep :]:
            old.unlink(missing_ok=True)
        return path

    def readable(self, load: Callable[[Path], Any]) -> Iterator[tuple[Path, Any]]:
        """`(path, load(path))` for each checkpoint, newest first, skipping (and saying so)
        those that fail to load."""
        for path in self.newest_first():
            try:
                loaded = load(path)
            except Exception as exc:  # a torn or foreign file must not block an older one
                log(f"skipping unreadable checkpoint {path.name}: {type(exc).__name__}")
                continue
            yield path, loaded

    def newest_first(self) -> list[Path]:
        """Checkpoint files, newest first."""
        if not self.directory.is_dir():
            return []
        name = re.compile(rf"^checkpoint-{re.escape(self.unit)}-(\d+){re.escape(self.suffix)}$")
        found = [(int(m[1]), p) for p in self.directory.iterdir() if (m := name.match(p.name))]
        return [path for _, path in sorted(found, reverse=True)]


def refuse_foreign(path: Path, saved: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Raise UserError unless checkpoint `path` was written for the same model and data
    (its fingerprint `saved` equals `expected`): resuming it would silently mix two runs."""
    if saved == expected:
        return
    changed = sorted(key for key in expected if saved.get(key) != expected[key])
    raise UserError(
        f"checkpoint {path.name} in {path.parent} belongs to a different model or data "
        f"({', '.join(changed)} changed); use an empty checkpoint directory"
    )
