"""Each algorithm runs from its packaged source dir alone, with no ../_shared beside it: the
shared modules it imports (tabular, checkpoint_files, …) are among the files publish uploads
and the local runner copies (bot.catalog.source_files)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.algorithms.conftest import ALGORITHM_IDS, ALGORITHMS_DIR, Result, assert_complete_run
from tests.algorithms.conftest import sm_env as make_env

SMALL = {
    "image-classification": {"epochs": 1},
    "tabular-classification": {"max_iter": 5, "eval_every": 5},
    "tabular-regression": {"max_iter": 5, "eval_every": 5},
}


def packaged(algorithm: str, into: Path) -> Path:
    """The algorithm's source dir as SageMaker and the local runner see it."""
    catalog = pytest.importorskip("bot.catalog")
    for name, path in catalog.source_files(ALGORITHMS_DIR / algorithm):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return into


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHM_IDS)
def test_the_packaged_source_dir_runs_on_its_own(algorithm: str, tmp_path: Path) -> None:
    code = packaged(algorithm, tmp_path / "code")
    root = tmp_path / "run"
    env = make_env(root, SMALL[algorithm], {})
    done = subprocess.run(
        [sys.executable, str(code / "train.py")],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_complete_run(Result(algorithm, root, done.returncode, done.stdout, done.stderr, env))
