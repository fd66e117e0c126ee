"""`trainbot … --wait`: block until a version or a sweep ends, drawing progress on stderr.

This short-lived process supervises what it launched while it waits (the local backend's
monitor threads report to it), so a run started here is seen through to its end.
"""

from __future__ import annotations

import sys
import time

from bot.dispatch import Reply
from bot.domain import JobVersion
from bot.services.context import Deps

__all__ = ["wait_sweep", "wait_version"]


def wait_version(deps: Deps, version: JobVersion, *, quiet: bool) -> JobVersion:
    """Block until the version ends, drawing a progress line on stderr."""
    from bot.services.state_changes import refresh_progress

    last = ""
    while True:
        current = deps.store.get_version(version.job, version.number)
        if current.status.terminal:
            if not quiet and last:
                print(file=sys.stderr)
            return current
        current = refresh_progress(deps, current)
        line = _progress_line(current)
        if not quiet and line != last and sys.stderr.isatty():
            print("\r" + line.ljust(90), end="", file=sys.stderr, flush=True)
        elif not quiet and line != last:
            print(line, file=sys.stderr, flush=True)
        last = line
        time.sleep(0.5)


def wait_sweep(deps: Deps, name: str, *, quiet: bool) -> Reply:
    """Block until the sweep ends (this process runs its trials when nothing else does),
    drawing a line of counts on stderr; the sweep's final reply."""
    from bot.dispatch import sweep_reply
    from bot.domain.sweep import counts
    from bot.services import sweeps
    from bot.services.state_changes import refresh_progress

    last, turns = "", 0
    while True:
        sweep = deps.store.get_sweep(name)
        if sweep.status.terminal and not sweep.outbox:
            if not quiet and last:
                print(file=sys.stderr)
            return sweep_reply(deps, sweep)
        for version in deps.store.list_versions(name):
            if version.trial is not None and not version.status.terminal:
                refresh_progress(deps, version)  # feeds pruning
        if turns % 4 == 0:
            sweep = sweeps.advance(deps, name)  # what no event said (a run ended unseen)
        turns += 1
        c = counts(sweeps.sweep_trials(deps, sweep))
        line = (f"sweep {name} {sweep.status.value.lower()}: {c.done} done, {c.running} "
                f"running, {c.pruned} pruned, {c.failed} failed of {sweep.spec.trials}")
        if not quiet and line != last:
            print(("\r" + line.ljust(90)) if sys.stderr.isatty() else line,
                  end="" if sys.stderr.isatty() else "\n", file=sys.stderr, flush=True)
        last = line
        time.sleep(0.5)


def _progress_line(v: JobVersion) -> str:
    p = v.progress
    head = f"{v.label} {v.status.value.lower()}"
    if p is None:
        return head
    bar = ""
    if p.percent is not None:
        filled = int(p.percent / 5)
        bar = f" [{'#' * filled}{'.' * (20 - filled)}] {int(p.current or 0)}/{int(p.total or 0)}"
    metrics = " ".join(f"{k}={x:.4g}" for k, x in list(p.metrics.items())[:3])
    return f"{head}{bar} {metrics}".rstrip()
