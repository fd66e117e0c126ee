"""The `trainbot` CLI as a user runs it: real processes, a fresh TRAINBOT_HOME."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.tensorboard_local import LocalTensorBoard
from tests.integration.slack_harness import algorithms_dir


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = dict(os.environ)
    home = tmp_path / "home"
    e.update(TRAINBOT_HOME=str(home), TRAINBOT_USER="alice",
             TRAINBOT_ALGORITHMS_DIR=str(algorithms_dir(tmp_path, [
                 "quick-metrics", "crasher", "tabular-classification"])),
             TRAINBOT_TENSORBOARD_PORT="0", TRAINBOT_RERUN_APPROVAL="never")
    yield e
    # The CLI leaves its TensorBoard running for `trainbot tb` (documented): stop it here,
    # as `trainbot admin stop-tensorboard` does.
    LocalTensorBoard(home / "runs", state_dir=home).stop()


def trainbot(env: dict[str, str], *words: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "bot.cli", *words], env=env, text=True,
                          capture_output=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_help_and_pools_on_a_fresh_home(env: dict[str, str]) -> None:
    assert "start ALGORITHM" in trainbot(env, "help").stdout
    pools = trainbot(env, "pools").stdout
    assert "gpu-1" in pools and "ml.g5.xlarge" in pools


def test_presets_survive_a_restart(env: dict[str, str]) -> None:
    trainbot(env, "preset", "save", "fast", "tabular-classification", "max_iter=20",
             "--description", "quick baseline")
    # every call is a new process: the data lives in the SQLite file
    listing = trainbot(env, "preset", "list").stdout
    assert "fast" in listing and "quick baseline" in listing
    shown = json.loads(trainbot(env, "--json", "preset", "show", "fast").stdout)
    assert shown["name"] == "fast" and shown["spec"]["hyperparameters"]["max_iter"] == 20
    dup = trainbot(env, "preset", "save", "fast", "tabular-classification", check=False)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    other = dict(env, TRAINBOT_USER="bob")
    denied = trainbot(other, "preset", "delete", "fast", check=False)
    assert denied.returncode == 2 and "owner" in denied.stderr
    trainbot(env, "preset", "delete", "fast")
    assert "No presets" in trainbot(env, "preset", "list").stdout


def test_start_wait_completes_and_the_results_are_queryable(env: dict[str, str]) -> None:
    done = trainbot(env, "start", "quick-metrics", "epochs=3", "--name", "q1", "--wait")
    assert "COMPLETED" in done.stdout and "training [" not in done.stdout  # progress → stderr
    shown = json.loads(trainbot(env, "--json", "show", "q1").stdout)
    assert shown["status"] == "COMPLETED" and shown["metrics"]
    assert shown["links"]["tensorboard"].startswith("http://127.0.0.1:")
    assert "Evaluation of" in trainbot(env, "eval", "q1").stdout
    trainbot(env, "rerun", "q1", "epochs=2", "--wait")
    diff = trainbot(env, "diff", "q1", "v1", "v2").stdout
    assert "epochs" in diff and "3" in diff and "2" in diff
    assert "v2 ← v1" in trainbot(env, "versions", "q1").stdout


def test_failed_run_exits_non_zero_with_reason(env: dict[str, str]) -> None:
    failed = trainbot(env, "start", "crasher", "--name", "bad", "--wait", check=False)
    assert failed.returncode == 1 and "FAILED" in failed.stdout and "Reason" in failed.stdout


def test_bad_input_goes_to_stderr_with_usage(env: dict[str, str]) -> None:
    bad = trainbot(env, "start", "quick-metrics", "epochs=lots", check=False)
    assert bad.returncode == 2 and "epochs" in bad.stderr and bad.stdout == ""
    unknown = trainbot(env, "start", "nope", check=False)
    assert unknown.returncode == 2 and "quick-metrics" in unknown.stderr


@pytest.fixture
def port_6006() -> Iterator[None]:
    """Someone else's server on 127.0.0.1:6006 (the usual: an ML engineer's own TensorBoard)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 6006))
        except OSError:
            pytest.skip("port 6006 is already taken by another program on this machine, so "
                        "this test can't hold it itself")
        s.listen()
        yield


def test_tb_gives_a_working_link_when_6006_is_taken(
        env: dict[str, str], port_6006: None) -> None:
    del env["TRAINBOT_TENSORBOARD_PORT"]
    trainbot(env, "start", "quick-metrics", "epochs=2", "--name", "q6", "--wait")

    url = trainbot(env, "tb", "q6").stdout.split()[-1]

    assert url.startswith("http://127.0.0.1:") and ":6006/" not in url
    base = url.split("?")[0]
    with urllib.request.urlopen(f"{base}data/runs", timeout=10) as response:
        assert response.status == 200


