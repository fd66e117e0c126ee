"""Local data through LocalCompute with real subprocesses: who may read what, and how a run
gets its channels (read-only copies outside the folder TensorBoard scans)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.local.compute import LocalCompute
from bot.adapters.local.runs import process_status, read_json
from bot.adapters.local_data import LocalData
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
from bot.domain.naming import backend_job_name

FIXTURES = Path(__file__).parents[1] / "fixtures" / "algorithms"
REPO_ALGORITHMS = Path(__file__).parents[2] / "algorithms"
CPU = ResourcePool(id="local-cpu", instance_type="local")
TERMINAL = ("Completed", "Failed", "Stopped")
SLACK = {"channel": "C0LOCAL", "request_key": "T0LOCAL:1234.5678"}
CLI: dict[str, str | None] = {"channel": None, "request_key": None}

# Writes into its channel every way a careless script might, and says what happened.
PROBE = '''
import json, os, sys
from pathlib import Path
channel = Path(os.environ["SM_CHANNEL_TRAIN"])
out = Path(os.environ["SM_OUTPUT_DATA_DIR"])
seen = {"channel": str(channel),
        "modes": {p.name: oct(p.stat().st_mode & 0o777) for p in [channel, *channel.iterdir()]}}
for what, act in (("append", lambda: open(channel / "rows.csv", "a").write("9,9\\n")),
                  ("create", lambda: (channel / "new.csv").write_text("x\\n"))):
    try:
        act()
        seen[what] = "written"
    except OSError as exc:
        seen[what] = type(exc).__name__
(out / "seen.json").write_text(json.dumps(seen))
print("done")
'''


class EventLog:
    """An EventReport that records state changes and lets a test wait for a run's end."""

    def __init__(self) -> None:
        self.events: list[TrainingJobStateChange] = []
        self._cond = threading.Condition()

    def state_changed(self, event: TrainingJobStateChange) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def progressed(self, backend_job_name: str) -> None:
        pass

    def wait(self, name: str, timeout: float = 120.0) -> TrainingJobStateChange:
        def found() -> TrainingJobStateChange | None:
            return next((e for e in self.events
                         if e.detail.name == name and e.detail.status in TERMINAL), None)
        with self._cond:
            self._cond.wait_for(lambda: found() is not None, timeout)
        event = found()
        assert event is not None, f"{name} never ended"
        return event


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    yield home
    for state in (home / "runs").glob("*/state.json"):
        runner = (read_json(state) or {}).get("runner", {})
        if process_status(runner.get("pid"), runner.get("start_ticks")) == "running":
            os.killpg(runner["pid"], signal.SIGKILL)


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
def make_compute(home: Path, events: EventLog) -> Iterator[Callable[..., LocalCompute]]:
    made: list[LocalCompute] = []

    def make(root: Path = FIXTURES, **options: object) -> LocalCompute:
        compute = LocalCompute(home / "runs", algorithms_root=root, poll_interval_s=0.05,
                               gpu_names=[], **options)  # type: ignore[arg-type]
        made.append(compute)
        compute.start_reporting(events, [])
        return compute

    yield make
    for compute in made:
        compute.close()


@pytest.fixture
def quick(home: Path) -> Algorithm:
    return load_algorithms(FIXTURES)["quick-metrics"]


def version_of(algorithm: Algorithm, data: dict[str, str], *, origin: dict, job: str = "data",
               hps: dict | None = None) -> JobVersion:
    """A QUEUED version as the service hands it to ``launch``, from Slack or from the CLI."""
    now = datetime.now(UTC)
    spec = JobSpec(algorithm=algorithm.id, algorithm_version=algorithm.version,
                   hyperparameters={**algorithm.defaults(), **(hps or {})}, data=data,
                   pool=CPU.id)
    return JobVersion(job=job, number=1, spec=spec, requested_by="U0LOCAL1",
                      status=Status.QUEUED, created_at=now, updated_at=now, backend="local",
                      backend_job_name=backend_job_name("trainbot", job, 1, os.urandom(2).hex()),
                      **origin)


def refusal(compute: LocalCompute, algorithm: Algorithm, uri: str, *,
            origin: dict = SLACK) -> str:
    with pytest.raises(BackendRejected) as caught:
        compute.launch(version_of(algorithm, {"train": uri}, origin=origin), algorithm, CPU)
    return caught.value.user_text()


def run(compute: LocalCompute, events: EventLog, algorithm: Algorithm, data: dict[str, str], *,
        origin: dict, hps: dict | None = None) -> tuple[TrainingJobStateChange, Path]:
    version = version_of(algorithm, data, origin=origin, hps=hps)
    launch = compute.launch(version, algorithm, CPU)
    return events.wait(launch.backend_job_name), compute.runs_dir / launch.backend_job_name


# -- from Slack: only the data folders, and no oracle ------------------------------------------


