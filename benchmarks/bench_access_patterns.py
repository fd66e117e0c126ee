"""Access patterns don't grow with history: the requests (DynamoDB) and the time (SQLite) of
trainbot's everyday reads with 100, 10,000 and 100,000 versions stored.

    .venv/bin/python benchmarks/bench_access_patterns.py [--sizes 100,10000,100000]

History: ~10 versions per job; a constant 20 active (training, queued, awaiting approval),
a constant 30 ended in the last 24 h (10 of them failed), the rest ended over the past 60
days; 20 presets. The reads:

- ``/train status``  — ``status_overview`` (``list_active`` + ``list_ended_since(24 h)``);
- ``versions JOB``   — ``list_versions`` of one job;
- ``preset list``    — ``list_presets`` of the team;
- event lookup       — ``find_by_backend_name`` (every SageMaker event starts with it);
- budget check       — ``check_budgets`` of a launch (the channel's and the user's budgets
  and their month's counters);
- ``cost --month``   — ``cost_report`` of this month by pool (the month's total, its pool
  counters, its top jobs).

The ledger holds, for this month, the counters every version of it was charged to — total,
user, channel, pool, algorithm, and one per job (which grow with the history; the report
reads the top-jobs record instead); the channel has a budget.

DynamoDB (moto in-process, populated with BatchWriteItem from the store's own item
builders): requests per read counted with a botocore ``before-call`` hook, items the
queries read (``ScannedCount``) from ``after-call`` — both should be the same at every size,
and no read may Scan. SQLite (bulk-inserted with the store's own serialisation): median of
20 timed calls per read and size, and the query plan of each statement — flat within noise.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

TABLE = "trainbot-bench"
SCOPE = "T0LOCAL"
CHANNEL = "C0LOCAL"
VERSIONS_PER_JOB = 10
ACTIVE = 20
RECENT = 30
RECENT_FAILED = 10
PRESETS = 20
TIMED_CALLS = 20
DEFAULT_BUDGET_S = 330.0
SQLITE_FLAT_RATIO = 2.0  # largest/smallest median; below 1 ms any difference counts as flat
SQLITE_FLAT_ABS_S = 0.001


# -- the history ------------------------------------------------------------------------------


def population(n: int, now: datetime) -> tuple[list[Any], list[Any], list[Any]]:
    """(jobs, versions, presets) for ``n`` versions, as the store's models."""
    from bot.domain import (
        JobSpec,
        JobVersion,
        Preset,
        Status,
        StatusChange,
        TrainingJob,
    )

    spec = JobSpec(algorithm="tabular-classification", algorithm_version="1.0.0",
                   hyperparameters={"max_iter": 200, "learning_rate": 0.1},
                   pool="cpu-small")
    template = JobVersion(
        job="j0", number=1, spec=spec, requested_by=c.USER, status=Status.COMPLETED,
        created_at=now, updated_at=now, channel=CHANNEL,
        history=[StatusChange(status=Status.QUEUED, at=now, message="requested by U0LOCAL1")],
        metrics={"validation:accuracy": 0.95, "train:loss": 0.12}, backend="sagemaker",
        estimated_cost_usd=0.92, message_ts="1700000000.000100")
    jobs_needed = math.ceil(n / VERSIONS_PER_JOB)
    jobs = []
    versions = []
    old = max(0, n - ACTIVE - RECENT)
    for j in range(jobs_needed):
        count = min(VERSIONS_PER_JOB, n - j * VERSIONS_PER_JOB)
        name = f"job{j:06d}"
        versions_of_job = []
        for k in range(1, count + 1):
            index = j * VERSIONS_PER_JOB + (k - 1)
            if index < ACTIVE:
                status = (Status.TRAINING, Status.QUEUED, Status.AWAITING_APPROVAL)[index % 3]
                created = now - timedelta(minutes=5 + index)
                ended = None
            elif index < ACTIVE + RECENT:
                status = Status.FAILED if index - ACTIVE < RECENT_FAILED else Status.COMPLETED
                ended = now - timedelta(hours=23) + timedelta(minutes=index)  # within 24 h
                created = ended - timedelta(hours=1)
            else:
                # Evenly over (now - 60 days, now - 25 h]: never inside the last 24 h.
                span = timedelta(days=60) - timedelta(hours=25)
                share = (index - ACTIVE - RECENT + 1) / max(old, 1)
                ended = now - timedelta(hours=25) - span * (1 - share)
                created = ended - timedelta(hours=1)
                status = (Status.COMPLETED, Status.COMPLETED, Status.FAILED,
                          Status.STOPPED)[index % 4]
            backend = None if status is Status.AWAITING_APPROVAL else \
                f"trainbot-{name}-v{k}-{index % 65536:04x}"
            if status is Status.QUEUED and index % 2:
                backend = None  # queued behind a full pool: not launched yet
            history = [StatusChange(status=Status.QUEUED, at=created, message="requested"),
                       StatusChange(status=status, at=ended or created, message="")]
            versions_of_job.append(template.model_copy(update={
                "job": name, "number": k, "parent": k - 1 if k > 1 else None,
                "status": status, "created_at": created, "updated_at": ended or created,
                "started_at": created, "ended_at": ended, "backend_job_name": backend,
                "backend": "sagemaker" if backend else None, "history": history,
                "failure_reason": "AlgorithmError: exit code 1" if status is Status.FAILED
                else None,
            }))
        jobs.append(TrainingJob(name=name, owner=c.USER, channel=CHANNEL,
                                created_at=versions_of_job[0].created_at,
                                latest_version=count))
        versions += versions_of_job
    presets = [Preset(name=f"preset-{p:02d}", scope=SCOPE, description="bench", spec=spec,
                      owner=c.USER, created_at=now, updated_at=now) for p in range(PRESETS)]
    return jobs, versions, presets


