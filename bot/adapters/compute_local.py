"""Local compute: a preset algorithm as a subprocess under SageMaker's training-container contract.

Each version runs in ``runs_dir/<backend job name>/``, laid out like ``/opt/ml`` (see
:mod:`bot.adapters.local_runs`), with the ``SM_*`` environment of the SageMaker training toolkit
(https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md).
A monitor thread per run reports state changes in the shape of SageMaker's EventBridge
"Training Job State Change" event, so the same service code handles both backends.

Data channels are read-only copies made at launch in ``inputs_dir/<backend job name>/<channel>``
(see :mod:`bot.adapters.local_data`), outside ``runs_dir``: TensorBoard scans ``runs_dir``
and follows links, and must never walk a run's inputs. A version requested from Slack may
only read allow-listed folders; one from the CLI (no channel, no request key) anything the OS
user can read. The copies are removed when the run ends.

Processes outlive the bot. Each run starts in its own session behind a small ``sh`` wrapper that
writes the script's exit status to ``<run>/exitcode``: a restarted bot cannot ``wait()`` for a
process it did not start, but it can poll the pid (checked against its start time, so a reused
pid is not mistaken for the run) and read that file. :meth:`LocalCompute.recover` re-attaches
to every version the store still thinks is active.

This module must stay light (it is imported on the Slack path): no torch, tensorboard, sklearn.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.adapters.local_data import LocalData, local_path, remove_staged
from bot.adapters.local_runs import (
    RunDir,
    process_status,
    read_json,
    signal_group,
    start_ticks,
    tail,
    write_json,
)
from bot.adapters.training_log import (
    LogScan,
    compile_metrics,
    match_metrics,
    match_progress,
    scan_log,
    summarize,
)
from bot.catalog import source_files
from bot.domain import (
    Algorithm,
    Artifacts,
    BackendError,
    BackendRejected,
    InvalidInput,
    JobVersion,
    Progress,
    ResourcePool,
    TrainingJobDetail,
    TrainingJobStateChange,
)
from bot.domain.job import MAX_LOG_TAIL
from bot.domain.naming import TRAINING_JOB_NAME, backend_job_name
from bot.ports import EventSink, Launch, Links, Results

if TYPE_CHECKING:
    from bot.adapters.tensorboard_local import LocalTensorBoard

__all__ = ["LocalCompute", "ProcessPlan", "detect_gpus", "plan_processes"]

log = logging.getLogger("trainbot.compute.local")

ARN_PREFIX = "arn:aws:sagemaker:local:000000000000:training-job/"
HOST = "algo-1"
RESTART_REASON = "trainbot restarted while this version ran and the process is gone"
_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
_FAILURE_REASON_MAX = 1024  # SageMaker's FailureReason limit
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


class LocalCompute:
    """The :class:`bot.ports.Compute` port over local subprocesses.

    ``data`` decides which local files a version may read (default: ``<runs_dir's
    parent>/data`` only, i.e. ``$TRAINBOT_HOME/data``); ``inputs_dir`` holds the runs' input
    copies (default ``<runs_dir's parent>/inputs``) and must not be inside ``runs_dir``.
    ``sink`` receives every state change (it may be set after construction; events produced
    while it is None are dropped, the state file keeps the truth). ``on_progress(name)`` is
    called at most every ``progress_interval_s`` when a run prints new progress or metric lines.
    Both are called from monitor threads; their exceptions are logged, never raised.
    """

    name = "local"

    def __init__(
        self,
        runs_dir: Path,
        *,
        algorithms_root: Path,
        sink: EventSink | None = None,
        python: str = sys.executable,
        stop_grace_s: float = 10.0,
        poll_interval_s: float = 0.5,
        tensorboard: LocalTensorBoard | None = None,
        job_prefix: str = "trainbot",
        on_progress: Callable[[str], None] | None = None,
        progress_interval_s: float = 2.0,
        gpu_names: Sequence[str] | None = None,
        data: LocalData | None = None,
        inputs_dir: Path | None = None,
    ) -> None:
        if not TRAINING_JOB_NAME.match(job_prefix) or len(job_prefix) > 16:
            raise ValueError(f"job_prefix {job_prefix!r} is not a valid training job name stem")
        self.runs_dir = Path(runs_dir)
        self.data = data if data is not None else LocalData([self.runs_dir.parent / "data"])
        self.inputs_dir = Path(inputs_dir) if inputs_dir is not None else (
            self.runs_dir.parent / "inputs")
        if self.inputs_dir.resolve().is_relative_to(self.runs_dir.resolve()):
            raise ValueError("inputs_dir must not be inside runs_dir (TensorBoard scans it)")
        self.algorithms_root = Path(algorithms_root)
        self.sink = sink
        self.python = python
        self.stop_grace_s = stop_grace_s
        self.poll_interval_s = poll_interval_s
        self.tensorboard = tensorboard
        self.job_prefix = job_prefix
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        # None: ask nvidia-smi at the first launch (a testing seam, and it costs a subprocess).
        self._gpu_names = None if gpu_names is None else list(gpu_names)
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._delivery_threads: dict[str, threading.Thread] = {}
        self._closing = threading.Event()

    # -- the Compute port -------------------------------------------------------------------

    def launch(self, version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> Launch:
        """Prepare the run folder and start the script; events follow from the monitor.

        Uses ``version.backend_job_name`` when the service has chosen it, else derives one.
        Raises :class:`BackendRejected` for what can't run here (s3 data, data this version
        may not read or that is missing, a GPU-only algorithm without a GPU) and
        :class:`BackendError` when the process can't start.
        """
        if self._closing.is_set():
            raise BackendError("Local compute is shutting down; try again in a moment.")
        name = version.backend_job_name or backend_job_name(
            self.job_prefix, version.job, version.number, secrets.token_hex(2))
        if not TRAINING_JOB_NAME.match(name):
            raise BackendRejected(f"`{name}` is not a valid training job name.")
        channels = _channel_sources(version, algorithm)
        for channel, (uri, trusted) in channels.items():
            with _data_refusal(channel):
                self.data.resolve(uri, trusted=trusted)  # refused before anything is created
        plan = plan_processes(algorithm, pool, self._local_gpus(), _cpu_count())
        source = self.algorithms_root / algorithm.id
        if not (source / algorithm.entry_point).is_file():
            raise BackendError(f"Algorithm `{algorithm.id}` has no {algorithm.entry_point} "
                               f"under {source}.", hint="Check TRAINBOT_ALGORITHMS_DIR.")
        run = RunDir(self.runs_dir / name)
        try:
            run.create()
        except FileExistsError:
            raise BackendRejected(f"Training job name `{name}` is already in use.") from None
        try:
            record, detail = self._prepare(run, version, algorithm, pool, plan, channels, source)
            proc = self._spawn(run, record)
        except BaseException:
            shutil.rmtree(run.root, ignore_errors=True)  # nothing half-created is left behind
            remove_staged(self.inputs_dir / name)
            raise
        watched = self._watch_new(run, record, detail, proc)
        watched.released.set()
        log.info("launched %s as %s (%s)", version.label, name, plan.note)
        return Launch(backend_job_name=name, compute_note=plan.note, artifacts=Artifacts(
            model=run.model_dir.as_uri(), output=run.output_data_dir.as_uri(),
            logs=run.log_file.as_uri(), tensorboard=run.tensorboard_dir.as_uri(),
            checkpoints=run.checkpoint_dir.as_uri()))

    def stop(self, version: JobVersion) -> None:
        """Ask the run to stop: Stopping, SIGTERM, SIGKILL after ``stop_grace_s``, Stopped.

        Returns at once; the monitor does the rest. Unknown or finished runs: nothing happens.
        """
        run = self._run_dir(version)
        if run is None:
            return
        with self._lock:
            watched = self._runs.get(run.name)
        if watched is None:
            state = read_json(run.state_file)
            if not _is_state(state) or state["detail"]["TrainingJobStatus"] in _TERMINAL:
                return
        # A file, so that a bot restarted mid-stop (or another process) finishes the stop.
        run.stop_file.write_text(_iso_now() + "\n")
        watched = watched or self._attach(run.name)
        if watched is not None:
            watched.stop_requested.set()
            watched.wake.set()

    def describe(self, version: JobVersion) -> TrainingJobDetail | None:
        run = self._run_dir(version)
        state = read_json(run.state_file) if run else None
        return TrainingJobDetail.model_validate(state["detail"]) if _is_state(state) else None

    def progress(self, version: JobVersion, algorithm: Algorithm) -> Progress | None:
        run = self._run_dir(version)
        if run is None or not run.log_file.exists():
            return None
        scan = _scan(run, algorithm)
        updated = datetime.fromtimestamp(run.log_file.stat().st_mtime, tz=UTC)
        return Progress(current=scan.current, total=scan.total, metrics=scan.last_metrics,
                        updated_at=updated)

    def results(self, version: JobVersion, algorithm: Algorithm) -> Results:
        run = self._run_dir(version)
        if run is None:
            return Results()
        scan = _scan(run, algorithm)
        series = {name: s for name, values in scan.series.items()
                  if (s := summarize(values)) is not None}
        evaluation = read_json(run.evaluation_file)
        return Results(evaluation=evaluation if isinstance(evaluation, dict) else None,
                       series=series, log_tail=tail(run.log_file, MAX_LOG_TAIL))

    def logs(self, version: JobVersion, *, lines: int = 50) -> list[str]:
        run = self._run_dir(version)
        return tail(run.log_file, lines) if run else []

    def links(self, version: JobVersion) -> Links:
        run = self._run_dir(version)
        if run is None:
            return Links()
        board, problem = None, None
        if self.tensorboard is not None:
            try:
                board = self.tensorboard.url_for(run.name, events_dir=run.tensorboard_dir)
            except BackendError as exc:
                log.warning("no TensorBoard link for %s: %s", run.name, exc.message)
                problem = exc.user_text()
        return Links(tensorboard=board, logs=run.log_file.as_uri(),
                     tensorboard_problem=problem)

    # -- restarts ---------------------------------------------------------------------------

    def recover(self, active_versions: Sequence[JobVersion]) -> None:
        """Re-attach to the local versions a previous bot process left running.

        A live process (same pid *and* start time) gets a monitor again; one that finished
        meanwhile is reported from its exit status; one that vanished without a status is
        reported Failed with :data:`RESTART_REASON`. No version is left active forever.
        """
        settling: list[threading.Thread] = []
        for version in active_versions:
            if version.backend != self.name or not version.backend_job_name:
                continue
            try:
                run = self._attach(version.backend_job_name)
            except Exception:
                log.exception("could not recover local run %s", version.backend_job_name)
                continue
            thread = self._delivery_threads.pop(version.backend_job_name, None) if run is None \
                else (run.thread if run.proc.poll() is not None else None)
            if thread is not None:
                settling.append(thread)
        # Runs that already ended are reported before recover() returns, so a short-lived
        # process (the CLI) shows the true state instead of the one the last process left.
        for thread in settling:
            thread.join(self.poll_interval_s * 4 + 2.0)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the monitor threads for good, leaving the processes running for a later
        :meth:`recover` (by a new instance: this one launches nothing more)."""
        self._closing.set()
        with self._lock:
            watched = list(self._runs.values())
        for run in watched:
            run.wake.set()
        for run in watched:
            if run.thread is not None:
                run.thread.join(timeout_s)

    # -- preparing and starting -------------------------------------------------------------

    def _local_gpus(self) -> list[str]:
        if self._gpu_names is None:
            self._gpu_names = detect_gpus()
        return self._gpu_names

    def _prepare(
        self,
        run: RunDir,
        version: JobVersion,
        algorithm: Algorithm,
        pool: ResourcePool,
        plan: ProcessPlan,
        channels: dict[str, tuple[str, bool]],
        source: Path,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fill the run folder; return the launch record and the initial job detail."""
        shutil.rmtree(run.code_dir, ignore_errors=True)
        # The same files publish uploads to SageMaker: the folder plus the shared modules.
        for name, path in source_files(source):
            target = run.code_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        staged = self.inputs_dir / run.name
        remove_staged(staged)  # a leftover of an earlier run of the same name
        channel_dirs = {}
        if channels:
            self.inputs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            staged.mkdir(mode=0o700)
        for channel, (uri, trusted) in channels.items():
            channel_dirs[channel] = staged / channel
            with _data_refusal(channel):
                self.data.stage(uri, channel_dirs[channel], trusted=trusted)
        if channel_dirs:
            staged.chmod(0o500)  # no new channel appears beside the copies
        hps = dict(version.spec.hyperparameters)
        hp_strings = {k: json.dumps(v) for k, v in hps.items()}
        resource = {"current_host": HOST, "current_instance_type": pool.instance_type,
                    "current_group_name": "homogeneousCluster", "hosts": [HOST],
                    "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                         "instance_type": pool.instance_type, "hosts": [HOST]}],
                    "network_interface_name": "eth0"}
        data_config = {c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                           "RecordWrapperType": "None"} for c in channels}
        write_json(run.config_dir / "hyperparameters.json", hp_strings)
        write_json(run.config_dir / "resourceconfig.json", resource)
        write_json(run.config_dir / "inputdataconfig.json", data_config)
        env = _sm_env(run, algorithm, plan, hps, channel_dirs, resource, data_config, run.name,
                      hide_gpus=bool(self._local_gpus()))
        record = {
            "name": run.name, "job": version.job, "version": version.number,
            "algorithm": algorithm.ref, "pool": pool.id, "note": plan.note,
            "command": _command(self.python, run, algorithm, plan, hps), "cwd": str(run.code_dir),
            "env": env, "max_runtime_s": version.spec.max_runtime_s,
            "metrics": [[m.name, m.regex] for m in algorithm.metrics],
            "progress_regex": algorithm.progress_regex,
            # Each channel's copy and the URI it came from: failure reasons name the URI.
            "inputs": {str(d): channels[c][0] for c, d in channel_dirs.items()},
        }
        write_json(run.launch_file, record)
        now = _now_ms()
        detail = {
            "TrainingJobName": run.name,
            "TrainingJobArn": ARN_PREFIX + run.name.lower(),
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "SecondaryStatusTransitions": [
                {"Status": "Starting", "StartTime": now,
                 "StatusMessage": "Preparing the local run folder and process"}],
            "HyperParameters": hp_strings,
            "AlgorithmSpecification": {"TrainingImage": f"local/{algorithm.ref}",
                                       "TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceType": pool.instance_type,
                               "InstanceCount": pool.instance_count,
                               "VolumeSizeInGB": pool.volume_size_gb},
            "StoppingCondition": {"MaxRuntimeInSeconds": version.spec.max_runtime_s},
            "OutputDataConfig": {"S3OutputPath": run.output_dir.as_uri()},
            "TensorBoardOutputConfig": {"S3OutputPath": run.tensorboard_dir.as_uri()},
            "CheckpointConfig": {"S3Uri": run.checkpoint_dir.as_uri()},
            "CreationTime": now,
            "LastModifiedTime": now,
            "FinalMetricDataList": [],
            "Tags": {"trainbot:job": version.job, "trainbot:version": str(version.number),
                     "trainbot:algorithm": algorithm.ref, "trainbot:pool": pool.id,
                     "trainbot:requested-by": version.requested_by},
        }
        return record, detail

    def _spawn(self, run: RunDir, record: dict[str, Any]) -> _Child:
        env = {k: v for k, v in os.environ.items() if not _PRIVATE_ENV.search(k)}
        env.update(record["env"])
        argv = ["/bin/sh", "-c", _WRAPPER, "trainbot-run", str(run.root), *record["command"]]
        try:
            with run.log_file.open("ab") as out:
                popen = subprocess.Popen(
                    argv, cwd=record["cwd"], env=env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise BackendError(f"Couldn't start the training process: {exc.strerror}.") from exc
        return _Child(popen)

    def _watch_new(self, run: RunDir, record: dict[str, Any], detail: dict[str, Any],
                   proc: _Child) -> _Run:
        runner = {"pid": proc.pid, "start_ticks": start_ticks(proc.pid), "stop_reason": None,
                  "exit_code": None}
        watched = _Run.from_record(run, record, detail, runner, proc, adopted=False)
        watched.save()
        self._start_monitor(watched)
        return watched

    def _attach(self, name: str) -> _Run | None:
        """The run's monitor, started on its state file if nobody watches it yet.

        A run already over (or without a readable folder) gets its final event re-sent from a
        short-lived thread instead, in case the store missed it.
        """
        run = RunDir(self.runs_dir / name)
        with self._lock:
            if name in self._runs:
                return self._runs[name]
            state, record = read_json(run.state_file), read_json(run.launch_file)
            if not _is_state(state) or not isinstance(record, dict):
                detail = _lost_detail(name, f"{RESTART_REASON} (no state in {run.root})")
                self._delivery_threads[name] = self._start_thread(
                    name, lambda: self._deliver(detail))
                return None
            if state["detail"]["TrainingJobStatus"] in _TERMINAL:
                final = state["detail"]
                self._delivery_threads[name] = self._start_thread(
                    name, lambda: self._deliver(final))
                return None
            runner = state["runner"]
            proc = _Adopted(runner.get("pid"), runner.get("start_ticks"), run)
            watched = _Run.from_record(run, record, state["detail"], runner, proc, adopted=True)
            watched.released.set()
            self._start_monitor(watched, locked=True)
            return watched

    def _start_monitor(self, run: _Run, *, locked: bool = False) -> None:
        if locked:
            self._runs[run.dir.name] = run
        else:
            with self._lock:
                self._runs[run.dir.name] = run
        run.thread = self._start_thread(run.dir.name, lambda: self._monitor(run))

    @staticmethod
    def _start_thread(name: str, target: Callable[[], None]) -> threading.Thread:
        # Daemon: the bot may exit while jobs run; recover() picks them up again.
        thread = threading.Thread(target=target, name=f"local-run:{name}", daemon=True)
        thread.start()
        return thread

    # -- the monitor (runs on the run's own thread) -----------------------------------------

    def _monitor(self, run: _Run) -> None:
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
                                  TrainingStartTime=_now_ms())
                outcome = self._supervise(run)
            if outcome is not None:
                self._finish(run, outcome)
        except Exception:
            log.exception("monitor of local run %s crashed", run.dir.name)
        finally:
            with self._lock:
                if self._runs.get(run.dir.name) is run:
                    del self._runs[run.dir.name]

    def _supervise(self, run: _Run) -> _Exit | None:
        """Poll until the process exits (its outcome) or :meth:`close` detaches (None)."""
        if not run.adopted and hasattr(os, "waitid"):
            # Our own child: wake the loop the moment it exits instead of at the next poll,
            # so a 2-second job isn't reported up to poll_interval_s late.
            self._start_thread(f"{run.dir.name}:exit", lambda: _wake_on_exit(run))
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

    def _begin_stop(self, run: _Run, reason: str, message: str) -> None:
        if run.kill_at is not None:
            return
        if run.runner.get("stop_reason") is None:
            run.runner["stop_reason"] = reason
        if run.detail["TrainingJobStatus"] != "Stopping":
            self._advance(run, "Stopping", "Stopping", message)
        _append_note(run.dir, f"{message}: sending SIGTERM to the process group")
        run.proc.signal(signal.SIGTERM)
        run.kill_at = time.monotonic() + self.stop_grace_s

    def _watch_output(self, run: _Run) -> None:
        """Notice new progress or metric lines; call ``on_progress`` at most every interval."""
        if self.on_progress is None:
            return
        for line in run.read_new_lines():
            if match_progress(line, run.progress) or next(match_metrics(line, run.metrics), None):
                run.progress_pending = True
                break
        now = time.monotonic()
        if run.progress_pending and now - run.progress_called >= self.progress_interval_s:
            run.progress_pending, run.progress_called = False, now
            try:
                self.on_progress(run.dir.name)
            except Exception:
                log.exception("on_progress failed for %s", run.dir.name)

    def _finish(self, run: _Run, outcome: _Exit) -> None:
        run.runner["exit_code"] = outcome.code
        scan = scan_log(run.dir.log_file, run.metrics, run.progress)
        metrics = [{"MetricName": k, "Value": v, "Timestamp": _now_ms()}
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
                why = _failure_reason(outcome.code, scan.error_line, scan.last_line, run.dir)
            for staged, uri in sorted(run.inputs.items(), key=lambda kv: -len(kv[0])):
                why = why.replace(staged, uri)  # the user's words, not our staging folder
            self._end(run, "Failed", "Failed", why, metrics, failure=why)

    def _end(self, run: _Run, status: str, secondary: str, message: str,
             metrics: list[dict[str, Any]], *, failure: str | None = None,
             **fields: Any) -> None:
        now = _now_ms()
        started = run.detail.get("TrainingStartTime")
        extra: dict[str, Any] = {"TrainingEndTime": now, "FinalMetricDataList": metrics, **fields}
        if started is not None:
            seconds = max(1, round((now - started) / 1000))
            extra.update(TrainingTimeInSeconds=seconds, BillableTimeInSeconds=seconds)
        if failure is not None:
            extra["FailureReason"] = failure[:_FAILURE_REASON_MAX]
        # The process group is gone: its input copies are of no more use (SageMaker too
        # discards the instance's input volume).
        remove_staged(self.inputs_dir / run.dir.name)
        self._advance(run, status, secondary, message, **extra)

    def _advance(self, run: _Run, status: str, secondary: str, message: str,
                 **fields: Any) -> None:
        """Move the run to a new (secondary) status, persist it, then tell the sink."""
        now = _now_ms()
        detail = run.detail
        transitions = detail.setdefault("SecondaryStatusTransitions", [])
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        detail.update(fields, TrainingJobStatus=status, SecondaryStatus=secondary,
                      LastModifiedTime=now)
        if status in _TERMINAL:
            transitions[-1]["EndTime"] = now
        run.save()
        self._deliver(detail)

    def _deliver(self, detail: dict[str, Any]) -> None:
        """Send one event to the sink; a failing sink is logged (the state file stays right)."""
        sink = self.sink
        if sink is None:
            log.debug("no sink; %s is %s", detail["TrainingJobName"], detail["SecondaryStatus"])
            return
        event = TrainingJobStateChange.model_validate({
            "id": str(uuid.uuid4()), "time": _iso_now(),
            "resources": [detail.get("TrainingJobArn") or ""],
            "detail": json.loads(json.dumps(detail)),  # a snapshot the monitor won't mutate
        })
        try:
            sink(event)
        except Exception:
            log.exception("event sink failed on %s (%s)", detail["TrainingJobName"],
                          detail["SecondaryStatus"])

    # -- helpers ----------------------------------------------------------------------------

    def _run_dir(self, version: JobVersion) -> RunDir | None:
        name = version.backend_job_name
        # The name becomes a path: only a valid job name may (no "/" or "..").
        if not name or not TRAINING_JOB_NAME.match(name):
            return None
        return RunDir(self.runs_dir / name)


# -- one watched run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exit:
    code: int | None  # None: the process vanished without leaving an exit status


@dataclass(eq=False)
class _Run:
    """A run being monitored: its folder, process, detail (the state file's truth) and flags."""

    dir: RunDir
    proc: _Child | _Adopted
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
                    runner: dict[str, Any], proc: _Child | _Adopted, *, adopted: bool) -> _Run:
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
        size = _size(self.dir.log_file)
        if size < self.log_offset:  # truncated or replaced
            self.log_offset, self.log_partial = 0, ""
        if size == self.log_offset:
            return []
        with self.dir.log_file.open("rb") as f:
            f.seek(self.log_offset)
            chunk = f.read(min(size - self.log_offset, 1 << 20))
        self.log_offset += len(chunk)
        lines = (self.log_partial + chunk.decode("utf-8", errors="replace")).split("\n")
        self.log_partial = lines.pop()[-65536:]  # a line without end can't grow unbounded
        return lines


class _Child:
    """The wrapper process this bot process started (so it can ``wait()`` for it)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid

    def poll(self) -> _Exit | None:
        if hasattr(os, "waitid"):
            try:
                # WNOWAIT leaves the zombie in place, so the process-group id can't be reused
                # while we clean up what the script left behind (DataLoader workers, ...).
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped already: nothing left to clean up safely
                return _Exit(self.popen.wait())
            if info is None:
                return None
            signal_group(self.pid, signal.SIGKILL)
            return _Exit(self.popen.wait())
        code = self.popen.poll()
        return None if code is None else _Exit(code)

    def signal(self, sig: int) -> None:
        if self.popen.returncode is None:
            signal_group(self.pid, sig)


class _Adopted:
    """A wrapper process started by an earlier bot process: poll it, read its exit file."""

    def __init__(self, pid: int | None, ticks: int | None, run: RunDir) -> None:
        self.pid = pid
        self.ticks = ticks
        self.run = run

    def poll(self) -> _Exit | None:
        status = process_status(self.pid, self.ticks)
        if status == "running":
            return None
        if status == "exited" and self.pid:  # a zombie of ours: its group id is still safe
            signal_group(self.pid, signal.SIGKILL)
        raw = read_json(self.run.exitcode_file)
        return _Exit(raw if isinstance(raw, int) else None)

    def signal(self, sig: int) -> None:
        if self.pid and process_status(self.pid, self.ticks) == "running":
            signal_group(self.pid, sig)


# -- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessPlan:
    """How a version runs here: how many processes, on how many GPUs, and a note saying so."""

    nproc: int
    gpus: int
    distributed: bool
    note: str


def plan_processes(algorithm: Algorithm, pool: ResourcePool, local_gpus: Sequence[str],
                   cpus: int) -> ProcessPlan:
    """Decide GPUs and processes the way SageMaker's PyTorch containers would, scaled to here.

    A pool with several GPUs or instances runs a ``supports_distributed`` algorithm under
    torchrun: one process per local GPU it may use, or (no GPU here) two CPU processes on gloo
    so the distributed code path still runs. GPUs beyond what the pool asks for stay hidden.
    """
    wanted = 0 if algorithm.gpu == "unused" else pool.total_gpus
    gpus = min(len(local_gpus), wanted)
    if algorithm.gpu == "required" and gpus == 0:
        raise BackendRejected(
            f"`{algorithm.id}` needs a GPU and this machine has none it may use.",
            hint="Run it on a GPU pool with the sagemaker backend.")
    if pool.gpu_count and gpus:
        note = f"local GPU: {gpus}× {local_gpus[0]} (pool {pool.id} asks for {pool.total_gpus})"
    elif pool.gpu_count and algorithm.gpu == "unused":
        note = f"ran locally on CPU ({algorithm.id} doesn't use GPUs)"
    elif pool.gpu_count:
        note = (f"ran locally on CPU (pool {pool.id} asks for {pool.total_gpus}× GPU; "
                "none here)")
    else:
        note = f"ran locally on CPU ({cpus} cores; pool {pool.id} is {pool.instance_type})"
    if pool.instance_count > 1:
        note += f"; one local host stands in for {pool.instance_count} instances"
    if not (algorithm.supports_distributed and (pool.total_gpus > 1 or pool.instance_count > 1)):
        return ProcessPlan(nproc=1, gpus=gpus, distributed=False, note=note)
    nproc = gpus if gpus else min(pool.total_gpus or pool.instance_count, 2)
    backend = "nccl" if gpus else "gloo"
    return ProcessPlan(nproc=nproc, gpus=gpus, distributed=True,
                       note=f"{note}; torchrun with {nproc} processes ({backend})")


def detect_gpus() -> list[str]:
    """Names of the NVIDIA GPUs visible here (``nvidia-smi -L``); [] without a driver.

    A subprocess rather than ``torch.cuda``: importing torch costs seconds on the Slack path.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=15,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    names = re.findall(r"^GPU \d+: (.+?)(?: \(UUID: [^)]*\))?\s*$", out.stdout, re.M)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        names = names[: len([d for d in visible.split(",") if d.strip() not in ("", "-1")])]
    return names


def _channel_sources(version: JobVersion, algorithm: Algorithm) -> dict[str, tuple[str, bool]]:
    """The version's local data channels as ``(URI, trusted)``; ``builtin:`` ones are left
    out, so the script falls back to its bundled data. A channel default is used only if it
    is a file URI, and is trusted (the operator installed the algorithm)."""
    data = {c.name: (c.default, True) for c in algorithm.channels
            if c.default and c.default.startswith("file://")}
    trusted = _from_cli(version)
    data.update({name: (uri, trusted) for name, uri in version.spec.data.items()})
    out: dict[str, tuple[str, bool]] = {}
    for name, (uri, from_owner) in data.items():
        if uri.startswith("builtin:"):
            continue
        if uri.startswith("s3://"):
            raise BackendRejected(
                f"Channel `{name}` reads {uri}: s3 data needs the sagemaker backend.",
                hint="Locally, use a file:/// path or builtin: data.")
        if local_path(uri) is None:
            raise BackendRejected(f"Channel `{name}`: `{uri}` isn't a local file or folder.")
        out[name] = (uri, from_owner)
    return out


def _from_cli(version: JobVersion) -> bool:
    """Whether the OS user asked for ``version`` through the CLI, which may then read any
    file that user can. The CLI sets neither a channel nor a request key; Slack always sets
    the key (the trigger or view id), so a Slack request without a channel is still Slack."""
    return version.channel is None and version.request_key is None


@contextlib.contextmanager
def _data_refusal(channel: str) -> Iterator[None]:
    # Same words as at request time (they name the URI the user gave), as the backend's no.
    try:
        yield
    except InvalidInput as exc:
        raise BackendRejected(f"Channel `{channel}`: {exc.message}", hint=exc.hint) from exc


def _command(python: str, run: RunDir, algorithm: Algorithm, plan: ProcessPlan,
             hps: dict[str, Any]) -> list[str]:
    # Script mode also passes each hyperparameter as `--name value`.
    args = [a for k, v in hps.items() for a in (f"--{k}", v if isinstance(v, str) else
                                                   json.dumps(v))]
    script = [str(run.code_dir / algorithm.entry_point), *args]
    if plan.distributed:
        return [python, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={plan.nproc}", *script]
    return [python, *script]


def _sm_env(run: RunDir, algorithm: Algorithm, plan: ProcessPlan, hps: dict[str, Any],
            channels: dict[str, Path], resource: dict[str, Any], data_config: dict[str, Any],
            name: str, *, hide_gpus: bool) -> dict[str, str]:
    """The SageMaker training toolkit's environment, pointing into the run folder (and, for
    the channels, at their read-only copies)."""
    channel_dirs = {c: str(path) for c, path in channels.items()}
    cpus = _cpu_count()
    training_env = {
        "job_name": name, "current_host": HOST, "hosts": [HOST], "is_master": True,
        "master_hostname": HOST, "network_interface_name": "eth0",
        "num_gpus": plan.gpus, "num_cpus": cpus, "hyperparameters": hps,
        "channel_input_dirs": channel_dirs, "input_data_config": data_config,
        "input_dir": str(run.root / "input"), "input_config_dir": str(run.config_dir),
        "model_dir": str(run.model_dir), "output_dir": str(run.output_dir),
        "output_data_dir": str(run.output_data_dir), "module_dir": str(run.code_dir),
        "user_entry_point": algorithm.entry_point, "resource_config": resource,
        "log_level": 20,
    }
    env = {
        "SM_HPS": json.dumps(hps),
        "SM_INPUT_DIR": str(run.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(run.config_dir),
        "SM_INPUT_DATA_CONFIG": json.dumps(data_config),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_MODEL_DIR": str(run.model_dir),
        "SM_OUTPUT_DIR": str(run.output_dir),
        "SM_OUTPUT_DATA_DIR": str(run.output_data_dir),
        "SM_CHECKPOINT_DIR": str(run.checkpoint_dir),
        "SM_TENSORBOARD_DIR": str(run.tensorboard_dir),
        "SM_MODULE_DIR": str(run.code_dir),
        "SM_USER_ENTRY_POINT": algorithm.entry_point,
        "SM_NUM_GPUS": str(plan.gpus),
        "SM_NUM_CPUS": str(cpus),
        "SM_HOSTS": json.dumps([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_CURRENT_INSTANCE_TYPE": resource["current_instance_type"],
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_RESOURCE_CONFIG": json.dumps(resource),
        "SM_TRAINING_ENV": json.dumps(training_env),
        "SM_LOG_LEVEL": "20",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"SM_CHANNEL_{c.upper()}": d for c, d in channel_dirs.items()})
    env.update({f"SM_HP_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
                for k, v in hps.items()})
    if hide_gpus or plan.gpus:
        # Only the GPUs the pool asks for; none on a CPU pool, like a CPU instance.
        env["CUDA_VISIBLE_DEVICES"] = _visible_devices(plan.gpus)
    return env


def _visible_devices(count: int) -> str:
    parent = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in parent.split(",")] if parent else [str(i) for i in range(count)]
    return ",".join(ids[:count])


def _failure_reason(code: int, error_line: str | None, last_line: str | None,
                    run: RunDir) -> str:
    """The script's own words if it left any (``ERROR:`` line, SageMaker's failure file),
    else the exit status with the last log line as a hint."""
    if error_line:
        return error_line
    try:
        written = run.failure_file.read_text(encoding="utf-8").strip()
    except OSError:
        written = ""
    if written:
        return f"AlgorithmError: {written}"
    sig = -code if code < 0 else code - 128 if code > 128 else 0
    if sig:
        try:
            what = f"killed by {signal.Signals(sig).name}"
        except ValueError:
            what = f"killed by signal {sig}"
        if sig == signal.SIGKILL:
            what += " (out of memory?)"
    else:
        what = f"exit code {code}"
    hint = f"; last line: {last_line}" if last_line else "; the log is empty"
    return f"AlgorithmError: {what}{hint}"


# -- processes and files -----------------------------------------------------------------------


def _append_note(run: RunDir, text: str) -> None:
    # The runner's own remarks go into the log, marked, so the log tail explains a stop.
    try:
        with run.log_file.open("a", encoding="utf-8") as f:
            f.write(f"[trainbot] {text}\n")
    except OSError:
        pass


def _is_state(state: Any) -> bool:
    return (isinstance(state, dict) and isinstance(state.get("detail"), dict)
            and isinstance(state.get("runner"), dict))


def _lost_detail(name: str, reason: str) -> dict[str, Any]:
    now = _now_ms()
    return {"TrainingJobName": name, "TrainingJobArn": ARN_PREFIX + name.lower(),
            "TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": reason,
            "SecondaryStatusTransitions": [{"Status": "Failed", "StartTime": now,
                                            "EndTime": now, "StatusMessage": reason}],
            "LastModifiedTime": now, "TrainingEndTime": now}


def _scan(run: RunDir, algorithm: Algorithm) -> LogScan:
    regex = re.compile(algorithm.progress_regex) if algorithm.progress_regex else None
    return scan_log(run.log_file, compile_metrics([(m.name, m.regex) for m in algorithm.metrics]),
                    regex)


def _elapsed_s(detail: dict[str, Any]) -> float:
    # SageMaker counts MaxRuntimeInSeconds from the start of training.
    started = detail.get("TrainingStartTime") or detail.get("CreationTime") or _now_ms()
    return (_now_ms() - started) / 1000.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat()


def _wake_on_exit(run: _Run) -> None:
    # WNOWAIT: leave the child for poll() to reap, so its group id stays safe to signal.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitid(os.P_PID, run.proc.pid, os.WEXITED | os.WNOWAIT)
    run.wake.set()
