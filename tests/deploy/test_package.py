"""The packaged service: cfn-lint clean, and a Lambda bundle with only what Lambda needs."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, Packaged

# cfn-lint's exit status is a bitmask: 1 crashed, 2 errors, 4 warnings, 8 informational.
CFN_LINT_FAILED, CFN_LINT_ERRORS, CFN_LINT_WARNINGS = 1, 2, 4
MiB = 1024 * 1024
HEAVY = ("torch", "tensorboard", "sagemaker", "matplotlib", "numpy", "pandas", "sklearn",
         "scipy", "PIL")
# The Lambda python3.12 runtime ships these; the bundle must not (they'd shadow it).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def test_packaging_is_offline_and_quick(packaged: Packaged) -> None:
    # Measured here: ~1.5 s for `osls package`, ~1 s for a cached bundle (~5 s uncached).
    assert packaged.timings["osls package"] < 60, packaged.timings
    assert packaged.template_path.is_file()


def _cfn_lint() -> str:
    beside = Path(sys.executable).with_name("cfn-lint")  # the venv's, from the dev extra
    found = str(beside) if beside.is_file() else shutil.which("cfn-lint")
    if found is None:
        pytest.fail("cfn-lint not found: `pip install -e '.[dev]'` installs it", pytrace=False)
    return found


def test_cfn_lint_finds_no_errors_or_warnings(packaged: Packaged) -> None:
    proc = subprocess.run(
        [_cfn_lint(), "--config-file", str(REPO / "infra" / "cfnlintrc.yml"),
         "--format", "parseable", "--", str(packaged.template_path)],
        text=True, capture_output=True, timeout=180, check=False)
    findings = proc.stdout.strip()
    assert not proc.returncode & CFN_LINT_FAILED, f"cfn-lint crashed:\n{proc.stderr}"
    assert not proc.returncode & CFN_LINT_ERRORS, f"cfn-lint errors:\n{findings}"
    assert not proc.returncode & CFN_LINT_WARNINGS, (
        "cfn-lint warnings (fix them, or if the generator causes one, ignore its rule in "
        f"infra/cfnlintrc.yml with a comment):\n{findings}")


def _top_levels(bundle: Path) -> set[str]:
    with zipfile.ZipFile(bundle) as zf:
        return {name.split("/", 1)[0].removesuffix(".py") for name in zf.namelist()}


def test_the_bundle_holds_the_code_and_its_packages_and_nothing_heavy(
        packaged: Packaged) -> None:
    top = _top_levels(packaged.bundle)
    assert {"bot", "functions", "algorithms", "slack_bolt", "slack_sdk", "aws_lambda_powertools",
            "pydantic", "pydantic_core", "pydantic_settings", "yaml", "aws_xray_sdk"} <= top
    assert not top & set(HEAVY), top & set(HEAVY)
    assert not top & set(RUNTIME_PROVIDED), top & set(RUNTIME_PROVIDED)
    with zipfile.ZipFile(packaged.bundle) as zf:
        names = zf.namelist()
    assert "algorithms/image-classification/manifest.yml" in names
    assert not [n for n in names if n.startswith(("bot/localslack/", "tests/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # Compiled for the Lambda runtime, not for the Python running the tests.
    assert [n for n in names if n.startswith("pydantic_core/") and "cpython-312-x86_64" in n]


def test_the_bundle_fits_the_slack_functions_budget(packaged: Packaged) -> None:
    sizes = packaged.sizes
    print(f"bundle: {sizes['zipped'] / MiB:.1f} MiB zipped, {sizes['unzipped'] / MiB:.1f} MiB "
          f"unzipped, {sizes['files']} files; timings {packaged.timings}")
    assert sizes["unzipped"] <= 25 * MiB
    assert packaged.bundle.stat().st_size == sizes["zipped"]


def test_every_function_deploys_the_bundle_on_python312(packaged: Packaged) -> None:
    functions = packaged.state["service"]["functions"]
    assert set(functions) == {"slackEvents", "jobEvents", "reconcile"}
    assert packaged.state["service"]["initialServerlessConfig"]["package"]["artifact"] == (
        "build/lambda/trainbot.zip")
    for name, handler in (("SlackEvents", "functions.slack_events.handler"),
                          ("JobEvents", "functions.job_events.handler"),
                          ("Reconcile", "functions.reconcile.handler")):
        props = packaged.resources[f"{name}LambdaFunction"]["Properties"]
        assert props["Handler"] == handler and props["Runtime"] == "python3.12"
        assert props["Code"]["S3Key"].endswith("/trainbot.zip")
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_the_slack_function_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import functions.slack_events, functions.runtime\n"
        "import bot.slack.wiring, bot.slack.app, bot.adapters.dynamodb.store\n"
        "import bot.adapters.sagemaker.compute, slack_bolt.adapter.aws_lambda\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, text=True,
                          capture_output=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def _python312() -> str | None:
    found = [p for p in ("/usr/bin/python3.12", "/usr/local/bin/python3.12",
                         *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/"
                                                              "python3.12"))))
             if os.access(p, os.X_OK)]
    return found[0] if found else None


@pytest.mark.skipif(_python312() is None,
                    reason="no python3.12 here to import the bundle as Lambda would")
def test_the_unzipped_bundle_builds_the_functions_under_python312(
        packaged: Packaged, tmp_path: Path) -> None:
    """The bundle alone (plus what the runtime provides: boto3 and its dependencies, taken
    from this venv — they're pure Python) builds every function's dependencies."""
    task = tmp_path / "task"
    with zipfile.ZipFile(packaged.bundle) as zf:
        zf.extractall(task)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    import boto3

    site = Path(boto3.__file__).resolve().parents[1]
    for name in (*RUNTIME_PROVIDED, "six.py"):
        for path in (site / name, site / f"{name}.py"):
            if path.exists() and not (runtime / path.name).exists():
                (runtime / path.name).symlink_to(path)
    event = (REPO / "tests" / "events" / "sagemaker_training_job_state_change.json").read_text()
    code = (
        "import json, sys\n"
        "from functions import job_events, reconcile, runtime, slack_events\n"
        "handler = runtime.slack_handler()\n"
        "assert handler.app.listener_runner.lazy_listener_runner.lambda_client is not None\n"
        "job_events._processor()\n"
        f"change = job_events.parse(event=json.loads({event!r}),"
        " model=job_events.SageMakerTrainingJobEvent)\n"
        "print(change.detail.name, sorted(m for m in sys.modules"
        f" if m.split('.')[0] in {HEAVY!r}))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{task}:{runtime}",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "dummy", "AWS_SECRET_ACCESS_KEY": "dummy",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "TRAINBOT_STORE": "dynamodb", "TRAINBOT_TABLE": "t", "TRAINBOT_IDEMPOTENCY_TABLE": "i",
        "TRAINBOT_COMPUTE": "sagemaker", "TRAINBOT_BUCKET": "b", "TRAINBOT_HOME": str(tmp_path),
        "TRAINBOT_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
        "SLACK_SIGNING_SECRET": "s", "SLACK_BOT_TOKEN": "xoxb-t",
    }
    # -S: no site-packages of that interpreter, so only the bundle and the runtime's share.
    proc = subprocess.run([_python312() or "", "-S", "-c", code],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split() == ["trainbot-digits-v2-1a2b", "[]"], proc.stdout + proc.stderr


def test_the_pinned_cli_is_osls() -> None:
    manifest = json.loads((REPO / "package.json").read_text())
    version = manifest["devDependencies"]["osls"]
    assert version[0].isdigit(), "pin osls exactly (no ^ or ~)"
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/osls"]["version"] == version
