"""LocalCompute against real subprocesses: the tiny fixture algorithms in tests/fixtures."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.local.compute import LocalCompute
from bot.adapters.local.detail import RESTART_REASON
from bot.adapters.local.plan import detect_gpus, plan_processes
from bot.adapters.local.runs import process_status, read_json
from bot.catalog import load_algorithms
from bot.domain import (
    Algorithm,
    BackendRejected,
    JobSpec,
    JobVersion,
    ResourcePool,
    Status,
    TrainingJobStateChange,
)
from bot.domain.naming import TRAINING_JOB_NAME, backend_job_name
from bot.ports import Compute, EventReport

FIXTURES = Path(__file__).parents[1] / "fixtures" / "algorithms"
REPO_ALGORITHMS = Path(__file__).parents[2] / "algorithms"
CPU = ResourcePool(id="local-cpu", instance_type="local")
GPU4 = ResourcePool(id="gpu-4", instance_type="ml.g5.12xlarge", gpu_count=4)
GRACE_S = 1.0
TERMINAL = ("Completed", "Failed", "Stopped")


class EventLog:
    """An EventReport that records what it is told and lets a test wait for an event."""

    def __init__(self) -> None:
        self.events: list[TrainingJobStateChange] = []
        self.progressed_at: list[tuple[str, float]] = []  # (backend job name, monotonic time)
        self._cond = threading.Condition()

    def state_changed(self, event: TrainingJobStateChange) -> None:
        assert threading.current_thread() is not threading.main_thread()
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def progressed(self, backend_job_name: str) -> None:
        assert threading.current_thread() is not threading.main_thread()
        with self._cond:
            self.progressed_at.append((backend_job_name, time.monotonic()))

    def of(self, name: str) -> list[TrainingJobStateChange]:
        with self._cond:
            return [e for e in self.events if e.detail.name == name]

    def secondary(self, name: str) -> list[str | None]:
        return [e.detail.secondary_status for e in self.of(name)]

    def wait(self, name: str, statuses: tuple[str, ...] = TERMINAL,
             timeout: float = 20.0) -> TrainingJobStateChange:
        """The first event of ``name`` whose TrainingJobStatus or SecondaryStatus is listed."""
        def found() -> TrainingJobStateChange | None:
            return next((e for e in self.of(name) if e.detail.status in statuses
                         or e.detail.secondary_status in statuses), None)
        with self._cond:
            self._cond.wait_for(lambda: found() is not None, timeout)
        event = found()
        assert event is not None, f"no {statuses} event for {name}: {self.secondary(name)}"
        return event


@pytest.fixture(scope="module")
def algorithms() -> dict[str, Algorithm]:
    return load_algorithms(FIXTURES)


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
def runs_dir(tmp_path: Path) -> Iterator[Path]:
    runs = tmp_path / "runs"
    yield runs
    # Whatever a failing test left running dies with it.
    for state in runs.glob("*/state.json"):
        runner = (read_json(state) or {}).get("runner", {})
        if process_status(runner.get("pid"), runner.get("start_ticks")) == "running":
            os.killpg(runner["pid"], signal.SIGKILL)


@pytest.fixture
def make_compute(runs_dir: Path) -> Iterator[Callable[..., LocalCompute]]:
    made: list[LocalCompute] = []

    def make(report: EventReport | None = None, active: Sequence[JobVersion] = (),
             **options: object) -> LocalCompute:
        """A LocalCompute reporting to ``report`` (none: it reports nothing), having taken
        back ``active``."""
        settings: dict = {"poll_interval_s": 0.05, "stop_grace_s": GRACE_S,
                          "progress_interval_s": 0.1, "gpu_names": [], **options}
        compute = LocalCompute(runs_dir, algorithms_root=FIXTURES, **settings)
        made.append(compute)
        if report is not None:
            compute.start_reporting(report, active)
        return compute

    yield make
    for compute in made:
        compute.close()


@pytest.fixture
def compute(make_compute: Callable[..., LocalCompute], events: EventLog) -> LocalCompute:
    return make_compute(events)


def version_of(algorithm: Algorithm, *, job: str = "demo", number: int = 1,
               hps: dict | None = None, data: dict | None = None, pool: ResourcePool = CPU,
               max_runtime_s: int = 3600, named: bool = True) -> JobVersion:
    """A QUEUED version the way the service hands it to ``launch`` (named unless told not)."""
    now = datetime.now(UTC)
    spec = JobSpec(algorithm=algorithm.id, algorithm_version=algorithm.version,
                   hyperparameters={**algorithm.defaults(), **(hps or {})}, data=data or {},
                   pool=pool.id, max_runtime_s=max_runtime_s)
    name = backend_job_name("trainbot", job, number, os.urandom(2).hex()) if named else None
    return JobVersion(job=job, number=number, spec=spec, requested_by="U123",
                      status=Status.QUEUED, created_at=now, updated_at=now, backend="local",
                      backend_job_name=name)


def start(compute: LocalCompute, algorithm: Algorithm, pool: ResourcePool = CPU,
          **kwargs: object) -> JobVersion:
    version = version_of(algorithm, pool=pool, **kwargs)  # type: ignore[arg-type]
    launch = compute.launch(version, algorithm, pool)
    return version.model_copy(update={"backend_job_name": launch.backend_job_name})


def wait_for_line(compute: LocalCompute, version: JobVersion, text: str,
                  timeout: float = 10.0) -> None:
    """Wait until the script has printed ``text`` (e.g. its signal handler is installed)."""
    deadline = time.monotonic() + timeout
    while not any(text in line for line in compute.logs(version, lines=200)):
        assert time.monotonic() < deadline, f"{text!r} never appeared: {compute.logs(version)}"
        time.sleep(0.02)


def live_group_members(pgid: int) -> list[int]:
    """Pids of the process group that still run (zombies don't count: this sandbox's init
    may never reap the orphans of a killed group)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def run_dir(runs_dir: Path, version: JobVersion) -> Path:
    assert version.backend_job_name
    return runs_dir / version.backend_job_name


