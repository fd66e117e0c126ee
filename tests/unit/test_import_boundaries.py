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
    loaded = _loaded_after("import bot.domain, bot.domain.events, bot.domain.lineage, "
                           "bot.domain.sweep, bot.domain.model")
    assert not loaded & {"boto3", "botocore", "slack_bolt", "slack_sdk",
                         "aws_lambda_powertools", *HEAVY}


@pytest.mark.parametrize("module", ["bot.slack.app", "bot.slack.wiring", "functions.slack_events",
                                    "bot.adapters.local.compute", "bot.dispatch"])
def test_nothing_heavy_on_the_slack_ack_path(module: str) -> None:
    assert not _loaded_after(f"import {module}") & set(HEAVY)


def test_a_cold_help_ack_builds_nothing_but_bolt() -> None:
    """The Slack function answers ``/train help`` on a cold start without pydantic, the
    domain models, the settings, the store or the backend: those cost ~0.3 s, and the ack
    has Slack's 3 s (benchmarks/bench_cold_ack.py measures it)."""
    code = """
import json, os, sys
os.environ.update(SLACK_SIGNING_SECRET="s3cret", SLACK_BOT_TOKEN="xoxb-t",
                  AWS_REGION="us-east-1", POWERTOOLS_METRICS_NAMESPACE="T")
from bot.localslack.signing import slash_command_body
from functions import runtime, slack_events
from functions.local_invoke import LocalContext, api_gateway_event

class Lazy:
    calls = 0
    def invoke(self, **kwargs):
        Lazy.calls += 1
        return {"StatusCode": 202}

runtime.slack_handler().app.listener_runner.lazy_listener_runner.lambda_client = Lazy()
body = slash_command_body("help", user_id="U1", user_name="u", channel_id="C1",
                          response_url="http://127.0.0.1:9/r", trigger_id="1.2.3")
response = slack_events.handler(api_gateway_event(body, secret="s3cret"), LocalContext("f"))
assert response["statusCode"] == 200 and "/train start" in response["body"], response
assert Lazy.calls == 0  # answered whole in the ack: no re-invocation
print(json.dumps(sorted(sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"AWS_EC2_METADATA_DISABLED": "true", "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    roots = {name.split(".")[0] for name in loaded}
    assert not roots & {"pydantic", "pydantic_settings", "yaml", *HEAVY}
    assert not {m for m in loaded if m.startswith(
        ("bot.config", "bot.services", "bot.adapters", "bot.catalog", "bot.bootstrap",
         "bot.slack.interactions", "bot.domain.job", "functions.metering"))}