def _deps(store: Any) -> Any:
    """What the read services use: the store, the catalog (pools), a clock, the scope, the
    stuck threshold and the policy (no budgets from a file)."""
    from bot.bootstrap import build_catalog
    from bot.clock import SystemClock
    from bot.config import Settings
    from bot.services.authz import Policy

    settings = Settings(home=Path(tempfile.gettempdir()) / "bench-access-home")
    return SimpleNamespace(store=store, catalog=build_catalog(settings), clock=SystemClock(),
                           scope=SCOPE, stuck_after=timedelta(minutes=30), policy=Policy())


def ledger(versions: list[Any], now: datetime) -> dict[str, tuple[float, float, int]]:
    """This month's counters as the store would hold them: key → (spent, committed,
    ended versions), for the versions created this month."""
    from bot.domain.cost import charge_keys, month_of

    month = month_of(now)
    out: dict[str, tuple[float, float, int]] = {}
    for v in versions:
        if month_of(v.created_at) != month:
            continue
        spent = 0.0 if v.ended_at is None else 0.23
        committed = 0.92 if v.ended_at is None else 0.0
        for key in charge_keys(user=v.requested_by, channel=v.channel, pool=v.spec.pool,
                               algorithm=v.spec.algorithm, job=v.job):
            s, cm, n = out.get(key, (0.0, 0.0, 0))
            out[key] = (s + spent, cm + committed, n + (v.ended_at is not None))
    return out


def _spend_records(store: Any, counters: dict[str, tuple[float, float, int]],
                   now: datetime) -> None:
    """The channel's budget and the month's top-jobs record, through the store."""
    from bot.domain.cost import Budget, BudgetScope, month_of

    store.put_budget(Budget(scope=BudgetScope.CHANNEL, subject=CHANNEL, limit_usd=5000))
    jobs = sorted(((k[4:], v) for k, v in counters.items() if k.startswith("job:")),
                  key=lambda kv: -kv[1][0])[:10]
    store.put_record(f"top-jobs:{month_of(now)}", {"jobs": [
        {"subject": j, "spent_usd": v[0], "committed_usd": 0.0, "versions": v[2],
         "spot_saving_usd": 0.0} for j, v in jobs]}, revision=0)


