"""Run every benchmark, one subprocess each, in order, and print a summary table.

    .venv/bin/python benchmarks/run_all.py [NAME ...]     # `make bench`
    .venv/bin/python benchmarks/run_all.py --list

Each benchmark has its own timeout, and the whole run a budget (``--budget-s``, default
570 s: under 10 minutes on a 2-core machine); a benchmark that no longer fits is skipped
and says so. Output streams as it comes. Benchmarks measure, they don't gate: the exit
status is 0 when every benchmark ran, whatever its figures, and 1 when one could not run
(crashed, timed out, or skipped for time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT_PREFIX = "RESULT "
DEFAULT_BUDGET_S = 570.0
MIN_USEFUL_S = 20.0


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    timeout_s: float
    args: tuple[str, ...] = ()
    # Used when the script prints no RESULT line (algorithm_quality.py predates them).
    target: str = ""


BENCHMARKS = (
    Bench("cold ack", "bench_cold_ack.py", 150),
    Bench("cold start", "bench_cold_start.py", 120),
    Bench("warm ack", "bench_warm_ack.py", 120),
    Bench("burst", "bench_burst.py", 180),
    Bench("event handling", "bench_event_handling.py", 180),
    Bench("access patterns", "bench_access_patterns.py", 300, ("--budget-s", "200")),
    Bench("lambda bundle", "bench_bundle.py", 240),
    Bench("local overhead", "bench_local_overhead.py", 240),
    Bench("sweep overhead", "bench_sweep.py", 300),
    Bench("gpu throughput", "bench_gpu.py", 300),
    Bench("algorithm quality", "algorithm_quality.py", 180,
          target="manifest quality_target"),
)


@dataclass
class Row:
    benchmark: str
    figure: str
    target: str
    result: str


def _stream(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if not line.startswith(RESULT_PREFIX):
            sys.stdout.write("  " + line)
            sys.stdout.flush()


def run(bench: Bench, timeout_s: float) -> tuple[list[Row], bool, float]:
    """Run one benchmark; its rows, whether it ran to the end, and its wall time."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / bench.script), *bench.args], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        start_new_session=True,  # its own process group: a timeout ends it and its children
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=_stream, args=(proc, lines), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    seconds = time.perf_counter() - began

    rows = []
    for line in lines:
        if line.startswith(RESULT_PREFIX):
            try:
                data = json.loads(line[len(RESULT_PREFIX):])
                rows.append(Row(data["benchmark"], data["figure"], data["target"],
                                data["result"]))
            except (ValueError, KeyError):
                continue
    if not rows:
        rows = _from_summary(bench, lines)
    ok = not timed_out and proc.returncode == 0
    if timed_out:
        note = f"TIMEOUT after {timeout_s:.0f} s"
        rows = [Row(r.benchmark, r.figure, r.target, note) for r in rows] or [
            Row(bench.name, "(timed out)", bench.target or "-", note)]
    elif proc.returncode != 0:
        last = next((ln for ln in reversed(lines) if ln.strip()), "no output")
        rows = rows or [Row(bench.name, last[:60], bench.target or "-",
                            f"ERROR (exit {proc.returncode})")]
    return rows, ok, seconds


_QUALITY = re.compile(r"summary: (\d+)/(\d+) algorithms reach")


def _from_summary(bench: Bench, lines: list[str]) -> list[Row]:
    """A row from a script's ``summary:`` line when it printed no RESULT line."""
    summary = next((ln for ln in reversed(lines) if ln.startswith("summary:")), None)
    if summary is None:
        return []
    text = summary.removeprefix("summary:").strip()
    m = _QUALITY.match(summary)
    if m:
        passed, total = int(m.group(1)), int(m.group(2))
        return [Row(bench.name, f"{passed}/{total} algorithms reach their target",
                    bench.target, "PASS" if passed == total else "FAIL")]
    return [Row(bench.name, text[:60], bench.target or "-", "INFO")]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    args = parser.parse_args(argv)
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:<18} benchmarks/{b.script}  (timeout {b.timeout_s:.0f} s)")
        return 0
    wanted = {n.lower() for n in args.names}
    chosen = [b for b in BENCHMARKS
              if not wanted or b.name in wanted or b.script.removesuffix(".py") in wanted]
    if not chosen:
        print(f"no benchmark named {', '.join(sorted(wanted))}; --list shows them")
        return 2

    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"trainbot benchmarks: {len(chosen)} to run, budget {args.budget_s:.0f} s; "
          f"{os.cpu_count()} CPUs, load average {load:.2f} at start")
    print("Timings are noisy on a small shared machine (other work, e.g. tests, may be "
          "running); request counts and sizes are exact.\n")
    rows: list[Row] = []
    timings: list[tuple[str, float]] = []
    all_ran = True
    for bench in chosen:
        left = args.budget_s - (time.perf_counter() - started)
        timeout = min(bench.timeout_s, left)
        print(f"== {bench.name} (benchmarks/{bench.script}, timeout {timeout:.0f} s)",
              flush=True)
        if timeout < MIN_USEFUL_S:
            print(f"  skipped: {left:.0f} s of the {args.budget_s:.0f} s budget left\n")
            rows.append(Row(bench.name, "(not run: out of time)", bench.target or "-", "SKIPPED"))
            all_ran = False
            continue
        bench_rows, ok, seconds = run(bench, timeout)
        rows += bench_rows
        timings.append((bench.name, seconds))
        all_ran &= ok
        print(f"  ({bench.name}: {seconds:.1f} s)\n", flush=True)

    total = time.perf_counter() - started
    _table(rows)
    print()
    print("wall time: " + ", ".join(f"{name} {s:.0f} s" for name, s in timings) +
          f"; total {total:.0f} s ({total / 60:.1f} min)")
    counts = Counter(r.result.split(" ")[0] for r in rows)
    print("results: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
          ("" if all_ran else "; some benchmarks could not run"))
    return 0 if all_ran else 1


def _table(rows: list[Row]) -> None:
    headers = ("benchmark", "figure", "target", "result")
    cells = [(r.benchmark, r.figure, r.target, r.result) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
