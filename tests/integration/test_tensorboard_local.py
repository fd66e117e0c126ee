"""LocalTensorBoard against a real tensorboard server on a free loopback port."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bot.adapters.local.compute import LocalCompute
from bot.adapters.tensorboard_local import LocalTensorBoard, stop_owned
from bot.domain import BackendError, JobSpec, JobVersion, Status
from tests.processes import processes_mentioning

pytest.importorskip("tensorboard")

RUN = "trainbot-demo-v1-ab12"


def write_events(runs_dir: Path, run: str) -> None:
    from torch.utils.tensorboard import SummaryWriter  # heavy: only this test needs it

    with SummaryWriter(log_dir=str(runs_dir / run / "output" / "tensorboard")) as writer:
        for step in range(3):
            writer.add_scalar("train/loss", 1.0 / (step + 1), step)


def listed_runs(base: str) -> list[str]:
    with urllib.request.urlopen(f"{base}data/runs", timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def board(tmp_path: Path) -> Iterator[LocalTensorBoard]:
    runs = tmp_path / "runs"
    runs.mkdir()
    write_events(runs, RUN)
    tensorboard = LocalTensorBoard(runs, port=0, reload_interval_s=1)
    yield tensorboard
    tensorboard.stop()


def wait_listed(base: str, run: str) -> list[str]:
    deadline = time.monotonic() + 30
    while run not in listed_runs(base):
        assert time.monotonic() < deadline, listed_runs(base)
        time.sleep(0.3)
    return listed_runs(base)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port some other server listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_server_lists_a_run_written_with_summary_writer(board: LocalTensorBoard) -> None:
    base = board.url_for(RUN).split("?")[0]

    wait_listed(base, RUN)
    assert base.startswith("http://127.0.0.1:")


def test_the_server_never_scans_a_runs_inputs(board: LocalTensorBoard) -> None:
    # Event files among a run's inputs (a data channel pointing at someone's logs) stay hidden.
    write_events(board.runs_dir / RUN / "input" / "data", "train")
    base = board.url_for(RUN).split("?")[0]

    assert wait_listed(base, RUN) == [RUN]


def test_url_for_a_run_filters_on_that_run(board: LocalTensorBoard) -> None:
    url = urlparse(board.url_for(RUN))

    assert (url.scheme, url.hostname, url.path, url.fragment) == (
        "http", "127.0.0.1", "/", "timeseries")
    assert parse_qs(url.query) == {"runFilter": [RUN]}
    with urllib.request.urlopen(board.url_for(RUN), timeout=5) as response:
        assert response.status == 200


def test_a_second_instance_reuses_the_running_server(board: LocalTensorBoard) -> None:
    base = board.ensure_started()
    pid = json.loads(board.state_file.read_text())["pid"]

    again = LocalTensorBoard(board.runs_dir, port=0)

    assert again.ensure_started() == base
    assert json.loads(board.state_file.read_text())["pid"] == pid


def test_stop_shuts_the_server_down(board: LocalTensorBoard) -> None:
    base = board.ensure_started()

    board.stop()

    assert not board.running()
    with pytest.raises(OSError):
        listed_runs(base)


def test_a_python_without_tensorboard_gives_a_clear_backend_error(tmp_path: Path) -> None:
    # The same interpreter without site-packages (-S) can't import tensorboard.
    bare = tmp_path / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    bare.chmod(0o755)
    board = LocalTensorBoard(tmp_path, port=0, python=str(bare), start_timeout_s=10)

    with pytest.raises(BackendError, match="TensorBoard is not installed"):
        board.ensure_started()
    assert not board.state_file.exists()


def test_links_of_local_compute_point_at_the_run(board: LocalTensorBoard, tmp_path: Path) -> None:
    compute = LocalCompute(board.runs_dir, algorithms_root=tmp_path, tensorboard=board)
    now = datetime.now(UTC)
    version = JobVersion(
        job="demo", number=1, requested_by="U1", status=Status.TRAINING, created_at=now,
        updated_at=now, backend="local", backend_job_name=RUN,
        spec=JobSpec(algorithm="x", algorithm_version="1.0.0", pool="local-cpu"))

    links = compute.links(version)

    assert links.tensorboard == board.url_for(RUN)
    assert links.logs == (board.runs_dir / RUN / "logs" / "stdout.log").as_uri()


def test_a_taken_default_port_falls_back_to_the_next_free_one(
        tmp_path: Path, listener: int) -> None:
    board = LocalTensorBoard(tmp_path / "runs", port=listener, port_fallback=True)
    try:
        base = board.ensure_started()
        assert urlparse(base).port not in (listener, None)
        listed_runs(base)  # answers
    finally:
        board.stop()


def test_a_taken_explicit_port_names_the_setting(tmp_path: Path, listener: int) -> None:
    board = LocalTensorBoard(tmp_path / "runs", port=listener)

    with pytest.raises(BackendError) as caught:
        board.ensure_started()
    assert f"Port {listener} is already in use" in caught.value.message
    assert "TRAINBOT_TENSORBOARD_PORT" in (caught.value.hint or "")
    assert board.last_error is caught.value


def test_the_server_and_its_data_server_stop_with_the_process_that_started_them(
        tmp_path: Path) -> None:
    board = LocalTensorBoard(tmp_path / "runs", port=0, state_dir=tmp_path)
    board.ensure_started()
    assert processes_mentioning(str(board.logdir))

    stop_owned()  # what atexit runs when this process exits

    deadline = time.monotonic() + 10
    while processes_mentioning(str(board.logdir)):
        assert time.monotonic() < deadline, processes_mentioning(str(board.logdir))
        time.sleep(0.1)


def test_a_detached_server_is_left_running_for_later_processes(tmp_path: Path) -> None:
    board = LocalTensorBoard(tmp_path / "runs", port=0, state_dir=tmp_path, detach=True)
    board.ensure_started()
    try:
        stop_owned()
        assert board.running()
    finally:
        board.stop()
