"""The local reconcile timer (`trainbot run` / `serve`) runs the scheduled pass by itself."""

from __future__ import annotations

import threading
import time

from bot.domain import Decision, Status
from bot.local_reconcile import ReconcileTimer
from bot.services.context import Deps
from bot.services.reconcile import ReconcileSummary
from bot.services.requests import LaunchRequest, start_job


def _wait_for(condition, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_an_overdue_approval_expires_without_any_command(deps: Deps) -> None:
    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-4",
                                               channel="C1", job_name="big"))
    assert version.status is Status.AWAITING_APPROVAL
    deps.clock.advance(minutes=deps.policy.approval_ttl_minutes + 1)  # type: ignore[attr-defined]

    with ReconcileTimer(deps, interval_s=0.05):
        expired = _wait_for(lambda: deps.store.get_version("big", 1).status is Status.REJECTED)

    assert expired
    assert deps.store.get_approval(version.approval_id or "").decision is Decision.EXPIRED


def test_a_failing_pass_is_logged_and_the_next_one_runs(deps: Deps) -> None:
    calls: list[Deps] = []

    def flaky(given: Deps) -> ReconcileSummary:
        calls.append(given)
        if len(calls) == 1:
            raise RuntimeError("store unavailable")
        return ReconcileSummary()

    with ReconcileTimer(deps, interval_s=0.02, reconcile_fn=flaky):
        assert _wait_for(lambda: len(calls) >= 3)
    assert calls[0] is deps


def test_stop_ends_the_thread_promptly(deps: Deps) -> None:
    timer = ReconcileTimer(deps, interval_s=60).start()
    started = time.monotonic()

    timer.stop()

    assert time.monotonic() - started < 1
    assert not any(t.name == "trainbot-reconcile" for t in threading.enumerate())
