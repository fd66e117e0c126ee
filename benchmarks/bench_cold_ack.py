"""Cold ack: a fresh process imports ``functions.slack_events`` and answers one signed
``/train help`` (API Gateway v2 event) — against Bolt's own floor, a minimal Bolt-on-Lambda
app that only acks.

    .venv/bin/python benchmarks/bench_cold_ack.py [--runs 5]

trainbot runs as deployed: DynamoDB store and SageMaker compute (the ack touches neither),
Slack secrets in SSM read through the Parameters and Secrets Lambda Extension — here its
loopback stand-in (``functions/local_extension.py``), in front of a moto server on
127.0.0.1 started here — and Slack on the local stand-in. ``/train help`` is answered whole
by the ack, with no lazy re-invocation. For information, two more kinds of run: the
secrets read through the AWS SDK instead (the fallback when the layer is missing), and a
cold ``/train status``, whose ack re-invokes the function lazily — the Lambda client is
made for real, the Invoke itself is recorded and not sent. Each run is a
new interpreter (``benchmarks/_cold_child.py``); the kinds take turns so background load
hits them alike. A last trainbot run under ``python -X importtime`` names the imports that
cost the most.

Target: trainbot ≤ 1.3× the minimal app (medians), and well under Slack's 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

CHILD = Path(__file__).resolve().parent / "_cold_child.py"
TABLE = "trainbot-bench"
SIGNING_PARAM = "/trainbot/bench/slack-signing-secret"
TOKEN_PARAM = "/trainbot/bench/slack-bot-token"
RATIO_TARGET = 1.3
SLACK_LIMIT_S = 3.0
CHILD_TIMEOUT_S = 60


def _stack() -> tuple[Any, Any, Any, dict[str, str]]:
    """moto server, Slack stand-in, extension stand-in, the table and the SSM parameters;
    the child's env."""
    import logging

    from moto.server import ThreadedMotoServer

    from bot.adapters.dynamodb_schema import ensure_tables
    from bot.localslack.server import LocalSlack

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    import boto3

    ensure_tables(boto3.client("dynamodb", endpoint_url=endpoint), TABLE)
    ssm = boto3.client("ssm", endpoint_url=endpoint)
    ssm.put_parameter(Name=SIGNING_PARAM, Value=c.SECRET, Type="SecureString")
    ssm.put_parameter(Name=TOKEN_PARAM, Value=c.TOKEN, Type="SecureString")
    slack = LocalSlack(bot_token=c.TOKEN).start()
    from functions.local_extension import LocalSecretsExtension

    extension = LocalSecretsExtension(token=os.environ["AWS_SESSION_TOKEN"]).start()
    home = tempfile.mkdtemp(prefix="bench-cold-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINBOT_", "SLACK_"))}
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "TRAINBOT_STORE": "dynamodb", "TRAINBOT_TABLE": TABLE,
        "TRAINBOT_COMPUTE": "sagemaker",
        "TRAINBOT_SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{c.ACCOUNT}:role/trainbot-bench",
        "TRAINBOT_BUCKET": "trainbot-bench-artifacts", "TRAINBOT_HOME": home,
        "TRAINBOT_SCOPE": "T0LOCAL",
        "SLACK_SIGNING_SECRET_PARAM": SIGNING_PARAM, "SLACK_BOT_TOKEN_PARAM": TOKEN_PARAM,
        "SLACK_API_URL": slack.api_url,
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(extension.port),
    })
    return server, slack, extension, env


