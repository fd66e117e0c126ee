"""The benchmarks import cleanly and their cheap pure helpers work (no benchmark is run)."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


def load(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_imports_without_running(name: str) -> None:
    module = load(name)
    if name.startswith("bench_") or name in ("run_all", "algorithm_quality"):
        assert callable(module.main)


def test_run_all_lists_every_benchmark_script() -> None:
    run_all = load("run_all")
    scripts = {b.script for b in run_all.BENCHMARKS}
    assert scripts == {f"{m}.py" for m in MODULES if m.startswith("bench_")} | {
        "algorithm_quality.py"}
    row = run_all._from_summary(run_all.BENCHMARKS[-1], [
        "summary: 3/3 algorithms reach their quality target with defaults; 12.2 s"])
    assert [(r.figure, r.result) for r in row] == [
        ("3/3 algorithms reach their target", "PASS")]


def test_statistics_helpers() -> None:
    common = load("_common")
    values = [float(i) for i in range(1, 1001)]
    assert common.median(values) == 500.5
    assert common.percentile(values, 99) == 990.0
    assert common.percentile([3.0], 99) == 3.0


def test_signed_event_verifies_with_the_slack_scheme() -> None:
    common = load("_common")
    event = common.api_gateway_event(common.command_body("help"))
    headers = event["headers"]
    base = f"v0:{headers['x-slack-request-timestamp']}:{event['body']}".encode()
    digest = hmac.new(common.SECRET.encode(), base, hashlib.sha256).hexdigest()
    assert headers["x-slack-signature"] == f"v0={digest}"
    assert event["isBase64Encoded"] is False and "text=help" in event["body"]


def test_importtime_parser_keeps_the_costliest_entry_per_package() -> None:
    cold = load("bench_cold_ack")
    stderr = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:       100 |        100 |     boto3.compat",
        "import time:       500 |     250000 |   boto3",
        "import time:       900 |     600000 | functions.slack_events",
    ])
    assert cold.top_imports(stderr, 2) == [("functions.slack_events", 600000, 0),
                                           ("boto3", 250000, 1)]


def test_bundle_groups_dist_info_with_its_package() -> None:
    bundle = load("bench_bundle")
    assert bundle._package_of("slack_bolt-1.30.0.dist-info") == "slack_bolt"
    assert bundle._package_of("six.py") == "six"
    assert bundle._package_of("torch") == "torch"


def test_history_has_constant_active_and_recent_versions() -> None:
    access = load("bench_access_patterns")
    now = datetime.now(UTC)
    for n in (100, 1000):
        jobs, versions, presets = access.population(n, now)
        assert len(versions) == n and len(jobs) == n // 10 and len(presets) == 20
        assert sum(not v.status.terminal for v in versions) == 20
        recent = [v for v in versions if v.ended_at and (now - v.ended_at).days < 1
                  and (now - v.ended_at).total_seconds() <= 24 * 3600]
        assert len(recent) == 30
        names = [v.backend_job_name for v in versions if v.backend_job_name]
        assert len(names) == len(set(names))
        assert json.loads(versions[-1].model_dump_json())["job"] == jobs[-1].name


def test_the_direct_run_is_prepared_as_the_local_compute_prepares_it(tmp_path: Path) -> None:
    bench = load("bench_local_overhead")
    deps, _ = bench.make_deps(tmp_path / "home")
    try:
        run, record, env = bench.prepare_direct(deps, "tabular-classification", "smoke", tmp_path)
        assert (run.code_dir / "train.py").is_file()
        assert record["command"] and env["SM_MODEL_DIR"]
    finally:
        deps.compute.close()
