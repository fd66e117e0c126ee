"""Each algorithm folder is self-contained and its manifest agrees with its script."""

from __future__ import annotations

import re

import pytest

from tests.algorithms.conftest import ALGORITHM_IDS, ALGORITHMS_DIR, import_modules, manifest

SHARED_DIR = ALGORITHMS_DIR / "_shared"


def test_the_three_presets_exist() -> None:
    assert ALGORITHM_IDS == ["image-classification", "tabular-classification", "tabular-regression"]


def test_shared_modules_live_once() -> None:
    """One copy in _shared; publish and the local runner lay it beside each train.py."""
    shared = {p.name for p in SHARED_DIR.glob("*.py")}
    assert {
        "sm_contract.py",
        "evaluation.py",
        "tb_writer.py",
        "checkpoint_files.py",
        "tabular.py",
    } <= shared
    for algorithm in ALGORITHM_IDS:
        copies = shared & {p.name for p in (ALGORITHMS_DIR / algorithm).glob("*.py")}
        assert not copies, f"{algorithm} carries its own copy of {sorted(copies)}"


@pytest.mark.parametrize("algorithm", ALGORITHM_IDS)
def test_algorithm_imports_neither_bot_nor_another_algorithm(algorithm: str) -> None:
    for path in (ALGORITHMS_DIR / algorithm).glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+bot\b", text, re.M), path
        assert "algorithms." not in text, path


@pytest.mark.parametrize("algorithm", ALGORITHM_IDS)
def test_manifest_metrics_suit_sagemaker(algorithm: str) -> None:
    spec = manifest(algorithm)
    assert spec["id"] == algorithm
    assert (ALGORITHMS_DIR / algorithm / spec["entry_point"]).is_file()
    assert (ALGORITHMS_DIR / algorithm / "requirements.txt").is_file()
    assert 1 <= len(spec["metrics"]) <= 40
    for metric in spec["metrics"]:
        assert re.compile(metric["regex"]).groups == 1, metric
    assert spec["objective"]["metric"] in {m["name"] for m in spec["metrics"]}
    assert {"current", "total"} <= set(re.compile(spec["progress_regex"]).groupindex)


@pytest.mark.parametrize("algorithm", ALGORITHM_IDS)
def test_manifest_hyperparameters_match_the_script(algorithm: str) -> None:
    spec = manifest(algorithm)
    (train,) = import_modules(algorithm, "train")
    assert {"id": algorithm, "version": spec["version"]} == train.ALGORITHM
    declared = [
        {
            "name": hp["name"],
            "type": hp["type"],
            "default": hp["default"],
            "min": hp.get("min"),
            "max": hp.get("max"),
            "choices": tuple(hp.get("choices", ())),
        }
        for hp in spec["hyperparameters"]
    ]
    scripted = [
        {
            "name": p.name,
            "type": p.type,
            "default": p.default,
            "min": p.min,
            "max": p.max,
            "choices": p.choices,
        }
        for p in train.HYPERPARAMETERS
    ]
    assert declared == scripted
    assert all(hp.get("help") for hp in spec["hyperparameters"])


@pytest.mark.parametrize("algorithm", ALGORITHM_IDS)
def test_manifest_is_a_valid_bot_algorithm(algorithm: str) -> None:
    domain = pytest.importorskip("bot.domain.algorithm")
    parsed = domain.Algorithm.model_validate(manifest(algorithm))
    assert parsed.id == algorithm
    assert parsed.quality_target is not None