def _run_child(mode: str, env: dict[str, str], event_file: str,
               importtime: bool = False, profile: bool = False
               ) -> tuple[dict[str, Any] | None, str]:
    child_env = dict(env)
    if mode == "trainbot-sdk":  # no extension layer: secrets through boto3 + Powertools
        child_env.pop("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
    if profile:
        child_env["BENCH_PROFILE_BUILD"] = "1"
    if mode == "minimal":  # Bolt's floor: the secret and token in plain environment variables
        child_env["SLACK_SIGNING_SECRET"] = c.SECRET
        child_env["SLACK_BOT_TOKEN"] = c.TOKEN
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), str(CHILD), mode,
            event_file]
    child_env["BENCH_SPAWN_WALL"] = repr(time.time())
    try:
        done = subprocess.run(argv, env=child_env, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, cwd=c.ROOT)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {CHILD_TIMEOUT_S} s"
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("COLD ")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit {done.returncode}: {tail}"
    return json.loads(line[5:]), done.stderr


def _event_file(tmp: Path, n: int, text: str = "help") -> str:
    path = tmp / f"event-{n}-{text}.json"
    path.write_text(json.dumps(c.api_gateway_event(c.command_body(text))))
    return str(path)


# kind → the /train text its run sends
TEXTS = {"trainbot": "help", "minimal": "help", "trainbot-sdk": "help",
         "trainbot-status": "status"}


