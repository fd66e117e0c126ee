"""Finding the processes a test (or the whole suite) left behind, from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

__all__ = ["kill", "processes_mentioning"]

# TensorBoard (`python -m tensorboard.main`), its Rust data server, and the bot itself.
_KINDS = ("tensorboard", "bot.cli", "trainbot")


def processes_mentioning(text: str) -> dict[int, str]:
    """pid → command line of each live TensorBoard / data server / trainbot process whose
    command line contains ``text`` (a TRAINBOT_HOME, the suite's temp folder)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if state != "Z" and text in line and any(kind in line for kind in _KINDS):
            found[int(entry.name)] = line
    return found


def kill(pids: dict[int, str]) -> None:
    """SIGKILL each process (and the group it leads: a TensorBoard and its data server)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
