"""The :class:`bot.ports.Compute` port over local subprocesses (see :mod:`bot.adapters.local`).

A launch checks what the version may read, plans its processes, prepares its run folder
(:mod:`.contract`), starts the script (:mod:`.processes`) and hands it to the
:class:`~.supervisor.Supervisor`; the read-side methods read the run folder only, so any
process (the CLI) can answer them. The input copies of a run are removed when it ends.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.adapters.local.contract import (
    algorithm_source,
    channel_sources,
    check_channels,
    image_refusal,
    prepare_run,
)
from bot.adapters.local.detail import initial_detail, is_state
from bot.adapters.local.plan import cpu_count, detect_gpus, plan_processes
from bot.adapters.local.processes import spawn
from bot.adapters.local.runs import RunDir, read_json, tail
from bot.adapters.local.supervisor import Supervisor
from bot.adapters.local_data import LocalData, remove_staged
from bot.adapters.training_log import LogScan, compile_metrics, scan_log, summarize
from bot.domain import (
    Algorithm,
    Artifacts,
    BackendError,
    BackendRejected,
    JobVersion,
    Progress,
    ResourcePool,
    TrainingJobDetail,
)
from bot.domain.job import MAX_LOG_TAIL
from bot.domain.naming import TRAINING_JOB_NAME, backend_job_name
from bot.ports import EventReport, Launch, Links, Results

if TYPE_CHECKING:
    from bot.adapters.tensorboard_local import LocalTensorBoard

__all__ = ["LocalCompute"]

log = logging.getLogger("trainbot.compute.local")


class LocalCompute:
    """The :class:`bot.ports.Compute` port over local subprocesses.

    ``data`` decides which local files a version may read (default: ``<runs_dir's
    parent>/data`` only, i.e. ``$TRAINBOT_HOME/data``); ``inputs_dir`` holds the runs' input
    copies (default ``<runs_dir's parent>/inputs``) and must not be inside ``runs_dir``.
    Nothing is reported until :meth:`start_reporting`: state changes before it are dropped
    (the state file keeps the truth). ``progress_interval_s``: the least time between two
    progress reports of a run. ``gpu_names``: the GPUs here (default: ask ``nvidia-smi`` at
    the first launch).
    """

    name = "local"

    def __init__(
        self,
        runs_dir: Path,
        *,
        algorithms_root: Path,
        python: str = sys.executable,
        stop_grace_s: float = 10.0,
        poll_interval_s: float = 0.5,
        tensorboard: LocalTensorBoard | None = None,
        job_prefix: str = "trainbot",
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
        self.python = python
        self.tensorboard = tensorboard
        self.job_prefix = job_prefix
        # None: ask nvidia-smi at the first launch (a testing seam, and it costs a subprocess).
        self._gpu_names = None if gpu_names is None else list(gpu_names)
        self._supervisor = Supervisor(
            self.runs_dir, inputs_dir=self.inputs_dir, stop_grace_s=stop_grace_s,
            poll_interval_s=poll_interval_s, progress_interval_s=progress_interval_s)

    # -- the Compute port -------------------------------------------------------------------

    def launch(self, version: JobVersion, algorithm: Algorithm, pool: ResourcePool) -> Launch:
        """Prepare the run folder and start the script; events follow from the monitor.

        Uses ``version.backend_job_name`` when the service has chosen it, else derives one.
        A preset runs from its folder under ``algorithms_root``, a team's own (script)
        algorithm from its registered folder — the same runner and contract either way.
        Raises :class:`BackendRejected` for what can't run here (s3 data, data this version
        may not read or that is missing, a GPU-only algorithm without a GPU, a container
        image algorithm) and :class:`BackendError` when the process can't start.
        """
        if self._supervisor.closing:
            raise BackendError("Local compute is shutting down; try again in a moment.")
        name = version.backend_job_name or backend_job_name(
            self.job_prefix, version.job, version.number, secrets.token_hex(2))
        if not TRAINING_JOB_NAME.match(name):
            raise BackendRejected(f"`{name}` is not a valid training job name.")
        channels = channel_sources(version, algorithm)
        check_channels(channels, self.data)  # refused before anything is created
        plan = plan_processes(algorithm, pool, self._local_gpus(), cpu_count())
        source = algorithm_source(algorithm, self.algorithms_root)
        run = RunDir(self.runs_dir / name)
        try:
            run.create()
        except FileExistsError:
            raise BackendRejected(f"Training job name `{name}` is already in use.") from None
        try:
            record = prepare_run(
                run, version, algorithm, pool, plan, source=source, channels=channels,
                data=self.data, inputs_dir=self.inputs_dir, python=self.python,
                hide_gpus=bool(self._local_gpus()))
            detail = initial_detail(run, version, algorithm, pool)
            proc = spawn(run, record)
        except BaseException:
            shutil.rmtree(run.root, ignore_errors=True)  # nothing half-created is left behind
            remove_staged(self.inputs_dir / name)
            raise
        self._supervisor.watch_new(run, record, detail, proc)
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
        if run is not None:
            self._supervisor.request_stop(run)

    def describe(self, version: JobVersion) -> TrainingJobDetail | None:
        run = self._run_dir(version)
        state = read_json(run.state_file) if run else None
        return TrainingJobDetail.model_validate(state["detail"]) if is_state(state) else None

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

    def check_runnable(self, algorithm: Algorithm) -> None:
        """Presets and script algorithms run here; a container image algorithm doesn't
        (``InvalidInput`` saying what to do instead)."""
        refusal = image_refusal(algorithm)
        if refusal is not None:
            raise refusal

    def training_image(self, algorithm: Algorithm, pool: ResourcePool) -> str | None:
        """None: a local run is a subprocess, not a container image."""
        return None

    def start_reporting(self, report: EventReport, active: Sequence[JobVersion]) -> None:
        """Report state changes and progress of every run to ``report`` from now on (from
        monitor threads; its exceptions are logged, never raised), and take back the local
        versions among ``active`` that a previous bot process left running.

        A live process (same pid *and* start time) gets a monitor again; one that finished
        meanwhile is reported from its exit status; one that vanished without a status is
        reported Failed. Runs that already ended are reported before this returns.
        """
        self._supervisor.report_to(report)
        self._supervisor.recover([v.backend_job_name for v in active
                                  if v.backend == self.name and v.backend_job_name])

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop the monitor threads for good, leaving the processes running for a later
        :meth:`start_reporting` (by a new instance: this one launches nothing more)."""
        self._supervisor.close(timeout_s=timeout_s)

    # -- helpers ----------------------------------------------------------------------------

    def _local_gpus(self) -> list[str]:
        if self._gpu_names is None:
            self._gpu_names = detect_gpus()
        return self._gpu_names

    def _run_dir(self, version: JobVersion) -> RunDir | None:
        name = version.backend_job_name
        # The name becomes a path: only a valid job name may (no "/" or "..").
        if not name or not TRAINING_JOB_NAME.match(name):
            return None
        return RunDir(self.runs_dir / name)


def _scan(run: RunDir, algorithm: Algorithm) -> LogScan:
    regex = re.compile(algorithm.progress_regex) if algorithm.progress_regex else None
    return scan_log(run.log_file, compile_metrics([(m.name, m.regex) for m in algorithm.metrics]),
                    regex)