# -- the happy path ----------------------------------------------------------------------------


def test_fixture_manifests_are_valid_algorithms(algorithms: dict[str, Algorithm]) -> None:
    assert set(algorithms) == {"quick-metrics", "crasher", "sleeper", "dist-probe"}


def test_local_compute_implements_the_compute_port(compute: LocalCompute) -> None:
    assert isinstance(compute, Compute)
    assert compute.name == "local"


def test_a_local_run_has_no_training_image(compute: LocalCompute,
                                           algorithms: dict[str, Algorithm]) -> None:
    assert compute.training_image(algorithms["quick-metrics"], GPU4) is None


def test_completed_run_reports_every_state_in_order(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    version = start(compute, algorithms["quick-metrics"])
    done = events.wait(version.backend_job_name or "")

    assert events.secondary(done.detail.name) == ["Starting", "Training", "Uploading",
                                                  "Completed"]
    assert [e.detail.status for e in events.of(done.detail.name)] == [
        "InProgress", "InProgress", "InProgress", "Completed"]
    assert done.detail.domain_status is Status.COMPLETED
    assert done.detail.arn == ("arn:aws:sagemaker:local:000000000000:training-job/"
                               + done.detail.name.lower())
    assert done.resources == [done.detail.arn]
    assert [t.status for t in done.detail.transitions] == [
        "Starting", "Training", "Uploading", "Completed"]
    assert done.detail.failure_reason is None
    assert done.detail.start_time and done.detail.end_time
    assert done.detail.start_time <= done.detail.end_time
    assert done.detail.billable_seconds is not None and done.detail.billable_seconds >= 1
    assert done.detail.tags["trainbot:job"] == "demo"


def test_completed_run_carries_final_metrics_and_the_model(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm],
        runs_dir: Path) -> None:
    version = start(compute, algorithms["quick-metrics"])
    done = events.wait(version.backend_job_name or "")

    assert {m.name: m.value for m in done.detail.final_metrics} == {
        "train:loss": pytest.approx(0.3333), "validation:accuracy": pytest.approx(0.8333)}
    model = run_dir(runs_dir, version) / "model"
    assert done.detail.model_uri == model.as_uri()
    assert (model / "model.json").exists()