def _reads(deps: Any, job: str, backend_name: str) -> dict[str, Any]:
    """name → zero-argument call, and what each returns (checked for sanity)."""
    from bot.services import budgets, costs, queries
    from bot.services import presets as preset_service

    return {
        "status": lambda: queries.status_overview(deps),
        "versions JOB": lambda: queries.list_versions(deps, job),
        "preset list": lambda: preset_service.list_presets(deps),
        "event lookup": lambda: deps.store.find_by_backend_name(backend_name),
        "budget check": lambda: budgets.check_budgets(deps, user=c.USER, channel=CHANNEL,
                                                      estimate_usd=1.0),
        "cost --month": lambda: costs.cost_report(deps, by="pool"),
    }


def _shape(name: str, value: Any) -> str:
    if name == "status":
        return (f"{len(value.running)} running, {len(value.queued)} queued, "
                f"{len(value.awaiting)} awaiting, {len(value.failed_recent)} failed in 24 h")
    if name == "event lookup":
        return "found" if value is not None else "NOT FOUND"
    if name == "budget check":
        return "within budget" if value is None else "over budget"
    if name == "cost --month":
        return (f"${value.total.spent_usd:,.2f} spent, {len(value.rows)} pool rows, "
                f"{len(value.top_jobs)} top jobs")
    return f"{len(value)} items"


def _probe(versions: list[Any]) -> tuple[str, str]:
    middle = versions[len(versions) // 2]
    named = next(v for v in versions[len(versions) // 2:] + versions if v.backend_job_name)
    return middle.job, named.backend_job_name


# -- DynamoDB -----------------------------------------------------------------------------------


class _ReadCounter(c.AwsCallCounter):
    """Requests per operation, plus the items Query/Scan read (``ScannedCount``)."""

    def __init__(self) -> None:
        super().__init__()
        self.items_read = 0

    def _after(self, parsed: Any = None, **_: Any) -> None:
        if isinstance(parsed, dict):
            self.items_read += int(parsed.get("ScannedCount", 0) or 0)
            if "Item" in parsed:
                self.items_read += 1

    def watch(self, client: Any) -> _ReadCounter:
        super().watch(client)
        client.meta.events.register("after-call.dynamodb", self._after)
        return self

    def reset(self) -> None:
        super().reset()
        self.items_read = 0


def dynamodb_size(n: int, budget_left: float) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from bot.adapters.dynamodb import items as sd
    from bot.adapters.dynamodb.keys import ledger_key, number
    from bot.adapters.dynamodb.store import DynamoStore
    from bot.adapters.dynamodb_schema import table_definition
    from bot.domain.cost import month_of

    now = datetime.now(UTC)
    began = time.perf_counter()
    jobs, versions, presets = population(n, now)
    built = time.perf_counter() - began
    with mock_aws():
        client = boto3.client("dynamodb", region_name=c.REGION)
        client.create_table(**table_definition(TABLE))
        began = time.perf_counter()
        items = []
        for job in jobs:
            item = sd.job_item(job)
            item["latest_version"] = number(job.latest_version)
            items.append(item)
        items += [sd.version_item(v) for v in versions]
        # Launched versions have a pointer item keyed by their backend job name (written with
        # the claim, read with a consistent GetItem by the event lookup).
        items += [sd.backend_pointer_item(v) for v in versions if v.backend_job_name]
        counters = ledger(versions, now)
        month = month_of(now)
        items += [{**ledger_key(month, key), "spent_usd": {"N": repr(round(sp, 6))},
                   "committed_usd": {"N": repr(round(cm, 6))}, "versions": {"N": str(k)}}
                  for key, (sp, cm, k) in counters.items()]
        for start in range(0, len(items), 25):
            batch = {TABLE: [{"PutRequest": {"Item": it}} for it in items[start:start + 25]]}
            while batch:
                batch = client.batch_write_item(RequestItems=batch).get("UnprocessedItems")
            if time.perf_counter() - began > budget_left:
                return {"n": n, "stopped": start + 25, "items": len(items),
                        "seconds": time.perf_counter() - began}
        populate = time.perf_counter() - began
        store = DynamoStore(TABLE, client=client)
        for preset in presets:
            store.create_preset(preset)
        _spend_records(store, counters, now)
        counter = _ReadCounter().watch(client)
        deps = _deps(store)
        job, backend_name = _probe(versions)
        reads = _reads(deps, job, backend_name)
        out: dict[str, Any] = {"n": n, "items": len(items) + len(presets), "build": built,
                               "populate": populate, "reads": {}}
        for name, call in reads.items():
            counter.reset()
            value = call()
            out["reads"][name] = {"requests": counter.total(), "ops": counter.snapshot(),
                                  "items_read": counter.items_read,
                                  "shape": _shape(name, value)}
    return out


# -- SQLite ----------------------------------------------------------------------------------


def sqlite_size(n: int, folder: Path) -> dict[str, Any]:
    from bot.adapters.sqlite import SqliteStore
    from bot.adapters.sqlite.rows import FIXED_FIELDS, STATE_EXCLUDE, timestamp
    from bot.domain.cost import month_of

    now = datetime.now(UTC)
    jobs, versions, presets = population(n, now)
    store = SqliteStore(folder / f"bench-{n}.db")
    began = time.perf_counter()
    conn = store._conn()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO jobs (name, channel, created_at, latest_version, body) "
        "VALUES (?, ?, ?, ?, ?)",
        [(j.name, j.channel, timestamp(j.created_at), j.latest_version,
          j.model_dump_json(exclude={"latest_version"})) for j in jobs])
    conn.executemany(
        "INSERT INTO versions (job, number, revision, status, terminal, backend_job_name, "
        "request_key, created_at, ended_at, fixed, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(v.job, v.number, v.revision, v.status.value, int(v.status.terminal),
          v.backend_job_name, v.request_key, timestamp(v.created_at),
          timestamp(v.ended_at) if v.ended_at else None,
          v.model_dump_json(include=FIXED_FIELDS),
          v.model_dump_json(exclude=STATE_EXCLUDE)) for v in versions])
    counters = ledger(versions, now)
    conn.executemany(
        "INSERT INTO ledger (period, key, spent_usd, committed_usd, versions) "
        "VALUES (?, ?, ?, ?, ?)",
        [(month_of(now), key, sp, cm, k) for key, (sp, cm, k) in counters.items()])
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    populate = time.perf_counter() - began
    for preset in presets:
        store.create_preset(preset)
    _spend_records(store, counters, now)
    deps = _deps(store)
    job, backend_name = _probe(versions)
    out: dict[str, Any] = {"n": n, "populate": populate, "reads": {}}
    for name, call in _reads(deps, job, backend_name).items():
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        value = call()
        conn.set_trace_callback(None)
        plans = []
        for sql in statements:
            if sql.lstrip().upper().startswith("SELECT"):
                rows = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
                plans += [row[3] for row in rows]
        for _ in range(2):
            call()
        samples = []
        for _ in range(TIMED_CALLS):
            t = time.perf_counter()
            call()
            samples.append(time.perf_counter() - t)
        out["reads"][name] = {"median": c.median(samples), "shape": _shape(name, value),
                              "plans": plans}
    store.close()
    return out


