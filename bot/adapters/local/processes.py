"""The training process behind a run, started so that it outlives the bot process.

Each run starts in its own session behind a small ``sh`` wrapper that writes the script's exit
status to ``<run>/exitcode``: a restarted bot cannot ``wait()`` for a process it did not start,
but it can poll the pid (checked against its start time, so a reused pid is not mistaken for
the run) and read that file. :class:`Child` is a process this bot process started;
:class:`Adopted` one an earlier bot process started.

Standard library only: this module is on the Slack path.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.adapters.local.runs import RunDir, process_status, read_json, signal_group
from bot.domain import BackendError

__all__ = ["Adopted", "Child", "Exit", "process_env", "spawn", "wake_on_exit"]

# The training process gets none of the bot's credentials: a SageMaker container doesn't either.
_PRIVATE_ENV = re.compile(r"^(SLACK_|AWS_|TRAINBOT_)|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)
# $1 is the run folder, the rest the command. The trap is a no-op handler, not SIG_IGN (which
# the script would inherit): a SIGTERM sent to the process group reaches the script, and the
# shell defers the trap until the script exits, then still records its status.
_WRAPPER = """trap : TERM INT HUP
d="$1"; shift
"$@"
rc=$?
printf '%s\\n' "$rc" > "$d/exitcode.partial" && mv -f "$d/exitcode.partial" "$d/exitcode"
exit "$rc"
"""


@dataclass(frozen=True)
class Exit:
    code: int | None  # None: the process vanished without leaving an exit status


def process_env(run_env: Mapping[str, str]) -> dict[str, str]:
    """The training process's environment: this process's, less its credentials, plus
    ``run_env`` (the run's ``SM_*`` variables)."""
    env = {k: v for k, v in os.environ.items() if not _PRIVATE_ENV.search(k)}
    env.update(run_env)
    return env


def spawn(run: RunDir, record: Mapping[str, Any]) -> Child:
    """Start the command of ``record`` (the run's launch record) behind the wrapper, in a
    session of its own, its output appended to the run's log. :class:`BackendError` if the
    process can't start."""
    argv = ["/bin/sh", "-c", _WRAPPER, "trainbot-run", str(run.root), *record["command"]]
    try:
        with run.log_file.open("ab") as out:
            popen = subprocess.Popen(
                argv, cwd=record["cwd"], env=process_env(record["env"]),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
    except OSError as exc:
        raise BackendError(f"Couldn't start the training process: {exc.strerror}.") from exc
    return Child(popen)


class Child:
    """The wrapper process this bot process started (so it can ``wait()`` for it)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid

    def poll(self) -> Exit | None:
        if hasattr(os, "waitid"):
            try:
                # WNOWAIT leaves the zombie in place, so the process-group id can't be reused
                # while we clean up what the script left behind (DataLoader workers, ...).
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped already: nothing left to clean up safely
                return Exit(self.popen.wait())
            if info is None:
                return None
            signal_group(self.pid, signal.SIGKILL)
            return Exit(self.popen.wait())
        code = self.popen.poll()
        return None if code is None else Exit(code)

    def signal(self, sig: int) -> None:
        if self.popen.returncode is None:
            signal_group(self.pid, sig)


class Adopted:
    """A wrapper process started by an earlier bot process: poll it, read its exit file."""

    def __init__(self, pid: int | None, ticks: int | None, run: RunDir) -> None:
        self.pid = pid
        self.ticks = ticks
        self.run = run

    def poll(self) -> Exit | None:
        status = process_status(self.pid, self.ticks)
        if status == "running":
            return None
        if status == "exited" and self.pid:  # a zombie of ours: its group id is still safe
            signal_group(self.pid, signal.SIGKILL)
        raw = read_json(self.run.exitcode_file)
        return Exit(raw if isinstance(raw, int) else None)

    def signal(self, sig: int) -> None:
        if self.pid and process_status(self.pid, self.ticks) == "running":
            signal_group(self.pid, sig)


def wake_on_exit(child: Child, wake: threading.Event) -> None:
    """Block until ``child`` exits, then set ``wake`` (run it on a thread of its own)."""
    # WNOWAIT: leave the child for poll() to reap, so its group id stays safe to signal.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    wake.set()
