"""Acceptance of issue #15 (a team's own algorithm) as a user runs it: the real `trainbot`
CLI in subprocesses, a fresh TRAINBOT_HOME, alice an admin, bob neither admin nor publisher,
and the example folder `examples/custom-algorithm` registered, trained, inspected, removed
and rerun on the local backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.adapters.tensorboard_local import LocalTensorBoard
from tests.integration.slack_harness import REPO
from tests.processes import kill, processes_mentioning

FOLDER = "examples/custom-algorithm"  # as the README types it, from the repository root
ALGO_ID = "team-churn-classifier"
SAMPLE = REPO / FOLDER / "data" / "sample.csv"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def make_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TRAINBOT_HOME=str(home), TRAINBOT_ADMINS="alice", TRAINBOT_USER="alice",
               AWS_EC2_METADATA_DISABLED="true", TRAINBOT_TENSORBOARD_PORT="0",
               TRAINBOT_RERUN_APPROVAL="never")
    env.pop("TRAINBOT_ALGORITHM_PUBLISHERS", None)
    return env


def stop_everything(home: Path) -> None:
    """What the CLI leaves running for `trainbot tb` (its TensorBoard) is stopped; anything
    else of this home still running is a failure."""
    LocalTensorBoard(home / "runs", state_dir=home).stop()
    left = processes_mentioning(str(home))
    if left:
        kill(left)
        pytest.fail(f"processes left running for {home}: {left}")


def trainbot(env: dict[str, str], *words: str, user: str = "alice",
             check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "bot.cli", *words],
                          env=dict(env, TRAINBOT_USER=user), cwd=REPO, text=True,
                          capture_output=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"trainbot {' '.join(words)}: exit {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def start_churn(env: dict[str, str], *extra: str, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
    return trainbot(env, "start", ALGO_ID, "--data", f"train={SAMPLE}", *extra, check=check)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    yield make_env(home)
    stop_everything(home)


@dataclass(frozen=True)
class Trained:
    env: dict[str, str]
    added: subprocess.CompletedProcess[str]  # alice's `algorithms add`
    listed: dict[str, object]  # the algorithm as `trainbot --json algorithms` lists it
    run: subprocess.CompletedProcess[str]  # `trainbot start … --name churn --wait`


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """alice registers the example and trains it once as job `churn` (shared by the read-only
    checks below, which don't change this home)."""
    home = tmp_path_factory.mktemp("own-algorithm") / "home"
    env = make_env(home)
    try:
        added = trainbot(env, "algorithms", "add", FOLDER)
        algorithms = json.loads(trainbot(env, "--json", "algorithms").stdout)
        [listed] = [a for a in algorithms if a["id"] == ALGO_ID]
        run = start_churn(env, "--name", "churn", "--wait", check=False)
        yield Trained(env=env, added=added, listed=listed, run=run)
    finally:
        stop_everything(home)


# -- (a) who may add ----------------------------------------------------------------------------

def test_someone_neither_admin_nor_publisher_may_not_add(env: dict[str, str]) -> None:
    refused = trainbot(env, "algorithms", "add", FOLDER, user="bob", check=False)

    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "Only admins or algorithm publishers may add" in refused.stderr
    assert not (Path(env["TRAINBOT_HOME"]) / "algorithms").exists()  # nothing stored
    algorithms = json.loads(trainbot(env, "--json", "algorithms", user="bob").stdout)
    assert ALGO_ID not in [a["id"] for a in algorithms]


# -- (b) an admin adds it; it is listed as custom ----------------------------------------------

@pytest.mark.slow
def test_an_admin_adds_it_and_it_is_listed_as_custom(trained: Trained) -> None:
    assert trained.added.returncode == 0 and "new version" in trained.added.stdout
    listed = trained.listed
    assert (listed["custom"], listed["owner"], listed["kind"]) == (True, "alice", "script")
    assert HEX64.match(str(listed["digest"]))
    assert f"sha256:{str(listed['digest'])[:12]}" in trained.added.stdout


# -- (c) anyone starts it; the results read as for a preset -------------------------------------

@pytest.mark.slow
def test_it_trains_to_completion_above_the_baseline(trained: Trained) -> None:
    assert trained.run.returncode == 0, trained.run.stderr
    assert "COMPLETED" in trained.run.stdout
    shown = json.loads(trainbot(trained.env, "--json", "show", "churn").stdout)
    assert shown["status"] == "COMPLETED"
    assert shown["objective"]["metric"] == "validation:accuracy"
    assert shown["objective"]["value"] > 0.8  # always "no" would score 0.70
    assert shown["spec"]["algorithm"] == ALGO_ID
    assert shown["spec"]["algorithm_digest"] == trained.listed["digest"]


@pytest.mark.slow
def test_eval_prints_the_per_class_rows(trained: Trained) -> None:
    out = trainbot(trained.env, "eval", "churn").stdout

    assert "Per class" in out
    rows = {line.split()[1] for line in out.splitlines()
            if re.match(r"^\s*\|\s+(no|yes)\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+\d+\s*$", line)}
    assert rows == {"no", "yes"}, out


@pytest.mark.slow
def test_lineage_names_the_source_digest_and_its_owner(trained: Trained) -> None:
    lineage = json.loads(trainbot(trained.env, "--json", "lineage", "churn").stdout)

    [node] = [n for n in lineage["nodes"] if n["kind"] == "algorithm"]
    digest = str(trained.listed["digest"])
    assert f"sha256:{digest[:12]}" in node["detail"] and "owner alice" in node["detail"]


@pytest.mark.slow
def test_tb_gives_a_link_and_stop_tensorboard_stops_it(trained: Trained) -> None:
    url = trainbot(trained.env, "tb", "churn").stdout.split()[-1]

    assert url.startswith("http://")
    runs = url.split("?")[0] + "data/runs"
    with urllib.request.urlopen(runs, timeout=10) as response:
        assert response.status == 200
    assert "TensorBoard stopped" in trainbot(trained.env, "admin", "stop-tensorboard").stdout
    assert not processes_mentioning(trained.env["TRAINBOT_HOME"])
    with pytest.raises(OSError):
        urllib.request.urlopen(runs, timeout=5)


# -- (d) the same folder again, remove, and a rerun of what ran ---------------------------------

@pytest.mark.slow
def test_removed_it_is_refused_to_new_starts_but_a_rerun_runs_what_v1_ran(
        env: dict[str, str]) -> None:
    first = json.loads(trainbot(env, "--json", "algorithms", "add", FOLDER).stdout)
    digest = first["digest"]
    start_churn(env, "--name", "churn", "--wait")

    again = trainbot(env, "algorithms", "add", FOLDER)
    assert "unchanged" in again.stdout and "new version" not in again.stdout
    trainbot(env, "algorithms", "remove", ALGO_ID)
    algorithms = json.loads(trainbot(env, "--json", "algorithms").stdout)
    assert ALGO_ID not in [a["id"] for a in algorithms]

    refused = start_churn(env, "--name", "churn-new", check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: There is no algorithm")
    assert refused.stderr.count("error:") == 1

    rerun = trainbot(env, "rerun", "churn", "--wait")
    assert "COMPLETED" in rerun.stdout
    v2 = json.loads(trainbot(env, "--json", "show", "churn", "v2").stdout)
    assert (v2["status"], v2["parent"]) == ("COMPLETED", 1)
    assert v2["spec"]["algorithm_digest"] == digest
    assert v2["objective"]["value"] > 0.8