def test_results_have_evaluation_series_and_log_tail(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    algorithm = algorithms["quick-metrics"]
    version = start(compute, algorithm, hps={"epochs": 250})
    events.wait(version.backend_job_name or "")

    results = compute.results(version, algorithm)

    assert results.evaluation == {"objective": {"metric": "validation:accuracy",
                                                "value": pytest.approx(0.998)},
                                  "per_class": {"a": 0.9, "b": 0.8}}
    loss = results.series["train:loss"]
    assert (loss.first, loss.count, loss.max) == (1.0, 250, 1.0)
    assert loss.last == loss.min == pytest.approx(0.004)
    assert len(loss.points) == 200  # downsampled, first and last kept
    assert loss.points[0] == (0, 1.0) and loss.points[-1][0] == 249
    assert results.log_tail[-1] == "done"
    assert len(results.log_tail) == 30
    assert compute.logs(version, lines=2) == [
        "epoch 250/250 loss=0.0040 accuracy=0.9980", "done"]


def test_progress_reads_the_last_progress_line_and_metrics(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    algorithm = algorithms["quick-metrics"]
    version = start(compute, algorithm, hps={"epochs": 4})
    events.wait(version.backend_job_name or "")

    progress = compute.progress(version, algorithm)

    assert progress is not None
    assert (progress.current, progress.total, progress.percent) == (4, 4, 100.0)
    assert progress.metrics == {"train:loss": 0.25, "validation:accuracy": 0.875}
    assert progress.updated_at is not None


def test_describe_reads_the_state_file(
        compute: LocalCompute, make_compute: Callable[..., LocalCompute], events: EventLog,
        algorithms: dict[str, Algorithm]) -> None:
    version = start(compute, algorithms["quick-metrics"])
    events.wait(version.backend_job_name or "")

    described = make_compute().describe(version)  # another instance: only the files

    assert described is not None
    assert (described.status, described.secondary_status) == ("Completed", "Completed")
    assert compute.describe(version_of(algorithms["quick-metrics"])) is None


def test_run_folder_follows_the_sagemaker_layout(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm],
        runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    version = start(compute, algorithms["quick-metrics"],
                    hps={"optimizer": "sgd", "augment": False, "sleep_s": 0.01})
    events.wait(version.backend_job_name or "")
    root = run_dir(runs_dir, version)
    seen = json.loads((root / "output" / "data" / "seen.json").read_text())

    # SageMaker delivers every hyperparameter as a JSON-encoded string.
    assert seen["hyperparameters_json"] == {"epochs": "3", "sleep_s": "0.01",
                                            "optimizer": '"sgd"', "augment": "false",
                                            "note": '"-"'}
    env = seen["env"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "sleep_s": 0.01, "optimizer": "sgd",
                                         "augment": False, "note": "-"}
    assert env["SM_MODEL_DIR"] == str(root / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(root / "output" / "data")
    assert env["SM_CHECKPOINT_DIR"] == str(root / "checkpoints")
    assert env["SM_TENSORBOARD_DIR"] == str(root / "output" / "tensorboard")
    assert env["SM_INPUT_CONFIG_DIR"] == str(root / "input" / "config")
    assert (env["SM_CURRENT_HOST"], json.loads(env["SM_HOSTS"])) == ("algo-1", ["algo-1"])
    assert (env["SM_NUM_GPUS"], env["PYTHONUNBUFFERED"]) == ("0", "1")
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == version.backend_job_name
    assert "SM_CHANNEL_TRAIN" not in env  # builtin: data → the script's bundled data
    assert seen["argv"][:2] == ["--epochs", "3"]
    assert seen["cwd"] == str(root / "code")
    assert seen["leaked"] == []  # the bot's credentials stay with the bot
    resource = json.loads((root / "input" / "config" / "resourceconfig.json").read_text())
    assert resource["current_host"] == "algo-1" and resource["hosts"] == ["algo-1"]
    assert (root / "code" / "train.py").is_file()
    assert (root / "logs" / "stdout.log").is_file()
    assert (root / "exitcode").read_text().strip() == "0"


def test_launch_note_and_artifacts(compute: LocalCompute, events: EventLog,
                                   algorithms: dict[str, Algorithm], runs_dir: Path) -> None:
    algorithm = algorithms["quick-metrics"]
    version = version_of(algorithm, pool=GPU4)

    launch = compute.launch(version, algorithm, GPU4)
    events.wait(launch.backend_job_name)

    assert launch.backend_job_name == version.backend_job_name  # the service's name is kept
    assert launch.compute_note == "local CPU (pool gpu-4 asks for 4× GPU; none here)"
    root = runs_dir / launch.backend_job_name
    assert launch.artifacts.model == (root / "model").as_uri()
    assert launch.artifacts.logs == (root / "logs" / "stdout.log").as_uri()
    assert launch.artifacts.tensorboard == (root / "output" / "tensorboard").as_uri()


def test_links_without_tensorboard_point_at_the_log(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm],
        runs_dir: Path) -> None:
    version = start(compute, algorithms["quick-metrics"])
    events.wait(version.backend_job_name or "")

    links = compute.links(version)

    assert links.tensorboard is None and links.console is None and links.lineage is None
    assert links.logs == (run_dir(runs_dir, version) / "logs" / "stdout.log").as_uri()


def test_progress_is_reported_but_throttled(
        make_compute: Callable[..., LocalCompute], events: EventLog,
        algorithms: dict[str, Algorithm]) -> None:
    compute = make_compute(events, progress_interval_s=0.3)
    version = start(compute, algorithms["quick-metrics"], hps={"epochs": 40, "sleep_s": 1.0})
    events.wait(version.backend_job_name or "")

    calls = list(events.progressed_at)
    assert calls and {name for name, _ in calls} == {version.backend_job_name}
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(calls)]
    assert all(gap >= 0.29 for gap in gaps)
    assert len(calls) <= 5


class BrokenReport:
    """An EventReport whose every call fails, as when the store is down."""

    def state_changed(self, event: TrainingJobStateChange) -> None:
        raise RuntimeError("store down")

    def progressed(self, backend_job_name: str) -> None:
        raise RuntimeError("store down")


def test_a_failing_report_never_stops_the_monitor(
        make_compute: Callable[..., LocalCompute], algorithms: dict[str, Algorithm]) -> None:
    compute = make_compute(BrokenReport())
    version = start(compute, algorithms["quick-metrics"])

    deadline = time.monotonic() + 20
    while (d := compute.describe(version)) is None or d.status != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)


