"""Build the Lambda bundle and package the service with the pinned open-source Serverless CLI,
once per test session, the way a developer deploys — minus AWS.

``osls package`` runs with dummy credentials and every AWS endpoint pointed at a closed
loopback port, so a change that made packaging reach AWS fails here instead of hanging.
A machine without Node.js/npm fails the check with a message saying so; it never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGE = "ci"
REGION = "us-east-1"
NODE_HELP = ("The deploy check needs Node.js (^20.19 or ≥22.13) and npm on PATH to package "
             "serverless.yml with osls (package.json). Install them, e.g. "
             "`apt-get install nodejs npm`, or see the README's Deploy section.")


@dataclass(frozen=True)
class Packaged:
    """What ``osls package`` produced, and how long each step took (seconds)."""

    directory: Path
    template: dict[str, Any]
    state: dict[str, Any]
    bundle: Path
    sizes: dict[str, int]
    timings: dict[str, float]

    @property
    def template_path(self) -> Path:
        return self.directory / "cloudformation-template-update-stack.json"

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]


def offline_env() -> dict[str, str]:
    """This process' environment with dummy AWS credentials and AWS made unreachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_"))}
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens, connects fail at once
    env.update({
        "AWS_ACCESS_KEY_ID": "AKIADUMMYDUMMYDUMMY0", "AWS_SECRET_ACCESS_KEY": "dummy",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead,
        "NO_PROXY": "", "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off",
        "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE": "1",
    })
    return env


def run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                    f"{proc.stderr[-4000:]}", pytrace=False)
    return proc


def _node_modules_current() -> bool:
    installed = REPO / "node_modules" / ".package-lock.json"
    lock = REPO / "package-lock.json"
    return installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    timings: dict[str, float] = {}
    for tool in ("node", "npm", "npx"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` not found. {NODE_HELP}", pytrace=False)
    if not _node_modules_current():
        began = time.monotonic()
        run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600)
        timings["npm ci"] = time.monotonic() - began

    began = time.monotonic()
    run([sys.executable, "scripts/build_lambda.py"], timeout=600)
    timings["build_lambda"] = time.monotonic() - began

    out = tmp_path_factory.mktemp("serverless")
    began = time.monotonic()
    run(["npx", "--no-install", "osls", "package", "--stage", STAGE, "--region", REGION,
         "--package", str(out)], timeout=300, env=offline_env())
    timings["osls package"] = time.monotonic() - began

    return Packaged(
        directory=out,
        template=json.loads((out / "cloudformation-template-update-stack.json").read_text()),
        state=json.loads((out / "serverless-state.json").read_text()),
        bundle=REPO / "build" / "lambda" / "trainbot.zip",
        sizes=json.loads((REPO / "build" / "lambda" / "sizes.json").read_text()),
        timings=timings,
    )
