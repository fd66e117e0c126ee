"""Local sweep overhead: an 8-trial sweep through trainbot vs the same 8 trial scripts run
directly, two at a time.

    .venv/bin/python benchmarks/bench_sweep.py [--rounds 2]

trainbot: ``start_sweep`` of ``tabular-classification learning_rate=0.01..0.5:log
max_leaf_nodes=8..64 --trials 8 --parallel 2`` on a temporary SQLite store with the local
compute and the Optuna tuner (the wiring of ``bot.bootstrap.build_deps``); the clock runs
from the call until the chat hears that the sweep ended (right after it is stored). Every
step of the sweep is in it: Optuna rebuilt from the store for each trial, each trial's
version created and launched, its end recorded and the next one launched.
Direct: the same 8 parameter sets (read off the sweep's trials), each run folder prepared by
the same code as the local backend (``prepare_run``), then the scripts alone as subprocesses,
two at a time, timed from the first spawn to the last exit.
Pruning is off for the measurement (a tuner that never prunes): a pruned trial stops early,
which the direct side can't copy, and the figure is about trainbot's overhead.
Rounds alternate the order; the ratio reported is the median of the rounds' ratios.

Target: trainbot ≤ 1.15× direct.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from bench_local_overhead import RUN_TIMEOUT_S, prepare_direct

TARGET = 1.15
TRIALS, PARALLEL = 8, 2
ALGORITHM = "tabular-classification"
RANGES = {"learning_rate": "0.01..0.5:log", "max_leaf_nodes": "8..64"}


class _Chat:
    """The chat port (only what a sweep calls matters here): when the sweep ended."""

    def __init__(self) -> None:
        self.ended: dict[str, float] = {}
        self.done = threading.Condition()

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def sweep_ended(self, sweep: Any, trials: Any) -> None:
        with self.done:
            self.ended[sweep.name] = time.perf_counter()
            self.done.notify_all()


def _deps(home: Path) -> tuple[Any, _Chat]:
    from bot.adapters.optuna_tuner import OptunaTuner
    from bot.bootstrap import build_deps
    from bot.config import Settings

    class NoPruning(OptunaTuner):
        def should_prune(self, sweep: Any, trials: Any, trial: Any) -> bool:
            return False

    chat = _Chat()
    settings = Settings(home=home, tensorboard_port=0, user=c.USER)
    deps = build_deps(settings, chat=chat, tuner=NoPruning(), recover=False)  # type: ignore[arg-type]
    return deps, chat


def run_sweep(deps: Any, chat: _Chat, name: str) -> tuple[float | None, list[dict]]:
    from bot.services.sweeps import SweepRequest, start_sweep, sweep_trials

    began = time.perf_counter()
    start_sweep(deps, SweepRequest(user=c.USER, algorithm=ALGORITHM, assignments=RANGES,
                                   trials=TRIALS, parallel=PARALLEL, pool="local-cpu",
                                   name=name, trusted=True))
    with chat.done:
        chat.done.wait_for(lambda: name in chat.ended, timeout=RUN_TIMEOUT_S * TRIALS)
    ended = chat.ended.get(name)
    sweep = deps.store.get_sweep(name)
    trials = sweep_trials(deps, sweep)
    params = [dict(t.params) for t in trials]
    ok = sweep.status.value == "COMPLETED" and len(trials) == TRIALS
    return ((ended - began) if ended and ok else None), params


def run_direct(deps: Any, params: list[dict], root: Path, tag: str) -> float | None:
    prepared = [prepare_direct(deps, ALGORITHM, f"{tag}-{i}", root, params=p)
                for i, p in enumerate(params)]

    def one(item: tuple[Any, dict, dict]) -> int:
        run, record, env = item
        with run.log_file.open("ab") as log:
            return subprocess.run(record["command"], cwd=record["cwd"], env=env,
                                  stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S).returncode

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        codes = list(pool.map(one, prepared))
    seconds = time.perf_counter() - began
    return seconds if all(code == 0 for code in codes) else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    c.fake_aws_env()
    import logging

    logging.getLogger("trainbot").setLevel(logging.WARNING)
    print(f"local sweep overhead: {TRIALS} trials of {ALGORITHM}, {PARALLEL} at a time, "
          f"{args.rounds} rounds (order alternating); trainbot (Optuna + local compute, temp "
          "SQLite store) vs the same scripts directly", flush=True)
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="trainbot-bench-sweep-") as tmp:
        root = Path(tmp)
        deps, chat = _deps(root / "home")
        try:
            for r in range(args.rounds):
                if r % 2 == 0:
                    swept, params = run_sweep(deps, chat, f"sw{r}")
                    direct = run_direct(deps, params, root, f"d{r}") if swept else None
                else:
                    # Direct first: the parameters of the previous round's sweep.
                    direct = run_direct(deps, params, root, f"d{r}")
                    swept, params = run_sweep(deps, chat, f"sw{r}")
                if swept is None or direct is None:
                    print(f"round {r + 1}: a side failed (sweep {swept}, direct {direct})")
                    continue
                ratios.append(swept / direct)
                print(f"round {r + 1}: sweep {swept:.2f} s, direct {direct:.2f} s, "
                      f"ratio {swept / direct:.3f}×")
        finally:
            deps.compute.close()
    if not ratios:
        c.result("sweep overhead", "failed", f"≤ {TARGET:.2f}×", c.verdict(False))
        return 1
    ratio = statistics.median(ratios)
    ok = ratio <= TARGET
    print(f"TARGET: ratio ≤ {TARGET:.2f}× (median of rounds); measured {ratio:.3f}×")
    c.result("sweep overhead", f"{ratio:.3f}× ({TRIALS} trials, {PARALLEL} parallel)",
             f"≤ {TARGET:.2f}×", c.verdict(ok))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