def test_admin_stop_tensorboard_stops_the_server_the_cli_left(env: dict[str, str]) -> None:
    trainbot(env, "start", "quick-metrics", "epochs=1", "--name", "q7", "--wait")
    base = trainbot(env, "tb", "q7").stdout.split()[-1].split("?")[0]

    assert "TensorBoard stopped" in trainbot(env, "admin", "stop-tensorboard").stdout
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}data/runs", timeout=5)


@pytest.mark.parametrize("words", [["--help"], ["-h"], ["start", "--help"], ["help", "start"]])
def test_help_flags_print_trainbot_usage_and_exit_0(
        env: dict[str, str], words: list[str]) -> None:
    out = trainbot(env, *words).stdout
    assert out.startswith("usage: trainbot ") and "/train" not in out


def test_version_prints_the_installed_version(env: dict[str, str]) -> None:
    from importlib.metadata import version

    assert trainbot(env, "--version").stdout == f"trainbot {version('trainbot')}\n"


def test_help_lists_every_command_and_the_global_options(env: dict[str, str]) -> None:
    out = trainbot(env, "help").stdout
    for words in ("trainbot run", "trainbot serve", "trainbot chat", "admin reconcile",
                  "admin init-store", "admin stop-tensorboard", "algorithms publish",
                  "algorithms add PATH", "algorithms add --image URI --manifest FILE",
                  "algorithms remove ID", "--wait", "--json", "trainbot approve"):
        assert words in out, words
    assert "trainbot admin stop-tensorboard" in trainbot(env, "help", "admin").stdout


def test_json_pools_is_a_list_of_pool_objects(env: dict[str, str]) -> None:
    pools = json.loads(trainbot(env, "--json", "pools").stdout)
    gpu = next(p for p in pools if p["id"] == "gpu-1")
    assert gpu["instance_type"] == "ml.g5.xlarge" and gpu["gpu_count"] >= 1
    assert isinstance(gpu["hourly_price_usd"], float)
    assert isinstance(gpu["requires_approval"], bool)


def test_json_versions_gives_each_version_with_its_objective(env: dict[str, str]) -> None:
    trainbot(env, "start", "quick-metrics", "epochs=2", "--name", "qv", "--wait")
    trainbot(env, "rerun", "qv", "epochs=1", "--wait")

    rows = json.loads(trainbot(env, "--json", "versions", "qv").stdout)

    assert [(r["number"], r["parent"], r["status"]) for r in rows] == [
        (1, None, "COMPLETED"), (2, 1, "COMPLETED")]
    objective = rows[1]["objective"]
    assert objective["metric"] == "validation:accuracy"
    assert isinstance(objective["value"], float)
    status = json.loads(trainbot(env, "--json", "status").stdout)
    assert set(status) >= {"running", "queued", "awaiting_approval", "failed_recent"}


def test_json_output_into_a_closed_pipe_stops_quietly(env: dict[str, str]) -> None:
    # As `trainbot --json help | head -c 10`: the reader is gone before trainbot writes.
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "--json", "help"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141) and err == ""


def test_errors_are_plain_text_with_one_prefix(env: dict[str, str]) -> None:
    err = trainbot(env, "versions", "nope", check=False).stderr
    assert err.startswith("error: ") and err.count("rror:") == 1
    assert "`" not in err and "*" not in err and "/train" not in err


@pytest.mark.parametrize(("words", "meant"), [
    (["strat", "quick-metrics"], "start"),
    (["start", "quick-metric"], "quick-metrics"),
    (["start", "quick-metrics", "--pool", "gpu1"], "gpu-1"),
    (["preset", "show", "fsat"], "fast"),
    (["help", "amdin"], "admin"),
])
def test_typos_get_did_you_mean(env: dict[str, str], words: list[str], meant: str) -> None:
    trainbot(env, "preset", "save", "fast", "tabular-classification")
    err = trainbot(env, *words, check=False).stderr
    assert f"Did you mean {meant}" in err


def test_typo_in_a_job_name_gets_did_you_mean(env: dict[str, str]) -> None:
    trainbot(env, "start", "quick-metrics", "epochs=1", "--name", "alpha", "--wait")
    assert "Did you mean alpha" in trainbot(env, "show", "alpah", check=False).stderr


# -- a team's own algorithms -----------------------------------------------------------------------

TEAM_MANIFEST = """\
id: team-clf
title: Team classifier
version: 1.0.0
framework: pytorch
framework_version: "2.5"
entry_point: train.py
metrics:
  - {name: "validation:accuracy", regex: "acc=([0-9.]+)"}
objective: {metric: "validation:accuracy"}
"""