def test_slack_gets_the_same_refusal_for_a_secret_file_and_a_missing_one(
        make_compute: Callable[..., LocalCompute], quick: Algorithm, home: Path) -> None:
    compute = make_compute()

    passwd = refusal(compute, quick, "file:///etc/passwd")
    missing = refusal(compute, quick, "file:///nonexistent/x")

    assert passwd.replace("file:///etc/passwd", "URI") == missing.replace(
        "file:///nonexistent/x", "URI")
    assert "`file:///etc/passwd` isn't a file or folder trainbot may read here" in passwd
    assert "TRAINBOT_DATA_DIRS" in passwd
    assert list((home / "runs").glob("*")) == [] and list((home / "inputs").glob("*")) == []


def test_a_csv_under_the_home_data_folder_trains_from_slack(
        make_compute: Callable[..., LocalCompute], events: EventLog, home: Path) -> None:
    algorithm = load_algorithms(REPO_ALGORITHMS)["tabular-classification"]
    rows = ["size,colour,kind"] + [f"{i % 7},{('red', 'blue')[i % 2]},{('cat', 'dog')[i % 2]}"
                                   for i in range(80)]
    (home / "data" / "pets.csv").write_text("\n".join(rows) + "\n")
    compute = make_compute(REPO_ALGORITHMS)

    done, root = run(compute, events, algorithm, {"train": (home / "data/pets.csv").as_uri()},
                     origin=SLACK, hps={"label_column": "kind", "max_iter": 5})

    assert done.detail.status == "Completed", done.detail.failure_reason
    evaluation = json.loads((root / "output/data/evaluation.json").read_text())
    assert "cat" in json.dumps(evaluation) and "dog" in json.dumps(evaluation)


def test_a_symlink_in_the_data_folder_to_etc_is_refused_from_slack(
        make_compute: Callable[..., LocalCompute], quick: Algorithm, home: Path) -> None:
    (home / "data" / "etc").symlink_to("/etc")
    compute = make_compute()

    for uri in ((home / "data/etc").as_uri(), (home / "data/etc/passwd").as_uri()):
        text = refusal(compute, quick, uri)
        assert f"`{uri}` isn't a file or folder trainbot may read here" in text
        assert "/etc/passwd" not in text.replace(uri, "")


def test_a_symlink_inside_a_data_folder_can_not_pull_in_a_file_from_outside(
        make_compute: Callable[..., LocalCompute], quick: Algorithm, home: Path) -> None:
    folder = home / "data" / "set"
    folder.mkdir()
    (folder / "ok.csv").write_text("x\n1\n")
    (folder / "leak.csv").symlink_to("/etc/passwd")

    text = refusal(make_compute(), quick, folder.as_uri())

    assert f"`{folder.as_uri()}` isn't a file or folder trainbot may read here" in text
    assert list((home / "runs").glob("*")) == []


def test_proc_is_refused_even_when_root_is_allow_listed(
        make_compute: Callable[..., LocalCompute], quick: Algorithm) -> None:
    compute = make_compute(data=LocalData([Path("/")]))

    for uri in ("file:///proc/self/environ", "file:///sys/kernel",
                "file:///dev/zero", "file:///etc/../proc/self/environ"):
        assert "isn't a file or folder trainbot may read here" in refusal(compute, quick, uri)
        assert "is under /proc, /sys or /dev" in refusal(compute, quick, uri, origin=CLI)


def test_allow_listed_folders_come_from_the_data_argument(
        make_compute: Callable[..., LocalCompute], events: EventLog, quick: Algorithm,
        tmp_path: Path) -> None:
    shared = tmp_path / "shared-data"
    shared.mkdir()
    (shared / "rows.csv").write_text("x\n1\n")
    compute = make_compute(data=LocalData([shared]))

    done, _ = run(compute, events, quick, {"train": (shared / "rows.csv").as_uri()},
                  origin=SLACK)

    assert done.detail.status == "Completed", done.detail.failure_reason


# -- from the CLI: whatever the OS user can read -----------------------------------------------