# -- the report -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="stop populating DynamoDB sizes beyond this much time")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    c.fake_aws_env()
    print(f"access patterns: sizes {', '.join(f'{s:,}' for s in sizes)} versions; "
          f"{ACTIVE} active, {RECENT} ended in 24 h, {PRESETS} presets at every size")
    print("note: 2-core machine shared with other work (tests may be running): timings are noisy")
    started = time.perf_counter()

    dynamo: list[dict[str, Any]] = []
    print("\nDynamoDB (moto in-process):")
    rate = None
    for n in sizes:
        left = args.budget_s - (time.perf_counter() - started)
        estimate = (n * 1.1 / rate) if rate else 0.0
        if rate and estimate > left:
            print(f"  {n:,}: skipped — populating would take ~{estimate:.0f} s at "
                  f"{rate:,.0f} items/s, {left:.0f} s of the {args.budget_s:.0f} s budget left")
            continue
        figures = dynamodb_size(n, left)
        if "stopped" in figures:
            print(f"  {n:,}: stopped after {figures['stopped']:,} of {figures['items']:,} items "
                  f"in {figures['seconds']:.0f} s (budget)")
            continue
        rate = figures["items"] / figures["populate"]
        print(f"  {n:,}: {figures['items']:,} items built in {figures['build']:.1f} s, "
              f"written in {figures['populate']:.1f} s ({rate:,.0f} items/s, BatchWriteItem)")
        dynamo.append(figures)
        gc.collect()

    sqlite: list[dict[str, Any]] = []
    print("\nSQLite (bulk insert, then ANALYZE):")
    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        for n in sizes:
            figures = sqlite_size(n, Path(tmp))
            print(f"  {n:,}: populated in {figures['populate']:.1f} s")
            sqlite.append(figures)
            gc.collect()

    return _report(dynamo, sqlite)


