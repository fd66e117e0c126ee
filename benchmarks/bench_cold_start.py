"""Cold ``/train start`` end to end on Lambda: a fresh process for the ack and another for
its lazy half, as two cold containers would be — when does Slack see the ack, when does the
version card appear, when does SageMaker get CreateTrainingJob?

    .venv/bin/python benchmarks/bench_cold_start.py [--runs 3]

The stack, on loopback: a moto server (DynamoDB table, the Slack secrets in SSM, the
published algorithm catalog in S3, SageMaker) that notes when each AWS request arrives; the
Parameters and Secrets extension's stand-in (``functions/local_extension.py``); the Slack
stand-in, which notes when each Web API call arrives. Each run: the parent notes the time and
starts the ack process (``_cold_start_child.py trainbot ack``: imports
``functions.slack_events`` and answers one signed ``/train start tabular-classification`` on
the ``cpu-small`` pool; the lazy re-invocation makes the real Lambda client but writes its
payload to a file instead of calling Lambda); as soon as that has exited, the lazy process
(``… trainbot lazy``: runs the payload through the same handler). From the parent's clock:
the ack (the ack process returning), the version card (the stand-in receiving
``chat.postMessage``) and CreateTrainingJob (moto receiving it) — whichever comes first.
Lambda's own queueing of the asynchronous invoke isn't modelled: the lazy process starts
when the ack process exits.

For comparison, Bolt's floor done the same way: a minimal Bolt-on-Lambda app whose ``/train``
listener acks and, lazily, posts one message (``… minimal ack`` then ``… minimal lazy``).
Runs alternate between the two.

Target: each figure ≤ 2× the minimal app's cold ack (the first process of its pair).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

CHILD = Path(__file__).resolve().parent / "_cold_start_child.py"
CHILD_TIMEOUT_S = 60
RATIO_TARGET = 2.0
CREATE_TRAINING_JOB = "SageMaker.CreateTrainingJob"
TEXT = "start tabular-classification max_iter=5 --pool cpu-small"


@dataclass
class Stack:
    env: dict[str, str]
    slack: Any
    arrivals: list[tuple[float, str]] = field(default_factory=list)  # (wall time, target)


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    """moto (recording arrivals), the extension's stand-in, the Slack stand-in; the children's
    environment."""
    import boto3
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from bot.adapters.dynamodb_schema import ensure_tables
    from bot.localslack.server import LocalSlack
    from functions.local_extension import LocalSecretsExtension

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    arrivals: list[tuple[float, str]] = []
    moto = DomainDispatcherApplication(create_backend_app)

    def recording(environ: dict, start_response: Any) -> Any:
        # JSON protocols name the operation in X-Amz-Target; S3 (REST) in its method and path.
        target = environ.get("HTTP_X_AMZ_TARGET") or (
            f"s3 {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '')[:60]}")
        arrivals.append((time.time(), target))
        return moto(environ, start_response)

    server = make_server("127.0.0.1", 0, recording, threaded=True,
                         request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    slack = LocalSlack(bot_token=c.TOKEN).start()
    extension = None
    home = tempfile.mkdtemp(prefix="bench-cold-start-")
    try:
        ensure_tables(boto3.client("dynamodb"), c.BENCH_TABLE)
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name=c.SIGNING_PARAM, Value=c.SECRET, Type="SecureString")
        ssm.put_parameter(Name=c.TOKEN_PARAM, Value=c.TOKEN, Type="SecureString")
        bucket = "trainbot-bench-artifacts"
        _publish_catalog(boto3.client("s3"), bucket)
        extension = LocalSecretsExtension(token=os.environ["AWS_SESSION_TOKEN"]).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINBOT_", "SLACK_"))}
        env.update({
            "AWS_ENDPOINT_URL": endpoint,
            "TRAINBOT_STORE": "dynamodb", "TRAINBOT_TABLE": c.BENCH_TABLE,
            "TRAINBOT_COMPUTE": "sagemaker",
            "TRAINBOT_SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{c.ACCOUNT}:role/trainbot-bench",
            "TRAINBOT_BUCKET": bucket,
            "TRAINBOT_HOME": home,
            "TRAINBOT_SCOPE": "T0LOCAL",
            "SLACK_SIGNING_SECRET_PARAM": c.SIGNING_PARAM, "SLACK_BOT_TOKEN_PARAM": c.TOKEN_PARAM,
            "SLACK_API_URL": slack.api_url,
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(extension.port),
        })
        yield Stack(env=env, slack=slack, arrivals=arrivals)
    finally:
        if extension is not None:
            extension.stop()
        slack.stop()
        server.shutdown()
        thread.join(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _publish_catalog(s3: Any, bucket: str) -> None:
    """What ``trainbot algorithms publish`` leaves in S3, for tabular-classification."""
    from bot.adapters.algorithm_catalog import CATALOG_KEY, PublishedAlgorithm, PublishedCatalog

    digest = "cd" * 32
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
    catalog = PublishedCatalog(region=c.REGION, bucket=bucket, algorithms={
        "tabular-classification": PublishedAlgorithm(
            version="1.0.0", digest=digest, entry_point="train.py",
            source_uri=f"s3://{bucket}/trainbot/algorithms/tabular-classification/1.0.0/"
                       f"{digest[:16]}/sourcedir.tar.gz",
            images={"cpu": image}),
    })
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=CATALOG_KEY, Body=catalog.to_json().encode())


def _child(argv: list[str], env: dict[str, str], spawn_wall: float
           ) -> tuple[dict[str, Any] | None, str]:
    child_env = dict(env, BENCH_SPAWN_WALL=repr(spawn_wall))
    try:
        done = subprocess.run([sys.executable, str(CHILD), *argv], env=child_env,
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                              cwd=c.ROOT)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {CHILD_TIMEOUT_S} s"
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("COLD ")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit {done.returncode}: {tail}"
    return json.loads(line[5:]), ""


def one_run(st: Stack, app: str, tmp: Path, n: int) -> tuple[dict[str, Any] | None, str]:
    """One cold ack + cold lazy pair; seconds from the ack process's spawn to each step."""
    from bot.localslack.signing import slash_command_body

    env = dict(st.env)
    if app == "minimal":  # Bolt's floor: secrets in plain environment variables
        env.update(SLACK_SIGNING_SECRET=c.SECRET, SLACK_BOT_TOKEN=c.TOKEN)
    inter = st.slack.new_interaction("C0LOCAL", c.USER)
    body = slash_command_body(TEXT, user_id=c.USER, user_name="you", channel_id="C0LOCAL",
                              response_url=inter["response_url"],
                              trigger_id=inter["trigger_id"])
    event_file, invoke_file = tmp / f"event-{app}-{n}.json", tmp / f"invoke-{app}-{n}.json"
    event_file.write_text(json.dumps(c.api_gateway_event(body)))
    seen_slack, seen_aws = len(st.slack.requests), len(st.arrivals)

    t0 = time.time()
    ack, err = _child([app, "ack", str(event_file), str(invoke_file)], env, t0)
    if ack is None:
        return None, f"{app} ack: {err}"
    if ack["status"] != 200 or not invoke_file.exists():
        return None, f"{app} ack: HTTP {ack['status']}, {ack['invokes']} lazy invokes"
    lazy_spawn = time.time()
    lazy, err = _child([app, "lazy", str(invoke_file)], env, lazy_spawn)
    if lazy is None:
        return None, f"{app} lazy: {err}"

    slack_calls = [(r.time, r.method) for r in st.slack.requests[seen_slack:]]
    timeline = sorted([(t - t0, f"Slack {m}") for t, m in slack_calls]
                      + [(t - t0, f"AWS {target}") for t, target in st.arrivals[seen_aws:]]
                      + [(ack["end_wall"] - t0, "ack returned"),
                         (lazy_spawn - t0, "lazy process spawned")])
    cards = [t for t, method in slack_calls if method == "chat.postMessage"]
    creates = [t for t, target in st.arrivals[seen_aws:] if target == CREATE_TRAINING_JOB]
    figures = {
        "ack": ack["end_wall"] - t0,
        "ack_startup": ack["startup"], "ack_build": ack["build"], "ack_handle": ack["handle"],
        "lazy_spawn": lazy_spawn - t0,
        "lazy_startup": lazy["startup"], "lazy_import": lazy["build"],
        "lazy_handle": lazy["handle"], "lazy_end": lazy["end_wall"] - t0,
        "card": (min(cards) - t0) if cards else float("nan"),
        "aws_calls": float(len(st.arrivals) - seen_aws),
        "slack_calls": float(len(slack_calls)),
        "timeline": timeline,
    }
    if app == "trainbot":
        figures["create"] = (min(creates) - t0) if creates else float("nan")
        first_aws = min((t for t, _ in st.arrivals[seen_aws:] if t >= lazy_spawn), default=None)
        figures["lazy_first_aws"] = (first_aws - t0) if first_aws else float("nan")
    return figures, ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    c.fake_aws_env()
    print(f"cold /train start end to end: {args.runs} runs each of trainbot and a minimal Bolt "
          "app, alternating; every run = a fresh ack process, then a fresh lazy process")
    print("note: 2-core machine shared with other work (tests may be running): timings are noisy")
    runs: dict[str, list[dict[str, Any]]] = {"trainbot": [], "minimal": []}
    problems: list[str] = []
    with stack() as st, tempfile.TemporaryDirectory(prefix="bench-cold-start-") as tmp_name:
        tmp = Path(tmp_name)
        # One unmeasured pair each: the first compiles .pyc files and warms the disk cache.
        for app in runs:
            one_run(st, app, tmp, 0)
        for i in range(args.runs):
            for app in (list(runs) if i % 2 == 0 else list(reversed(runs))):
                figures, err = one_run(st, app, tmp, i + 1)
                if figures is None:
                    problems.append(err)
                else:
                    runs[app].append(figures)

    for p in problems:
        print(f"  problem: {p}")
    if not runs["trainbot"] or not runs["minimal"]:
        print("summary: cold /train start could not run")
        c.result("cold start, end to end", "could not run: " + "; ".join(problems[:2]),
                 f"≤ {RATIO_TARGET:g}× minimal cold ack", "FAIL")
        return 1

    def med(app: str, key: str) -> float:
        return c.median([r[key] for r in runs[app]])

    floor = med("minimal", "ack")
    print()
    print("medians, seconds from the ack process's spawn:")
    print("                 ack    lazy starts  first AWS call  CreateTrainingJob  card   "
          "lazy done")
    print(f"  trainbot     {med('trainbot', 'ack'):6.3f}  {med('trainbot', 'lazy_spawn'):10.3f}"
          f"  {med('trainbot', 'lazy_first_aws'):14.3f}  {med('trainbot', 'create'):17.3f}  "
          f"{med('trainbot', 'card'):5.3f}  {med('trainbot', 'lazy_end'):9.3f}")
    print(f"  minimal      {floor:6.3f}  {med('minimal', 'lazy_spawn'):10.3f}  {'-':>14}  "
          f"{'-':>17}  {med('minimal', 'card'):5.3f}  {med('minimal', 'lazy_end'):9.3f}")
    for app in runs:
        print(f"  {app} phases: ack process start-up {med(app, 'ack_startup'):.3f} + imports "
              f"and build {med(app, 'ack_build'):.3f} + handling {med(app, 'ack_handle'):.3f}; "
              f"lazy process start-up {med(app, 'lazy_startup'):.3f} + imports "
              f"{med(app, 'lazy_import'):.3f} + handling {med(app, 'lazy_handle'):.3f}; "
              f"{med(app, 'aws_calls'):.0f} AWS + {med(app, 'slack_calls'):.0f} Slack calls")
    print("  one trainbot run, step by step (s from the ack process's spawn):")
    for seconds, step in runs["trainbot"][-1]["timeline"]:
        print(f"    {seconds:6.3f}  {step}")
    for app in runs:
        per_run = "; ".join(f"ack {r['ack']:.2f} card {r['card']:.2f}"
                            + (f" create {r['create']:.2f}" if "create" in r else "")
                            for r in runs[app])
        print(f"  {app} per run: {per_run}")

    print()
    verdicts = []
    for label, key in (("ack", "ack"), ("CreateTrainingJob", "create"),
                       ("version card", "card")):
        value = med("trainbot", key)
        ratio = value / floor if floor else float("inf")
        ok = ratio <= RATIO_TARGET
        verdicts.append(ok)
        print(f"  {label:<18} {value:6.3f} s = {ratio:4.2f}× the minimal app's cold ack "
              f"({floor:.3f} s)   [TARGET ≤ {RATIO_TARGET:g}×]  {'PASS' if ok else 'FAIL'}")
        c.result(f"cold start: {label}", f"{value:.2f} s ({ratio:.2f}× minimal ack {floor:.2f} s)",
                 f"≤ {RATIO_TARGET:g}× minimal cold ack", c.verdict(ok))
    minimal_card = med("minimal", "card")
    print(f"  for information: the minimal app's own card, through the same two cold "
          f"processes, {minimal_card:.3f} s; trainbot's card is "
          f"{med('trainbot', 'card') / minimal_card:.2f}× that")
    c.result("cold start: minimal app's card", f"{minimal_card:.2f} s",
             "information: Bolt's floor for ack + lazy", "INFO")
    print(f"summary: cold /train start: ack {med('trainbot', 'ack'):.2f} s, CreateTrainingJob "
          f"{med('trainbot', 'create'):.2f} s, card {med('trainbot', 'card'):.2f} s vs minimal "
          f"cold ack {floor:.2f} s (target ≤ {RATIO_TARGET:g}×): "
          f"{'PASS' if all(verdicts) else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