def test_the_cli_may_read_any_file_its_user_can(
        make_compute: Callable[..., LocalCompute], events: EventLog, quick: Algorithm,
        tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "mine.csv"
    outside.parent.mkdir()
    outside.write_text("x\n1\n")
    compute = make_compute()
    assert "isn't a file or folder" in refusal(compute, quick, outside.as_uri())

    done, root = run(compute, events, quick, {"train": outside.as_uri()}, origin=CLI)

    assert done.detail.status == "Completed", done.detail.failure_reason
    seen = json.loads((root / "output/data/seen.json").read_text())
    assert seen["train_files"] == ["mine.csv"]


def test_the_cli_is_told_plainly_that_a_file_is_missing(
        make_compute: Callable[..., LocalCompute], quick: Algorithm, tmp_path: Path) -> None:
    uri = (tmp_path / "nope.csv").as_uri()

    text = refusal(make_compute(), quick, uri, origin=CLI)

    assert text == f"Channel `train`: `{uri}` does not exist on this machine."


# -- what the run gets ---------------------------------------------------------------------------


def test_the_run_can_not_change_its_input_channel(
        make_compute: Callable[..., LocalCompute], events: EventLog, home: Path,
        tmp_path: Path) -> None:
    algorithms = tmp_path / "algorithms"
    shutil.copytree(FIXTURES / "quick-metrics", algorithms / "channel-probe")
    manifest = algorithms / "channel-probe" / "manifest.yml"
    manifest.write_text(manifest.read_text().replace("id: quick-metrics", "id: channel-probe"))
    (algorithms / "channel-probe" / "train.py").write_text(PROBE)
    probe = load_algorithms(algorithms)["channel-probe"]
    folder = home / "data" / "table"
    folder.mkdir()
    (folder / "rows.csv").write_text("1,2\n")
    compute = make_compute(algorithms)

    done, root = run(compute, events, probe, {"train": folder.as_uri()}, origin=SLACK)

    assert done.detail.status == "Completed", done.detail.failure_reason
    seen = json.loads((root / "output/data/seen.json").read_text())
    assert seen["modes"] == {"train": "0o555", "rows.csv": "0o444"}
    if os.geteuid() != 0:  # root ignores modes; the copy still keeps the original safe
        assert (seen["append"], seen["create"]) == ("PermissionError", "PermissionError")
    assert (folder / "rows.csv").read_text() == "1,2\n"
    assert sorted(p.name for p in folder.iterdir()) == ["rows.csv"]


def test_channels_live_outside_the_folder_tensorboard_scans_and_go_when_the_run_ends(
        make_compute: Callable[..., LocalCompute], events: EventLog, quick: Algorithm,
        home: Path) -> None:
    (home / "data" / "rows.csv").write_text("x\n1\n")
    compute = make_compute()

    _, root = run(compute, events, quick, {"train": (home / "data/rows.csv").as_uri()},
                  origin=SLACK)

    seen = json.loads((root / "output/data/seen.json").read_text())
    channel = Path(seen["env"]["SM_CHANNEL_TRAIN"])
    assert not channel.is_relative_to(home / "runs")
    assert channel.is_relative_to(home / "inputs")
    assert [p for p in (home / "runs").rglob("*") if p.is_symlink()] == []
    assert not channel.exists() and not (home / "inputs" / root.name).exists()


def test_inputs_inside_the_runs_folder_are_refused(home: Path) -> None:
    with pytest.raises(ValueError, match="inputs_dir"):
        LocalCompute(home / "runs", algorithms_root=FIXTURES, inputs_dir=home / "runs" / "in")


def test_a_channel_the_launch_refuses_leaves_nothing_behind(
        make_compute: Callable[..., LocalCompute], quick: Algorithm, home: Path) -> None:
    (home / "data" / "rows.csv").write_text("x\n1\n")
    fifo = home / "data" / "pipe"
    os.mkfifo(fifo)

    text = refusal(make_compute(), quick, fifo.as_uri())

    assert "isn't a file or folder trainbot may read here" in text
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert list((home / "inputs").glob("*")) == []


def test_a_failure_about_the_data_names_the_uri_not_the_copy(
        make_compute: Callable[..., LocalCompute], events: EventLog, home: Path) -> None:
    algorithm = load_algorithms(REPO_ALGORITHMS)["tabular-classification"]
    folder = home / "data" / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no csv here\n")
    compute = make_compute(REPO_ALGORITHMS)

    done, _ = run(compute, events, algorithm, {"train": folder.as_uri()}, origin=SLACK)

    reason = done.detail.failure_reason or ""
    assert done.detail.status == "Failed" and folder.as_uri() in reason, reason
    assert str(compute.inputs_dir) not in reason


def test_through_slack_a_secret_file_and_a_missing_one_get_one_refusal_before_any_version(
        tmp_path: Path) -> None:
    from tests.integration.slack_harness import Harness

    h = Harness(tmp_path, algorithms=["quick-metrics"])
    try:
        h.command("start quick-metrics --data train=file:///etc/passwd --name secret")
        h.command("start quick-metrics --data train=/nonexistent/x --name missing")
        told = h.wait(lambda: (lambda t: t if len(t) == 2 else None)(
            [e for e in h.ephemeral_texts() if "may read here" in e]))
        passwd = next(t for t in told if "etc/passwd" in t)
        missing = next(t for t in told if "nonexistent" in t)
        assert json.loads(passwd)["text"].replace("file:///etc/passwd", "URI") == json.loads(
            missing)["text"].replace("/nonexistent/x", "URI")
        assert h.bot.deps.store.list_jobs() == []
    finally:
        h.close()
