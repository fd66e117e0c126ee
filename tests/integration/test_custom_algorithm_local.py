"""A team's own script algorithm end to end on the local backend, exactly as a preset runs:
registered through the store (a copy of tabular-classification under a new id, in a folder of
its own), started, trained by the same runner, completed with metrics, evaluation and
TensorBoard; a rerun runs the registered version its base ran, not a newer one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.bootstrap import build_deps
from bot.catalog import source_digest, source_files
from bot.config import RerunApproval, Settings
from bot.domain import Algorithm, AlgorithmSource, JobVersion, Status
from bot.services import queries
from bot.services.context import Deps
from bot.services.requests import LaunchRequest, rerun, start_job
from tests.integration.slack_harness import REPO, wait_until

PRESET = REPO / "algorithms" / "tabular-classification"
SMALL = {"max_iter": "30"}
MARKER = "registered_again.txt"


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Deps]:
    d = build_deps(Settings(home=tmp_path / "home", algorithms_dir=REPO / "algorithms",
                            tensorboard_port=0, rerun_approval=RerunApproval.NEVER))
    yield d
    d.compute.close()
    tb = getattr(d.compute, "tensorboard", None)
    if tb is not None:
        tb.stop()


def team_folder(target: Path, *, extra: str | None = None) -> Path:
    """The preset's files (its shared modules included: a team's folder carries its own) and
    a manifest under a new id."""
    for name, path in source_files(PRESET):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / name)
    manifest = yaml.safe_load((PRESET / "manifest.yml").read_text())
    (target / "manifest.yml").write_text(yaml.safe_dump({**manifest, "id": "churn-gbt",
                                                         "title": "Churn (team's own)"}))
    if extra:
        (target / MARKER).write_text(extra)
    return target


def register(deps: Deps, folder: Path) -> Algorithm:
    manifest = yaml.safe_load((folder / "manifest.yml").read_text())
    digest = source_digest(folder, shared=False)
    assert digest is not None
    source = AlgorithmSource(kind="script", digest=digest, location=folder.as_uri(),
                             owner="UOWNER", registered_at=datetime.now(UTC))
    stored, _ = deps.store.register_algorithm(
        deps.scope, Algorithm.model_validate({**manifest, "source": source.model_dump()}))
    return stored


def finished(deps: Deps, job: str, number: int) -> JobVersion:
    done = wait_until(lambda: (lambda x: x if x.status.terminal else None)(
        deps.store.get_version(job, number)), timeout=180)
    assert done.status is Status.COMPLETED, (done.failure_reason, done.log_tail)
    return done


def code_dir(deps: Deps, version: JobVersion) -> Path:
    runs = deps.compute.runs_dir  # type: ignore[attr-defined]
    return Path(runs) / (version.backend_job_name or "") / "code"


@pytest.mark.slow
def test_a_registered_script_algorithm_trains_like_a_preset(deps: Deps, tmp_path: Path) -> None:
    folder = team_folder(tmp_path / "churn-v1")
    algorithm = register(deps, folder)
    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="churn-gbt", params=SMALL,
                                         pool="local-cpu", job_name="churn"))
    assert v.spec.algorithm_digest == algorithm.source.digest  # type: ignore[union-attr]
    done = finished(deps, "churn", 1)

    objective = algorithm.objective.metric
    assert objective in done.metrics
    assert done.evaluation and done.evaluation["objective"]["metric"] == objective
    assert done.series and all(s.count >= 1 for s in done.series.values())
    model_dir = Path((done.artifacts.model or "").removeprefix("file://"))
    assert any(model_dir.iterdir()), "a model artifact was written"
    tb_dir = Path((done.artifacts.tensorboard or "").removeprefix("file://"))
    assert list(tb_dir.rglob("events.out.tfevents*")), "TensorBoard event files were written"
    # Its own files, from the registered folder: the same set, nothing laid beside them.
    ran = sorted(p.relative_to(code_dir(deps, done)).as_posix()
                 for p in code_dir(deps, done).rglob("*") if p.is_file())
    assert ran == [name for name, _ in source_files(folder, shared=False)]

    [node] = [n for n in queries.lineage(deps, "churn").nodes if n.kind == "algorithm"]
    assert f"source sha256:{algorithm.source.digest[:12]}" in (node.detail or "")  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_rerun_runs_the_registered_version_its_base_ran(deps: Deps, tmp_path: Path) -> None:
    first = register(deps, team_folder(tmp_path / "churn-v1"))
    v1, _ = start_job(deps, LaunchRequest(user="U1", algorithm="churn-gbt", params=SMALL,
                                          pool="local-cpu", job_name="churn"))
    finished(deps, "churn", 1)
    newer = register(deps, team_folder(tmp_path / "churn-v2", extra="v2"))
    assert newer.source.digest != first.source.digest  # type: ignore[union-attr]

    v2, _ = rerun(deps, LaunchRequest(user="U1"), job="churn")
    assert v2.spec.algorithm_digest == first.source.digest  # type: ignore[union-attr]
    assert v2.status is not Status.AWAITING_APPROVAL
    assert not (code_dir(deps, finished(deps, "churn", 2)) / MARKER).exists()

    v3, _ = start_job(deps, LaunchRequest(user="U1", algorithm="churn-gbt", params=SMALL,
                                          pool="local-cpu", job_name="churn-new"))
    assert v3.spec.algorithm_digest == newer.source.digest  # type: ignore[union-attr]
    assert (code_dir(deps, finished(deps, "churn-new", 1)) / MARKER).read_text() == "v2"
