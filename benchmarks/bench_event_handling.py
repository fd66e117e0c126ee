"""Event handling: SageMaker state-change events through ``functions.job_events.handler``
to a stored update and the Slack calls, warm, as deployed (DynamoDB store + Powertools
idempotency table) against a moto server on 127.0.0.1 and the Slack stand-in.

    .venv/bin/python benchmarks/bench_event_handling.py [--events 200]

Four kinds of event, each timed separately (median, p99) with the AWS requests it makes
(botocore ``before-call`` hook on every client) and the Slack Web API calls it causes:

- transition — InProgress/Starting then InProgress/Training on fresh versions: the version
  moves, its card is edited (chat.update) and a thread reply posted (chat.postMessage);
- metrics    — InProgress/Training with new FinalMetricDataList values: a stored update,
  no Slack call (cards refresh from progress, not from every metric event);
- no-op      — the same state again under a new LastModifiedTime: passes idempotency, the
  service finds nothing to change (compare-and-set makes it a read);
- duplicate  — an event delivered again (same idempotency key): answered from the
  idempotency record, the service is not run.

moto runs in this process (its server thread shares the GIL), so the times include moto's
own work; a real DynamoDB request in-region costs ~3–10 ms, so requests × ~5 ms is the
better estimate of production latency. No target is set: the figures are for watching.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

CHANNEL = "C0LOCAL"
SAMPLE = c.ROOT / "tests" / "events" / "sagemaker_training_job_state_change_in_progress.json"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200, help="events per kind")
    args = parser.parse_args(argv)
    c.fake_aws_env()
    with c.lambda_backends("events", idempotency=True) as slack:
        return _measure(args.events, slack)


class _Events:
    """SageMaker state-change events for one backend job name, each with a new time."""

    def __init__(self) -> None:
        self.sample = json.loads(SAMPLE.read_text())
        self.clock_ms = int(time.time() * 1000)

    def make(self, name: str, secondary: str, metrics: dict[str, float] | None = None
             ) -> dict[str, Any]:
        event = json.loads(json.dumps(self.sample).replace(
            self.sample["detail"]["TrainingJobName"], name))
        self.clock_ms += 7
        event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock_ms / 1000))
        detail = event["detail"]
        detail["LastModifiedTime"] = self.clock_ms
        detail["SecondaryStatus"] = secondary
        if secondary == "Starting":
            detail["SecondaryStatusTransitions"] = detail["SecondaryStatusTransitions"][:1]
        if metrics:
            detail["FinalMetricDataList"] = [
                {"MetricName": k, "Value": v, "Timestamp": self.clock_ms}
                for k, v in metrics.items()]
        return event


def _versions(deps: Any, count: int, prefix: str = "bench") -> list[str]:
    """``count`` QUEUED versions with a channel card and a backend job name; their names."""
    from bot.domain import JobVersion, Status, StatusChange, TrainingJob
    from bot.services.requests import build_spec
    from bot.services.versions import mutate_version

    algorithm = deps.catalog.algorithm("image-classification")
    pool = deps.catalog.pool("gpu-1")
    spec = build_spec(deps, algorithm, params={"epochs": 5}, pool=pool, data={})
    names = []
    stamp = f"{int(time.time()) % 100000:05d}"
    for i in range(count):
        now = datetime.now(UTC)
        job = f"{prefix}{stamp}-{i}"
        draft = JobVersion(job=job, number=0, spec=spec, requested_by=c.USER,
                           status=Status.QUEUED, channel=CHANNEL, created_at=now,
                           updated_at=now,
                           history=[StatusChange(status=Status.QUEUED, at=now, message="bench")])
        version, _ = deps.store.add_version(
            draft, new_job=TrainingJob(name=job, owner=c.USER, channel=CHANNEL, created_at=now))
        channel, ts = deps.chat.version_created(version)
        name = f"trainbot-{job}-v1-b3c4"
        mutate_version(deps.store, job, 1, lambda v, ch=channel, ts=ts, n=name: v.model_copy(
            update={"message_ts": ts, "channel": ch, "backend_job_name": n,
                    "backend": "sagemaker"}))
        names.append(name)
    return names


def _run(kind: str, events: list[dict[str, Any]], handler: Any, counter: c.AwsCallCounter,
         slack: Any, out: io.StringIO) -> dict[str, Any]:
    context = c.FakeContext("trainbot-bench-jobEvents")
    samples: list[float] = []
    outcomes: Counter[str] = Counter()
    counter.reset()
    slack_before = len(slack.requests)
    bytes_before = len(out.getvalue())
    for event in events:
        began = time.perf_counter()
        answer = handler(event, context)
        samples.append(time.perf_counter() - began)
        outcomes[f"{answer.get('outcome')}:{answer.get('status', '-')}"] += 1
    return {"kind": kind, "n": len(events), "samples": samples, "aws": counter.snapshot(),
            "slack": len(slack.requests) - slack_before,
            "slack_methods": Counter(r.method for r in slack.requests[slack_before:]),
            "outcomes": outcomes, "log_bytes": len(out.getvalue()) - bytes_before}


def _measure(per_kind: int, slack: Any) -> int:
    counter = c.AwsCallCounter().install_default()
    from functions import job_events, runtime

    runtime.reset()
    deps = runtime.slack_bot(with_charts=runtime.charts_available()).deps
    print(f"event handling: {per_kind} events per kind through functions.job_events.handler "
          "(DynamoDB + idempotency table on moto server, Slack stand-in, all on 127.0.0.1)")
    print("note: 2-core machine shared with other work (tests may be running): timings are noisy;"
          " moto shares this process's GIL")
    began = time.perf_counter()
    names = _versions(deps, (per_kind + 1) // 2)
    print(f"setup: {len(names)} versions with cards in {time.perf_counter() - began:.1f} s")
    gen = _Events()
    transitions = [gen.make(n, s) for n in names for s in ("Starting", "Training")][:per_kind]
    metrics = [gen.make(names[i % len(names)], "Training",
                        {"validation:accuracy": 0.5 + i / (4 * per_kind),
                         "train:loss": 2.0 - i / per_kind})
               for i in range(per_kind)]
    out = io.StringIO()
    results = []
    with c.capture_stdout(out):  # Powertools' JSON logs and EMF metrics
        # Warm-up on its own version: first use of each client and code path.
        warm = _versions(deps, 1, prefix="warm")[0]
        for event in (gen.make(warm, "Starting"), gen.make(warm, "Training"),
                      gen.make(warm, "Training", {"train:loss": 1.0})):
            job_events.handler(event, c.FakeContext("trainbot-bench-jobEvents"))
        results.append(_run("transition", transitions, job_events.handler, counter, slack, out))
        results.append(_run("metrics", metrics, job_events.handler, counter, slack, out))
        # The latest metrics of each version again, under a new time: nothing to change.
        last: dict[str, dict[str, Any]] = {}
        for event in metrics:
            last[event["detail"]["TrainingJobName"]] = event
        noops = []
        for i in range(per_kind):
            base = last[names[i % len(names)]]
            again = json.loads(json.dumps(base))
            gen.clock_ms += 7
            again["detail"]["LastModifiedTime"] = gen.clock_ms
            noops.append(again)
        results.append(_run("no-op", noops, job_events.handler, counter, slack, out))
        results.append(_run("duplicate", metrics, job_events.handler, counter, slack, out))

    print()
    rows = []
    for r in results:
        n = r["n"]
        rows.append([r["kind"], str(n), c.fmt_ms(c.median(r["samples"])),
                     c.fmt_ms(c.percentile(r["samples"], 99)),
                     f"{sum(r['aws'].values()) / n:.2f}", f"{r['slack'] / n:.2f}",
                     f"{r['log_bytes'] / n:.0f}"])
    c.print_table(rows, ["kind", "events", "median", "p99", "AWS calls/event",
                         "Slack calls/event", "log bytes/event"])
    print("TARGET: none set (watch for growth); production latency ≈ AWS calls × ~5 ms + "
          "Slack calls × ~100 ms")
    for r in results:
        slack_methods = ", ".join(f"{m}×{k / r['n']:g}" for m, k in
                                  sorted(r["slack_methods"].items())) or "none"
        print(f"  {r['kind']:<10} AWS: {c.describe_counts(r['aws'], r['n'])}")
        print(f"  {'':<10} Slack: {slack_methods}; outcomes {dict(r['outcomes'])}")
    first = results[0]
    figure = (f"transition {c.median(first['samples']) * 1000:.1f} ms median, "
              f"{sum(first['aws'].values()) / first['n']:.1f} AWS + "
              f"{first['slack'] / first['n']:.1f} Slack calls/event; duplicate "
              f"{c.median(results[3]['samples']) * 1000:.1f} ms, "
              f"{sum(results[3]['aws'].values()) / results[3]['n']:.1f} AWS")
    print(f"summary: {figure}")
    c.result("event handling", figure, "info (no target)", "INFO")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