def team_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "team-clf"
    folder.mkdir(parents=True)
    (folder / "manifest.yml").write_text(TEAM_MANIFEST)
    (folder / "train.py").write_text("print('acc=0.9')\n")
    return folder


def test_algorithms_add_registers_a_folder_once_and_remove_hides_it(
        env: dict[str, str], tmp_path: Path) -> None:
    env = dict(env, TRAINBOT_ALGORITHM_PUBLISHERS="alice")
    folder = team_folder(tmp_path)

    added = json.loads(trainbot(env, "--json", "algorithms", "add", str(folder)).stdout)

    digest = added["digest"]
    assert {k: added[k] for k in ("id", "version", "kind", "custom", "owner", "image",
                                  "created", "hidden")} == {
        "id": "team-clf", "version": "1.0.0", "kind": "script", "custom": True,
        "owner": "alice", "image": None, "created": True, "hidden": False}
    copy = Path(env["TRAINBOT_HOME"]) / "algorithms" / "team-clf" / digest
    assert added["location"] == copy.as_uri() and (copy / "train.py").is_file()
    assert added["registered_at"].startswith("20")
    again = trainbot(env, "algorithms", "add", str(folder)).stdout
    assert again.startswith(f"registered team-clf 1.0.0 (sha256:{digest[:12]}) — unchanged")
    (folder / "train.py").write_text("print('acc=0.95')\n")
    assert "— new version" in trainbot(env, "algorithms", "add", str(folder)).stdout
    removed = json.loads(trainbot(env, "--json", "algorithms", "remove", "team-clf").stdout)
    assert removed["hidden"] and removed["removed"] and removed["digest"] != digest
    assert "removed already" in trainbot(env, "algorithms", "remove", "team-clf").stdout
    typo = trainbot(env, "algorithms", "remove", "team-cfl", check=False)
    assert typo.returncode == 2 and "Did you mean team-clf?" in typo.stderr


def test_algorithms_add_refuses_who_is_neither_publisher_nor_admin(
        env: dict[str, str], tmp_path: Path) -> None:
    env = dict(env, TRAINBOT_ADMINS="bob")

    refused = trainbot(env, "algorithms", "add", str(team_folder(tmp_path)), check=False)

    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == ("error: Only admins or algorithm publishers may add algorithms. "
                              "Ask one of: @bob.\n")
    assert not (Path(env["TRAINBOT_HOME"]) / "algorithms").exists()
    admin = trainbot(dict(env, TRAINBOT_USER="bob"), "algorithms", "add",
                     str(team_folder(tmp_path / "b")))
    assert "— new version" in admin.stdout


def test_algorithms_add_image_records_the_image_and_uploads_nothing(
        env: dict[str, str], tmp_path: Path) -> None:
    env = dict(env, TRAINBOT_ADMINS="alice")
    manifest = team_folder(tmp_path) / "manifest.yml"
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team-clf:1.0"

    done = trainbot(env, "--json", "algorithms", "add", "--image", image,
                    "--manifest", str(manifest))

    added = json.loads(done.stdout)
    assert (added["kind"], added["image"], added["location"]) == ("image", image, None)
    assert "pin the image by digest" in done.stderr
    assert not (Path(env["TRAINBOT_HOME"]) / "algorithms").exists()


@pytest.mark.parametrize(("words", "error"), [
    (["algorithms", "add"], "error: Give the algorithm's folder (PATH)"),
    (["algorithms", "add", "--image", "x:1"], "error: --image goes with --manifest FILE alone."),
    (["algorithms", "add", ".", "--cpu-image", "x:1"], "error: --cpu-image and --gpu-image"),
    (["algorithms", "remove"], "error: the following arguments are required: id."),
    (["algorithms", "add", ".", "--color"], "error: unrecognized arguments: --color."),
])
def test_algorithms_add_usage_errors_are_one_error_line(
        env: dict[str, str], words: list[str], error: str) -> None:
    bad = trainbot(dict(env, TRAINBOT_ADMINS="alice"), *words, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith(error) and bad.stdout == ""
    assert bad.stderr.count("error:") == 1


@pytest.mark.parametrize("words", [["algorithms", "add", "--help"], ["help", "algorithms", "add"],
                                   ["algorithms", "remove", "-h"]])
def test_algorithms_add_and_remove_have_help(env: dict[str, str], words: list[str]) -> None:
    out = trainbot(env, *words).stdout
    assert out.startswith("usage: trainbot algorithms ") and "--json" in out
