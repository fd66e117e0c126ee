"""One run being watched: its folder, its process, its detail (the state file's truth), the
flags its monitor thread and the callers of :class:`~.supervisor.Supervisor` share, and the
log lines it has not read yet."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.adapters.local.processes import Adopted, Child
from bot.adapters.local.runs import RunDir, write_json
from bot.adapters.training_log import compile_metrics

__all__ = ["WatchedRun"]

_LOG_CHUNK_MAX = 1 << 20
_PARTIAL_LINE_MAX = 65536


@dataclass(eq=False)
class WatchedRun:
    """A run being monitored: its folder, process, detail (the state file's truth) and flags."""

    dir: RunDir
    proc: Child | Adopted
    detail: dict[str, Any]
    runner: dict[str, Any]
    metrics: list[tuple[str, re.Pattern[str]]]
    progress: re.Pattern[str] | None
    max_runtime_s: int
    adopted: bool
    released: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    seen_running: bool = False
    kill_at: float | None = None
    killed: bool = False
    log_offset: int = 0
    log_partial: str = ""
    progress_pending: bool = False
    progress_called: float = float("-inf")
    inputs: dict[str, str] = field(default_factory=dict)  # staged channel folder → its URI

    @classmethod
    def from_record(cls, run: RunDir, record: dict[str, Any], detail: dict[str, Any],
                    runner: dict[str, Any], proc: Child | Adopted, *,
                    adopted: bool) -> WatchedRun:
        """From the run's launch record (``launch.json``) and state (``state.json``)."""
        regex = record.get("progress_regex")
        watched = cls(dir=run, proc=proc, detail=detail, runner=runner,
                      metrics=compile_metrics([tuple(m) for m in record.get("metrics", [])]),
                      progress=re.compile(regex) if regex else None,
                      max_runtime_s=int(record.get("max_runtime_s") or 0) or 10**9,
                      adopted=adopted, inputs=dict(record.get("inputs") or {}))
        if adopted:  # only lines printed from now on are news
            watched.log_offset = _size(run.log_file)
        return watched

    def save(self) -> None:
        write_json(self.dir.state_file, {"detail": self.detail, "runner": self.runner})

    def read_new_lines(self) -> list[str]:
        """The whole lines the log gained since the last call."""
        size = _size(self.dir.log_file)
        if size < self.log_offset:  # truncated or replaced
            self.log_offset, self.log_partial = 0, ""
        if size == self.log_offset:
            return []
        with self.dir.log_file.open("rb") as f:
            f.seek(self.log_offset)
            chunk = f.read(min(size - self.log_offset, _LOG_CHUNK_MAX))
        self.log_offset += len(chunk)
        lines = (self.log_partial + chunk.decode("utf-8", errors="replace")).split("\n")
        # A line without end can't grow unbounded.
        self.log_partial = lines.pop()[-_PARTIAL_LINE_MAX:]
        return lines


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
