"""Races at the service level, on the real stores (SQLite file, DynamoDB through moto).

50 people rerun one job at once: versions 2..51, each launched once. 10 approvers press
Approve on one request at once: one decision, one launch. 10 launches on a pool with
``max_concurrent: 1`` at once: one runs, the others wait their turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from bot.config import RerunApproval
from bot.domain import Conflict, ResourcePool, Status
from bot.services import approvals
from bot.services.authz import Policy
from bot.services.requests import LaunchRequest, rerun, start_job
from bot.services.state_changes import record_state_change
from tests.fakes import FakeCompute, event
from tests.reliability.conftest import make_store, service_deps

T = TypeVar("T")
STORES = ["sqlite", "dynamodb"]


def concurrently(n: int, work: Callable[[int], T]) -> list[T | Exception]:
    """Run ``work(0..n-1)`` on ``n`` threads released together; exceptions are returned."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T | Exception:
        barrier.wait(timeout=30)
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


@pytest.mark.parametrize("kind", STORES)
def test_fifty_concurrent_reruns_get_versions_2_to_51_each_launched_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    compute = FakeCompute()
    deps = service_deps(make_store(kind, request, tmp_path), compute=compute,
                        policy=Policy(rerun_approval=RerunApproval.NEVER))
    v1, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", job_name="race",
                                          pool="local-cpu"))

    results = concurrently(50, lambda i: rerun(
        deps, LaunchRequest(user=f"U{i}", params={"epochs": str(1 + i % 9)}), job="race",
        base_number=1))

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    numbers = sorted(v.number for v, _ in results)  # type: ignore[union-attr]
    assert numbers == list(range(2, 52))
    stored = deps.store.list_versions("race")
    assert [v.number for v in stored] == list(range(1, 52))
    assert all(v.parent == 1 and v.backend_job_name for v in stored[1:])
    assert deps.store.get_job("race").latest_version == 51
    launched = sorted(v.number for v in compute.launched)
    assert launched == list(range(1, 52))  # each once, none skipped
    assert len({v.backend_job_name for v in stored}) == 51


@pytest.mark.parametrize("kind", STORES)
def test_ten_approvers_pressing_approve_at_once_launch_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    approvers = [f"UAPP{i}" for i in range(10)]
    compute = FakeCompute()
    deps = service_deps(make_store(kind, request, tmp_path), compute=compute,
                        policy=Policy(approvers=approvers, rerun_approval=RerunApproval.ALWAYS))
    start_job(deps, LaunchRequest(user="UREQ", algorithm="toy", job_name="exp",
                                  pool="local-cpu"))
    v2, approval = rerun(deps, LaunchRequest(user="UREQ", params={"epochs": "5"}), job="exp")
    assert approval is not None and v2.status is Status.AWAITING_APPROVAL

    results = concurrently(10, lambda i: approvals.decide(
        deps, approval_id=approval.id, user=approvers[i], approve=True))

    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1, results
    assert all(isinstance(e, Conflict) and "already approved" in e.message for e in lost), lost
    decided, version = won[0]  # type: ignore[misc]
    stored = deps.store.get_approval(approval.id)
    assert stored.decided_by == decided.decided_by == version.approved_by
    assert [v.number for v in compute.launched] == [1, 2]
    assert deps.store.get_version("exp", 2).backend_job_name


@pytest.mark.parametrize("kind", STORES)
def test_ten_launches_on_a_pool_of_one_run_one_at_a_time(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    compute = FakeCompute()
    single = ResourcePool(id="single", instance_type="ml.m5.large", max_concurrent=1)
    deps = service_deps(make_store(kind, request, tmp_path), compute=compute, pools=[single])

    results = concurrently(10, lambda i: start_job(deps, LaunchRequest(
        user=f"U{i}", algorithm="toy", job_name=f"cap{i}", pool="single")))

    assert [r for r in results if isinstance(r, Exception)] == []
    order = []
    for _ in range(10):
        running = [v for v in deps.store.list_active() if v.backend_job_name]
        assert len(running) == 1, running  # never two at once, and the next one started
        assert len(compute.launched) == len(order) + 1
        order.append(running[0].job)
        # Its end gives the place back and dispatches the oldest queued version.
        record_state_change(deps, event(running[0].backend_job_name or "", "Completed"))
    assert sorted(order) == sorted(f"cap{i}" for i in range(10))
    assert deps.store.list_active() == []
