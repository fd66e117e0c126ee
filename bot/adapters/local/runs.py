"""One local run: its ``/opt/ml``-like folder, state files, log, and the process behind it.

``runs_dir/<backend job name>/`` holds everything a run has, so any process (the bot after a
restart, the CLI) can read a run back without the process that started it::

    input/config/{hyperparameters,resourceconfig,inputdataconfig}.json
    input/data/                empty: the channels live outside (see below)
    model/   output/data/   output/tensorboard/   checkpoints/
    code/                      a copy of the algorithm's source (SageMaker's source dir)
    logs/stdout.log            stdout and stderr of the training process, merged
    launch.json                what was started: command, environment we set, metric regexes
    state.json                 the latest TrainingJobDetail and the process's pid
    exitcode                   written by the launcher wrapper when the script exits
    stop-requested             present once someone asked the run to stop

The process helpers identify a process by pid *and* start time, so a bot restarted later never
signals an unrelated process that happens to reuse a pid.

A run's data channels are read-only copies kept *outside* ``runs_dir`` (``SM_CHANNEL_<NAME>``
points at them): TensorBoard's logdir is ``runs_dir``, it follows links, and it must never
walk (or show) a run's inputs.

Standard library and pydantic models only: this module is on the Slack path.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RunDir",
    "process_status",
    "read_json",
    "signal_group",
    "start_ticks",
    "tail",
    "write_json",
]

_HAVE_PROC = Path("/proc/self/stat").exists()


@dataclass(frozen=True)
class RunDir:
    """The paths of one run; creating them is :meth:`create`, nothing else touches disk."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "output" / "tensorboard"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "stdout.log"

    @property
    def launch_file(self) -> Path:
        return self.root / "launch.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def exitcode_file(self) -> Path:
        return self.root / "exitcode"

    @property
    def stop_file(self) -> Path:
        return self.root / "stop-requested"

    @property
    def failure_file(self) -> Path:
        # SageMaker reports /opt/ml/output/failure as the job's FailureReason.
        return self.output_dir / "failure"

    @property
    def evaluation_file(self) -> Path:
        return self.output_data_dir / "evaluation.json"

    def create(self) -> None:
        """Make the run's folders; the run folder itself must not exist yet."""
        self.root.mkdir(parents=True, exist_ok=False)
        for d in (
            self.config_dir,
            self.data_dir,
            self.model_dir,
            self.output_data_dir,
            self.tensorboard_dir,
            self.checkpoint_dir,
            self.log_file.parent,
        ):
            d.mkdir(parents=True, exist_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write atomically (temp file + rename): a reader in another process never sees half."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file, read from the end (logs can be large)."""
    if lines <= 0:
        return []
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            chunks: list[bytes] = []
            newlines, pos = 0, end
            while pos > 0 and newlines <= lines:
                step = min(8192, pos)
                pos -= step
                f.seek(pos)
                chunk = f.read(step)
                chunks.append(chunk)
                newlines += chunk.count(b"\n")
    except OSError:
        return []
    text = b"".join(reversed(chunks)).decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]


# -- processes that outlive the bot process that started them --------------------------------


def signal_group(pgid: int, sig: int) -> None:
    # Gone already, or (PermissionError) no longer ours: nothing to signal either way.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time in clock ticks since boot)`` from ``/proc/<pid>/stat``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces
    return fields[0], int(fields[19])


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, its identity."""
    stat = _proc_stat(pid) if _HAVE_PROC else None
    return stat[1] if stat else None


def process_status(pid: int | None, ticks: int | None) -> str:
    """``running``, ``exited`` (a zombie not yet reaped) or ``gone`` — for *that* process:
    a pid reused by another process (different start time) counts as gone."""
    if not pid:
        return "gone"
    if _HAVE_PROC:
        stat = _proc_stat(pid)
        if stat is None or (ticks is not None and stat[1] != ticks):
            return "gone"
        return "exited" if stat[0] in ("Z", "X") else "running"
    try:  # without /proc we can't tell a reused pid apart
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return "gone"
    return "running"