def _report(dynamo: list[dict[str, Any]], sqlite: list[dict[str, Any]]) -> int:
    names = ["status", "versions JOB", "preset list", "event lookup", "budget check",
             "cost --month"]
    dynamo_ok = bool(dynamo)
    scans = 0
    if dynamo:
        print("\nDynamoDB requests per read (items read by queries/gets in brackets):")
        rows = []
        for name in names:
            row = [name]
            counts = set()
            for f in dynamo:
                r = f["reads"][name]
                counts.add(r["requests"])
                row.append(f"{r['requests']} ({r['items_read']})")
                scans += sum(k for op, k in r["ops"].items() if op.endswith(".Scan"))
            flat = len(counts) == 1
            dynamo_ok &= flat
            row.append("constant" if flat else "GROWS")
            rows.append(row)
        c.print_table(rows, ["read", *(f"{f['n']:,}" for f in dynamo), "across sizes"])
        ops: Counter[str] = Counter()
        for name in names:
            ops = dynamo[-1]["reads"][name]["ops"]
            print(f"  {name}: {c.describe_counts(ops)} — {dynamo[-1]['reads'][name]['shape']}")
        print(f"Scans: {scans}   [TARGET: 0, and the same request count at every size]")
        dynamo_ok &= scans == 0
    largest = f"{dynamo[-1]['n']:,}" if dynamo else "none"

    print("\nSQLite median of 20 calls per read:")
    sqlite_ok = True
    rows = []
    for name in names:
        medians = [f["reads"][name]["median"] for f in sqlite]
        lo, hi = min(medians), max(medians)
        flat = hi <= lo * SQLITE_FLAT_RATIO or hi - lo <= SQLITE_FLAT_ABS_S
        sqlite_ok &= flat
        rows.append([name, *(c.fmt_ms(m) for m in medians), "flat" if flat else "GROWS"])
    c.print_table(rows, ["read", *(f"{f['n']:,}" for f in sqlite), "across sizes"])
    print(f"TARGET: flat within noise (largest ≤ {SQLITE_FLAT_RATIO:g}× smallest, or within "
          f"{SQLITE_FLAT_ABS_S * 1000:g} ms)")
    full_scans = 0
    if sqlite:
        print(f"query plans at {sqlite[-1]['n']:,} versions:")
        for name in names:
            plans = sqlite[-1]["reads"][name]["plans"]
            full = [p for p in plans if p.startswith("SCAN") and "USING" not in p]
            full_scans += len(full)
            print(f"  {name}: {'; '.join(dict.fromkeys(plans)) or '-'} — "
                  f"{sqlite[-1]['reads'][name]['shape']}")
    sqlite_ok &= full_scans == 0

    d_figure = ("requests " + ", ".join(
        f"{name.split()[0]} {dynamo[-1]['reads'][name]['requests']}" for name in names)
        + f" at every size up to {largest}; Scans {scans}") if dynamo else "no size populated"
    s_figure = "status " + " → ".join(
        f"{f['reads']['status']['median'] * 1000:.2f}" for f in sqlite) + " ms over sizes"
    print(f"summary: DynamoDB {d_figure} ({'PASS' if dynamo_ok else 'FAIL'}); SQLite "
          f"{s_figure}, {'flat' if sqlite_ok else 'NOT flat'} "
          f"({'PASS' if sqlite_ok else 'FAIL'})")
    c.result("access (DynamoDB)", d_figure, "constant, 0 scans", c.verdict(dynamo_ok))
    c.result("access (SQLite)", s_figure, "flat within noise", c.verdict(sqlite_ok))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
