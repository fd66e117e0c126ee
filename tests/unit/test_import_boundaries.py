"""What each layer may import, checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "tensorboard", "sagemaker", "matplotlib", "pandas", "sklearn")


def _loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={"AWS_EC2_METADATA_DISABLED": "true", "PATH": ""})
    return {name.split(".")[0] for name in json.loads(out.stdout.strip().splitlines()[-1])}


def test_domain_imports_no_framework() -> None:
    loaded = _loaded_after("import bot.domain, bot.domain.events, bot.domain.lineage")
    assert not loaded & {"boto3", "botocore", "slack_bolt", "slack_sdk",
                         "aws_lambda_powertools", *HEAVY}


@pytest.mark.parametrize("module", ["bot.slack.app", "bot.slack.wiring", "functions.slack_events",
                                    "bot.adapters.compute_local", "bot.dispatch"])
def test_nothing_heavy_on_the_slack_ack_path(module: str) -> None:
    assert not _loaded_after(f"import {module}") & set(HEAVY)
