"""The threads that watch local runs and report them.

One monitor thread per run polls its process, enforces stops and the max runtime (SIGTERM,
then SIGKILL after a grace), notices progress in the log, and on exit writes the final detail
and reports it. Every change is written to the run's ``state.json`` first, then reported to
the :class:`bot.ports.EventReport`: when there is none yet, or it fails, the event is dropped
(logged) and the state file keeps the truth.

Processes outlive the bot: :meth:`Supervisor.recover` re-attaches to runs an earlier bot
process started, from their state files.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.adapters.local.detail import (
    FAILURE_REASON_MAX,
    RESTART_REASON,
    TERMINAL,
    advance,
    failure_reason,
    is_state,
    iso_now,
    lost_detail,
    now_ms,
    state_change,
)
from bot.adapters.local.processes import Adopted, Child, Exit, wake_on_exit
from bot.adapters.local.runs import RunDir, read_json, start_ticks
from bot.adapters.local.watched import WatchedRun
from bot.adapters.local_data import remove_staged
from bot.adapters.training_log import match_metrics, match_progress, scan_log
from bot.ports import EventReport

__all__ = ["Supervisor"]

log = logging.getLogger("trainbot.compute.local")


class Supervisor:
    """Watches the runs under ``runs_dir``, each on a thread of its own.

    ``stop_grace_s``: how long a run may take to exit after SIGTERM before SIGKILL;
    ``poll_interval_s``: how often a monitor looks at its run (a run this process started
    also wakes it by exiting); ``progress_interval_s``: the least time between two
    ``progressed`` reports of one run. ``inputs_dir`` holds the runs' input copies, removed
    when a run ends.
    """

    def __init__(self, runs_dir: Path, *, inputs_dir: Path, stop_grace_s: float,
                 poll_interval_s: float, progress_interval_s: float) -> None:
        self.runs_dir = runs_dir
        self.inputs_dir = inputs_dir
        self.stop_grace_s = stop_grace_s
        self.poll_interval_s = poll_interval_s
        self.progress_interval_s = progress_interval_s
        self._report: EventReport | None = None
        self._lock = threading.Lock()
        self._runs: dict[str, WatchedRun] = {}
        self._delivery_threads: dict[str, threading.Thread] = {}
        self._closing = threading.Event()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def report_to(self, report: EventReport) -> None:
        """Report from now on to ``report`` (called from the monitor threads; its exceptions
        are logged, never raised)."""
        self._report = report

    def watch_new(self, run: RunDir, record: dict[str, Any], detail: dict[str, Any],
                  proc: Child) -> None:
        """Watch a run this process has just started (``record``: its launch record;
        ``detail``: its Starting detail)."""
        runner = {"pid": proc.pid, "start_ticks": start_ticks(proc.pid), "stop_reason": None,
                  "exit_code": None}
        watched = WatchedRun.from_record(run, record, detail, runner, proc, adopted=False)
        watched.save()
        self._start_monitor(watched)
        watched.released.set()

    def request_stop(self, run: RunDir) -> None:
        """Ask the run to stop: Stopping, SIGTERM, SIGKILL after ``stop_grace_s``, Stopped.

        Returns at once; the monitor does the rest. Unknown or finished runs: nothing happens.
        """
        with self._lock:
            watched = self._runs.get(run.name)
        if watched is None:
            state = read_json(run.state_file)
            if not is_state(state) or state["detail"]["TrainingJobStatus"] in TERMINAL:
                return
        # A file, so that a bot restarted mid-stop (or another process) finishes the stop.
        run.stop_file.write_text(iso_now() + "\n")
        watched = watched or self._attach(run.name)
        if watched is not None:
            watched.stop_requested.set()
            watched.wake.set()

    def recover(self, names: Sequence[str]) -> None:
        """Re-attach to the runs (by backend job name) a previous bot process left running.

        A live process (same pid *and* start time) gets a monitor again; one that finished
        meanwhile is reported from its exit status; one that vanished without a status is
        reported Failed with :data:`~.detail.RESTART_REASON`. No run is left active forever.
        """
        settling: list[threading.Thread] = []
        for name in names:
            try:
                run = self._attach(name)
            except Exception:
                log.exception("could not recover local run %s", name)
                continue
            thread = self._delivery_threads.pop(name, None) if run is None \
                else (run.thread if run.proc.poll() is not None else None)
            if thread is not None:
                settling.append(thread)
        # Runs that already ended are reported before recover() returns, so a short-lived
        # process (the CLI) shows the true state instead of the one the last process left.
        for thread in settling:
            thread.join(self.poll_interval_s * 4 + 2.0)

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop the monitor threads for good, leaving the processes running for a later
        :meth:`recover` (by a new instance: this one watches nothing more)."""
        self._closing.set()
        with self._lock:
            watched = list(self._runs.values())
        for run in watched:
            run.wake.set()
        for run in watched:
            if run.thread is not None:
                run.thread.join(timeout_s)

    # -- starting monitors ------------------------------------------------------------------

    def _attach(self, name: str) -> WatchedRun | None:
        """The run's monitor, started on its state file if nobody watches it yet.

        A run already over (or without a readable folder) gets its final event re-sent from a
        short-lived thread instead, in case the store missed it.
        """
        run = RunDir(self.runs_dir / name)
        with self._lock:
            if name in self._runs:
                return self._runs[name]
            state, record = read_json(run.state_file), read_json(run.launch_file)
            if not is_state(state) or not isinstance(record, dict):
                detail = lost_detail(name, f"{RESTART_REASON} (no state in {run.root})")
                self._delivery_threads[name] = _start_thread(
                    name, lambda: self._deliver(detail))
                return None
            if state["detail"]["TrainingJobStatus"] in TERMINAL:
                final = state["detail"]
                self._delivery_threads[name] = _start_thread(
                    name, lambda: self._deliver(final))
                return None
            runner = state["runner"]
            proc = Adopted(runner.get("pid"), runner.get("start_ticks"), run)
            watched = WatchedRun.from_record(run, record, state["detail"], runner, proc,
                                             adopted=True)
            watched.released.set()
            self._start_monitor(watched, locked=True)
            return watched

    def _start_monitor(self, run: WatchedRun, *, locked: bool = False) -> None:
        if locked:
            self._runs[run.dir.name] = run
        else:
            with self._lock:
                self._runs[run.dir.name] = run
        run.thread = _start_thread(run.dir.name, lambda: self._monitor(run))

    # -- the monitor (runs on the run's own thread) -----------------------------------------

    def _monitor(self, run: WatchedRun) -> None:
        try:
            run.released.wait(timeout=10.0)  # launch() has returned the name to the service
            # A fresh run's process is up (Popen returned): it has started, however short.
            outcome = run.proc.poll() if run.adopted else None
            if outcome is None:
                run.seen_running = True
                self._deliver(run.detail)  # Starting, or a re-attached run's current state
                if run.detail["SecondaryStatus"] == "Starting":
                    self._advance(run, "InProgress", "Training",
                                  f"Training process running locally (pid {run.proc.pid})",
                                  TrainingStartTime=now_ms())
                outcome = self._supervise(run)
            if outcome is not None:
                self._finish(run, outcome)
        except Exception:
            log.exception("monitor of local run %s crashed", run.dir.name)
        finally:
            with self._lock:
                if self._runs.get(run.dir.name) is run:
                    del self._runs[run.dir.name]

    def _supervise(self, run: WatchedRun) -> Exit | None:
        """Poll until the process exits (its outcome) or :meth:`close` detaches (None)."""
        child = run.proc
        if isinstance(child, Child) and hasattr(os, "waitid"):
            # Our own child: wake the loop the moment it exits instead of at the next poll,
            # so a 2-second job isn't reported up to poll_interval_s late.
            _start_thread(f"{run.dir.name}:exit", lambda: wake_on_exit(child, run.wake))
        while True:
            outcome = run.proc.poll()
            if outcome is not None:
                return outcome
            if self._closing.is_set():
                return None
            if run.stop_requested.is_set() or run.dir.stop_file.exists():
                self._begin_stop(run, "stop", "Stop requested")
            elif _elapsed_s(run.detail) > run.max_runtime_s:
                self._begin_stop(run, "max_runtime",
                                 f"MaxRuntimeInSeconds ({run.max_runtime_s} s) exceeded")
            if run.kill_at is not None and not run.killed and time.monotonic() >= run.kill_at:
                _append_note(run.dir, f"still running {self.stop_grace_s:g} s after SIGTERM; "
                                      "sending SIGKILL")
                run.proc.signal(signal.SIGKILL)
                run.killed = True
            self._watch_output(run)
            run.wake.wait(self.poll_interval_s)
            run.wake.clear()

    def _begin_stop(self, run: WatchedRun, reason: str, message: str) -> None:
        if run.kill_at is not None:
            return
        if run.runner.get("stop_reason") is None:
            run.runner["stop_reason"] = reason
        if run.detail["TrainingJobStatus"] != "Stopping":
            self._advance(run, "Stopping", "Stopping", message)
        _append_note(run.dir, f"{message}: sending SIGTERM to the process group")
        run.proc.signal(signal.SIGTERM)
        run.kill_at = time.monotonic() + self.stop_grace_s

    def _watch_output(self, run: WatchedRun) -> None:
        """Notice new progress or metric lines; report progress at most every interval."""
        report = self._report
        if report is None:
            return
        for line in run.read_new_lines():
            if match_progress(line, run.progress) or next(match_metrics(line, run.metrics), None):
                run.progress_pending = True
                break
        now = time.monotonic()
        if run.progress_pending and now - run.progress_called >= self.progress_interval_s:
            run.progress_pending, run.progress_called = False, now
            try:
                report.progressed(run.dir.name)
            except Exception:
                log.exception("progress report failed for %s", run.dir.name)

    def _finish(self, run: WatchedRun, outcome: Exit) -> None:
        run.runner["exit_code"] = outcome.code
        scan = scan_log(run.dir.log_file, run.metrics, run.progress)
        metrics = [{"MetricName": k, "Value": v, "Timestamp": now_ms()}
                   for k, v in scan.last_metrics.items()]
        reason = run.runner.get("stop_reason")
        if reason == "stop":
            self._end(run, "Stopped", "Stopped", "Training job stopped", metrics)
        elif reason == "max_runtime":
            why = (f"MaxRuntimeExceeded: the job ran longer than its max runtime of "
                   f"{run.max_runtime_s} s and was stopped")
            self._end(run, "Stopped", "MaxRuntimeExceeded", why, metrics, failure=why)
        elif outcome.code == 0:
            self._advance(run, "InProgress", "Uploading", "Uploading generated training model",
                          FinalMetricDataList=metrics)
            self._end(run, "Completed", "Completed", "Training job completed", metrics,
                      ModelArtifacts={"S3ModelArtifacts": run.dir.model_dir.as_uri()})
        else:
            if outcome.code is None:
                why = RESTART_REASON if not run.seen_running else (
                    "the training process disappeared without an exit status "
                    "(killed outside trainbot?)")
            else:
                why = failure_reason(outcome.code, scan.error_line, scan.last_line, run.dir)
            for staged, uri in sorted(run.inputs.items(), key=lambda kv: -len(kv[0])):
                why = why.replace(staged, uri)  # the user's words, not our staging folder
            self._end(run, "Failed", "Failed", why, metrics, failure=why)

    def _end(self, run: WatchedRun, status: str, secondary: str, message: str,
             metrics: list[dict[str, Any]], *, failure: str | None = None,
             **fields: Any) -> None:
        now = now_ms()
        started = run.detail.get("TrainingStartTime")
        extra: dict[str, Any] = {"TrainingEndTime": now, "FinalMetricDataList": metrics, **fields}
        if started is not None:
            seconds = max(1, round((now - started) / 1000))
            extra.update(TrainingTimeInSeconds=seconds, BillableTimeInSeconds=seconds)
        if failure is not None:
            extra["FailureReason"] = failure[:FAILURE_REASON_MAX]
        # The process group is gone: its input copies are of no more use (SageMaker too
        # discards the instance's input volume).
        remove_staged(self.inputs_dir / run.dir.name)
        self._advance(run, status, secondary, message, **extra)

    def _advance(self, run: WatchedRun, status: str, secondary: str, message: str,
                 **fields: Any) -> None:
        """Move the run to a new (secondary) status, persist it, then report it."""
        advance(run.detail, status, secondary, message, **fields)
        run.save()
        self._deliver(run.detail)

    def _deliver(self, detail: dict[str, Any]) -> None:
        """Report one state change; a failing report is logged (the state file stays right)."""
        report = self._report
        if report is None:
            log.debug("no report yet; %s is %s", detail["TrainingJobName"],
                      detail["SecondaryStatus"])
            return
        event = state_change(detail)
        try:
            report.state_changed(event)
        except Exception:
            log.exception("state change report failed on %s (%s)", detail["TrainingJobName"],
                          detail["SecondaryStatus"])


def _start_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    # Daemon: the bot may exit while jobs run; recover() picks them up again.
    thread = threading.Thread(target=target, name=f"local-run:{name}", daemon=True)
    thread.start()
    return thread


def _append_note(run: RunDir, text: str) -> None:
    # The runner's own remarks go into the log, marked, so the log tail explains a stop.
    try:
        with run.log_file.open("a", encoding="utf-8") as f:
            f.write(f"[trainbot] {text}\n")
    except OSError:
        pass


def _elapsed_s(detail: dict[str, Any]) -> float:
    # SageMaker counts MaxRuntimeInSeconds from the start of training.
    started = detail.get("TrainingStartTime") or detail.get("CreationTime") or now_ms()
    return (now_ms() - started) / 1000.0