_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def top_imports(stderr: str, n: int = 10) -> list[tuple[str, int, int]]:
    """(module, cumulative µs, nesting depth) of the ``n`` costliest imports, one per root
    package (the costliest entry of each), from ``python -X importtime`` output."""
    best: dict[str, tuple[str, int, int]] = {}
    for line in stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if not m:
            continue
        cumulative, depth, module = int(m.group(2)), (len(m.group(3)) - 1) // 2, m.group(4)
        root = module.split(".")[0]
        if root not in best or cumulative > best[root][1]:
            best[root] = (module, cumulative, depth)
    return sorted(best.values(), key=lambda t: -t[1])[:n]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    c.fake_aws_env()
    print(f"cold ack: {args.runs} fresh processes each, alternating; /train help; "
          "moto server + Slack stand-in on 127.0.0.1")
    print("note: 2-core machine shared with other work (tests may be running): timings are noisy")
    server, slack, extension, env = _stack()
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in TEXTS}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-events-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            # One unmeasured run each: the first compiles .pyc files and warms the disk cache,
            # which a Lambda container (bundle on local disk, its own .pyc) doesn't pay alike.
            for mode in runs:
                _run_child(mode, env, _event_file(tmp, 0, TEXTS[mode]))
            kinds = list(runs)
            for i in range(args.runs):
                order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
                for mode in order:
                    figures, err = _run_child(mode, env, _event_file(tmp, i + 1, TEXTS[mode]))
                    if figures is None:
                        problems.append(f"{mode}: {err}")
                        continue
                    runs[mode].append(figures)
            importtime, itime_err = _run_child("trainbot", env, _event_file(tmp, 99),
                                               importtime=True)
            profiled, _ = _run_child("trainbot", env, _event_file(tmp, 98), profile=True)
        finally:
            extension.stop()
            slack.stop()
            server.stop()

    for p in problems:
        print(f"  problem: {p}")
    if not runs["trainbot"] or not runs["minimal"]:
        print("summary: cold ack could not run")
        c.result("cold ack", "could not run: " + "; ".join(problems[:2]), "≤ 1.3×, < 3 s",
                 "FAIL")
        return 1

    def med(mode: str, key: str) -> float:
        return c.median([r[key] for r in runs[mode]])

    print()
    print("medians (s)          start-up  import   build   first ack  in-process  from spawn")
    for mode in [m for m in runs if runs[m]]:
        print(f"  {mode:<18} {med(mode, 'startup'):8.3f} {med(mode, 'import'):7.3f} "
              f"{med(mode, 'build'):7.3f} {med(mode, 'handle'):10.3f} "
              f"{med(mode, 'in_process'):11.3f} {med(mode, 'from_spawn'):11.3f}")
    print("  start-up: interpreter + site until the script's first line; import: "
          "functions.slack_events (trainbot) or slack_bolt + its Lambda adapter (minimal);")
    print("  build: runtime.slack_handler() — Slack secrets, the Bolt app and its Lambda "
          "adapter (in Lambda: the first request, after init's imports); first ack: the "
          "handler call.")
    for mode in [m for m in runs if runs[m]]:
        per_run = ", ".join(f"{r['from_spawn']:.3f}" for r in runs[mode])
        statuses = {r["status"] for r in runs[mode]}
        lazy = {r["lazy_invokes"] for r in runs[mode]}
        print(f"  {mode}: per run from spawn [{per_run}] s; HTTP {sorted(statuses)}; "
              f"lazy invokes per run {sorted(lazy)}; modules loaded "
              f"{runs[mode][-1]['modules']}")

    trainbot, minimal = med("trainbot", "from_spawn"), med("minimal", "from_spawn")
    ratio = trainbot / minimal if minimal else float("inf")
    print()
    if importtime is not None:
        print(f"python -X importtime, one trainbot run ({importtime['from_spawn']:.3f} s with "
              "the tracing overhead) — top 10 by cumulative time, costliest entry per package:")
        for module, micros, depth in top_imports(itime_err):
            print(f"  {micros / 1000:8.1f} ms  {module}  (depth {depth})")
    else:
        print(f"importtime run failed: {itime_err}")
    if profiled is not None and profiled.get("steps"):
        build = profiled["build"]
        print(f"where the build phase goes (one timed run, build {build * 1000:.0f} ms; each "
              "step includes the imports it triggers):")
        steps = profiled["steps"]
        named = sum(sec for label, (_n, sec) in steps.items() if not label.startswith("·"))
        for label, (_calls, seconds) in steps.items():
            if not label.startswith("·"):
                print(f"  {seconds * 1000:8.1f} ms  {label}")
        print(f"  {(build - named) * 1000:8.1f} ms  the rest: importing Bolt's Lambda adapter "
              "(boto3 with it: the minimal app pays it in its import phase)")
        for label, (calls, seconds) in steps.items():
            if label.startswith("·"):
                print(f"  {seconds * 1000:8.1f} ms  {label} ({calls} clients)")

    if runs["trainbot-sdk"]:
        sdk = med("trainbot-sdk", "from_spawn")
        print(f"without the extension layer (secrets through boto3 + Powertools): {sdk:.3f} s "
              f"= {sdk / minimal:.2f}× the minimal app (for information)")
        c.result("cold ack, secrets via SDK", f"{sdk:.2f} s ({sdk / minimal:.2f}×)",
                 "information: the fallback when the layer is missing", "INFO")
    if runs["trainbot-status"]:
        status = med("trainbot-status", "from_spawn")
        print(f"a cold /train status (acked, then re-invoked lazily: makes the Lambda client): "
              f"{status:.3f} s = {status / minimal:.2f}× the minimal app (for information)")
        c.result("cold ack, /train status", f"{status:.2f} s ({status / minimal:.2f}×)",
                 "information: a command with a lazy half", "INFO")

    ok = ratio <= RATIO_TARGET and trainbot < SLACK_LIMIT_S
    print()
    print(f"  trainbot {trainbot:.3f} s vs minimal {minimal:.3f} s from spawn  →  "
          f"{ratio:.2f}×   [TARGET ≤ {RATIO_TARGET}× and < {SLACK_LIMIT_S:g} s]  "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"summary: cold /train help ack {trainbot:.2f} s (import "
          f"{med('trainbot', 'import'):.2f} s) vs minimal Bolt app {minimal:.2f} s = "
          f"{ratio:.2f}× (target ≤ {RATIO_TARGET}×, < 3 s): {'PASS' if ok else 'FAIL'}")
    c.result("cold ack", f"trainbot {trainbot:.2f} s vs minimal {minimal:.2f} s ({ratio:.2f}×)",
             f"≤ {RATIO_TARGET}×, < 3 s", c.verdict(ok))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