# -- failures ----------------------------------------------------------------------------------


def test_error_line_becomes_the_failure_reason(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    algorithm = algorithms["crasher"]
    version = start(compute, algorithm)
    failed = events.wait(version.backend_job_name or "")

    assert failed.detail.status == "Failed"
    assert failed.detail.failure_reason == "ERROR: column `label` is missing from train.csv"
    assert events.secondary(failed.detail.name) == ["Starting", "Training", "Failed"]
    assert {m.name: m.value for m in failed.detail.final_metrics} == {"train:loss": 0.9}
    assert failed.detail.model_uri is None
    tail = compute.results(version, algorithm).log_tail
    assert tail == ["loading data", "loss=0.9",
                    "ERROR: column `label` is missing from train.csv"]


def test_crash_without_error_line_reports_exit_code_and_last_line(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    version = start(compute, algorithms["crasher"], hps={"mode": "traceback"})
    failed = events.wait(version.backend_job_name or "")

    assert failed.detail.failure_reason == (
        "AlgorithmError: exit code 1; last line: ZeroDivisionError: division by zero")
    assert "Traceback (most recent call last):" in compute.logs(version)


def test_bad_hyperparameter_rejected_by_the_script_fails_the_version(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    version = start(compute, algorithms["quick-metrics"], hps={"epochs": 0})
    failed = events.wait(version.backend_job_name or "")

    assert failed.detail.domain_status is Status.FAILED
    assert failed.detail.failure_reason == "ERROR: epochs must be at least 1, got 0"


# -- stopping ----------------------------------------------------------------------------------


def test_stop_reports_stopping_then_stopped_within_grace(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm],
        runs_dir: Path) -> None:
    version = start(compute, algorithms["sleeper"])
    wait_for_line(compute, version, "sleeper up")

    asked = time.monotonic()
    compute.stop(version)
    stopped = events.wait(version.backend_job_name or "", TERMINAL)

    assert time.monotonic() - asked < GRACE_S
    assert events.secondary(stopped.detail.name)[-2:] == ["Stopping", "Stopped"]
    assert stopped.detail.domain_status is Status.STOPPED
    assert stopped.detail.failure_reason is None
    assert (run_dir(runs_dir, version) / "checkpoints" / "last.txt").exists()
    assert any("SIGTERM received" in line for line in compute.logs(version))


def test_sigterm_ignoring_script_is_killed_after_the_grace(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm],
        runs_dir: Path) -> None:
    version = start(compute, algorithms["sleeper"], hps={"ignore_sigterm": True})
    wait_for_line(compute, version, "sleeper up")
    pid = read_json(run_dir(runs_dir, version) / "state.json")["runner"]["pid"]

    asked = time.monotonic()
    compute.stop(version)
    stopping = events.wait(version.backend_job_name or "", ("Stopping",))
    stopped = events.wait(version.backend_job_name or "", TERMINAL)

    assert GRACE_S <= time.monotonic() - asked < GRACE_S + 5
    assert stopping.detail.status == "Stopping"
    assert stopped.detail.status == "Stopped"
    assert any("sending SIGKILL" in line for line in compute.logs(version))
    assert live_group_members(pid) == []


def test_max_runtime_stops_the_run(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    version = start(compute, algorithms["sleeper"], max_runtime_s=1)
    stopped = events.wait(version.backend_job_name or "", TERMINAL)

    assert (stopped.detail.status, stopped.detail.secondary_status) == (
        "Stopped", "MaxRuntimeExceeded")
    assert stopped.detail.failure_reason == (
        "MaxRuntimeExceeded: the job ran longer than its max runtime of 1 s and was stopped")
    assert events.secondary(stopped.detail.name) == [
        "Starting", "Training", "Stopping", "MaxRuntimeExceeded"]


def test_stop_is_idempotent_and_quiet_for_unknown_or_finished_runs(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    sleeper = start(compute, algorithms["sleeper"])
    events.wait(sleeper.backend_job_name or "", ("Training",))
    compute.stop(sleeper)
    compute.stop(sleeper)
    events.wait(sleeper.backend_job_name or "", TERMINAL)
    compute.stop(sleeper)
    compute.stop(version_of(algorithms["sleeper"]))  # never launched
    compute.stop(version_of(algorithms["sleeper"], named=False))

    assert events.secondary(sleeper.backend_job_name or "").count("Stopping") == 1
    assert events.secondary(sleeper.backend_job_name or "").count("Stopped") == 1


# -- restarts ----------------------------------------------------------------------------------


def test_recover_reattaches_to_a_running_job(
        make_compute: Callable[..., LocalCompute], algorithms: dict[str, Algorithm]) -> None:
    before, after = EventLog(), EventLog()
    first = make_compute(before)
    version = start(first, algorithms["sleeper"], hps={"run_s": 1.5})
    before.wait(version.backend_job_name or "", ("Training",))
    first.close()  # the bot goes away; the process does not

    make_compute(after, active=[version])
    done = after.wait(version.backend_job_name or "", TERMINAL)

    assert done.detail.status == "Completed"
    assert after.secondary(done.detail.name) == ["Training", "Uploading", "Completed"]
    assert before.secondary(done.detail.name) == ["Starting", "Training"]


def test_recover_reports_a_job_that_finished_while_the_bot_was_down(
        make_compute: Callable[..., LocalCompute], algorithms: dict[str, Algorithm],
        runs_dir: Path) -> None:
    before, after = EventLog(), EventLog()
    first = make_compute(before)
    version = start(first, algorithms["sleeper"], hps={"run_s": 0.3})
    before.wait(version.backend_job_name or "", ("Training",))
    first.close()
    deadline = time.monotonic() + 10
    while not (run_dir(runs_dir, version) / "exitcode").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    make_compute(after, active=[version])

    assert after.wait(version.backend_job_name or "").detail.status == "Completed"


def test_recover_fails_a_version_whose_process_is_gone(
        make_compute: Callable[..., LocalCompute], algorithms: dict[str, Algorithm],
        runs_dir: Path) -> None:
    before, after = EventLog(), EventLog()
    first = make_compute(before)
    version = start(first, algorithms["sleeper"])
    before.wait(version.backend_job_name or "", ("Training",))
    first.close()
    runner = read_json(run_dir(runs_dir, version) / "state.json")["runner"]
    os.killpg(runner["pid"], signal.SIGKILL)  # wrapper included: no exit status is written
    deadline = time.monotonic() + 10
    while process_status(runner["pid"], runner["start_ticks"]) == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    never_ran = version_of(algorithms["sleeper"], number=2)  # named, but no run folder

    make_compute(after, active=[version, never_ran])

    for v in (version, never_ran):
        failed = after.wait(v.backend_job_name or "")
        assert failed.detail.status == "Failed"
        assert (failed.detail.failure_reason or "").startswith(RESTART_REASON)


def test_recover_ignores_other_backends_and_unnamed_versions(
        make_compute: Callable[..., LocalCompute], events: EventLog,
        algorithms: dict[str, Algorithm]) -> None:
    sagemaker = version_of(algorithms["sleeper"]).model_copy(update={"backend": "sagemaker"})
    make_compute(events, active=[sagemaker, version_of(algorithms["sleeper"], named=False)])
    time.sleep(0.2)
    assert events.events == []


# -- data and names ----------------------------------------------------------------------------


def test_file_channel_lands_in_sm_channel_train(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm],
        runs_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "my data"
    data.mkdir()
    (data / "train.csv").write_text("x,label\n1,0\n")
    single = tmp_path / "one.csv"
    single.write_text("x\n")

    folder = start(compute, algorithms["quick-metrics"],
                   data={"train": data.as_uri()})
    one_file = start(compute, algorithms["quick-metrics"], number=2,
                     data={"train": single.as_uri()})

    for version, files in ((folder, ["train.csv"]), (one_file, ["one.csv"])):
        events.wait(version.backend_job_name or "")
        root = run_dir(runs_dir, version)
        seen = json.loads((root / "output" / "data" / "seen.json").read_text())
        # A read-only copy, outside the runs folder (bot.adapters.local_data).
        assert seen["env"]["SM_CHANNEL_TRAIN"] == str(runs_dir.parent / "inputs" / root.name
                                                      / "train")
        assert json.loads(seen["env"]["SM_CHANNELS"]) == ["train"]
        assert seen["train_files"] == files


def test_s3_data_is_rejected_before_anything_is_created(
        compute: LocalCompute, algorithms: dict[str, Algorithm], runs_dir: Path) -> None:
    algorithm = algorithms["quick-metrics"]
    version = version_of(algorithm, data={"train": "s3://my-bucket/train/"})

    with pytest.raises(BackendRejected, match="s3 data needs the sagemaker backend"):
        compute.launch(version, algorithm, CPU)
    assert not (runs_dir / (version.backend_job_name or "")).exists()


def test_missing_local_data_is_rejected(
        compute: LocalCompute, algorithms: dict[str, Algorithm], tmp_path: Path) -> None:
    algorithm = algorithms["quick-metrics"]
    version = version_of(algorithm, data={"train": (tmp_path / "nope").as_uri()})

    with pytest.raises(BackendRejected, match="does not exist"):
        compute.launch(version, algorithm, CPU)


def test_derived_backend_name_is_valid_for_a_40_char_job_and_v999(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm]) -> None:
    job = "a-very-long-job-name-that-is-forty-chars"
    assert len(job) == 40
    version = version_of(algorithms["quick-metrics"], job=job, number=999, named=False)

    launch = compute.launch(version, algorithms["quick-metrics"], CPU)

    name = launch.backend_job_name
    assert TRAINING_JOB_NAME.match(name) and len(name) <= 63
    assert name.startswith("trainbot-a-very-long-job") and "-v999-" in name
    assert events.wait(name).detail.status == "Completed"


# -- several processes -------------------------------------------------------------------------


def test_plan_uses_local_gpus_up_to_what_the_pool_asks(
        algorithms: dict[str, Algorithm]) -> None:
    plan = plan_processes(algorithms["dist-probe"], GPU4, ["NVIDIA H100 80GB HBM3"] * 8, 16)

    assert (plan.nproc, plan.gpus, plan.distributed) == (4, 4, True)
    assert plan.note == ("local GPU: 4× NVIDIA H100 80GB HBM3 (pool gpu-4 asks for 4); "
                         "torchrun with 4 processes (nccl)")
    single = plan_processes(algorithms["quick-metrics"], GPU4, ["NVIDIA A10G"], 4)
    assert (single.nproc, single.gpus, single.distributed) == (1, 1, False)


def test_gpu_only_algorithm_is_rejected_without_a_gpu(
        algorithms: dict[str, Algorithm]) -> None:
    needy = algorithms["quick-metrics"].model_copy(update={"gpu": "required"})
    with pytest.raises(BackendRejected, match="needs a GPU"):
        plan_processes(needy, GPU4, [], 4)


def test_detect_gpus_reads_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n"
                    "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0b1c)'\n"
                    "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-77aa)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    assert detect_gpus() == ["NVIDIA H100 80GB HBM3"] * 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert detect_gpus() == ["NVIDIA H100 80GB HBM3"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert detect_gpus() == []


@pytest.mark.parametrize(("pool", "visible", "sm_num_gpus"), [(CPU, "", "0"), (GPU4, "0", "1")])
def test_local_gpus_are_shown_only_to_gpu_pools(
        make_compute: Callable[..., LocalCompute], events: EventLog,
        algorithms: dict[str, Algorithm], runs_dir: Path, monkeypatch: pytest.MonkeyPatch,
        pool: ResourcePool, visible: str, sm_num_gpus: str) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    compute = make_compute(events, gpu_names=["NVIDIA A10G"])
    version = start(compute, algorithms["quick-metrics"], pool=pool)
    events.wait(version.backend_job_name or "")

    seen = json.loads((run_dir(runs_dir, version) / "output/data/seen.json").read_text())
    assert (seen["env"]["CUDA_VISIBLE_DEVICES"], seen["env"]["SM_NUM_GPUS"]) == (
        visible, sm_num_gpus)


def test_distributed_algorithm_runs_under_torchrun_with_two_cpu_processes(
        compute: LocalCompute, events: EventLog, algorithms: dict[str, Algorithm],
        runs_dir: Path) -> None:
    algorithm = algorithms["dist-probe"]
    version = version_of(algorithm, pool=GPU4)

    launch = compute.launch(version, algorithm, GPU4)
    done = events.wait(launch.backend_job_name, timeout=60)

    record = json.loads((runs_dir / launch.backend_job_name / "launch.json").read_text())
    assert record["command"][1:5] == ["-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node=2"]
    assert launch.compute_note and launch.compute_note.endswith(
        "torchrun with 2 processes (gloo)")
    assert done.detail.status == "Completed", compute.logs(version)
    assert {m.name: m.value for m in done.detail.final_metrics} == {"world_size": 2.0}
    out = runs_dir / launch.backend_job_name / "output" / "data"
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [(r["RANK"], r["WORLD_SIZE"], r["SM_NUM_GPUS"]) for r in ranks] == [
        ("0", "2", "0"), ("1", "2", "0")]


@pytest.mark.slow
def test_image_classification_runs_distributed_on_cpu(
        runs_dir: Path, events: EventLog) -> None:
    if not (REPO_ALGORITHMS / "image-classification" / "manifest.yml").exists():
        pytest.skip("algorithms/image-classification isn't there yet")
    algorithm = load_algorithms(REPO_ALGORITHMS)["image-classification"]
    compute = LocalCompute(runs_dir, algorithms_root=REPO_ALGORITHMS, poll_interval_s=0.2,
                           gpu_names=[])
    compute.start_reporting(events, [])
    small = {k: v for k, v in {"epochs": 1, "width": 4, "batch_size": 64, "amp": False}.items()
             if any(h.name == k for h in algorithm.hyperparameters)}
    version = version_of(algorithm, pool=GPU4, hps=small)
    try:
        launch = compute.launch(version, algorithm, GPU4)
        done = events.wait(launch.backend_job_name, timeout=240)
        assert done.detail.status == "Completed", compute.logs(version, lines=40)
        assert compute.results(version, algorithm).evaluation is not None
    finally:
        compute.close()
