"""Spend control against the fakes: caps queue (never refuse), ceilings, estimates and
actuals, the ledger, budgets and their alerts, the report, the digest, the near-ceiling
warning."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.catalog import Catalog, load_pools
from bot.config import RerunApproval
from bot.domain import InvalidInput, NotAllowed, Status
from bot.domain.cost import Budget, BudgetPolicy, BudgetScope, month_of, week_of
from bot.services import budgets, costs
from bot.services.authz import Policy
from bot.services.context import Deps
from bot.services.reconcile import reconcile
from bot.services.requests import LaunchRequest, rerun, start_job
from bot.services.state_changes import record_state_change
from tests.fakes import FakeClock, FakeCompute, MemoryStore, RecordingChat, event
from tests.unit.conftest import ALGO

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday


def _deps(**policy: Any) -> Deps:
    return Deps(store=MemoryStore(), compute=FakeCompute(),
                catalog=Catalog(algorithms={"toy": ALGO}, pools=load_pools()),
                clock=FakeClock(T0),
                policy=Policy(approvers=["UAPPROVER"], admins=["UADMIN"],
                              rerun_approval=RerunApproval.NEVER, **policy),
                chat=RecordingChat())


def _start(deps: Deps, user: str = "U1", *, pool: str = "cpu-small", channel: str = "C1",
           **kw: Any) -> Any:
    version, _ = start_job(deps, LaunchRequest(user=user, algorithm="toy", pool=pool,
                                               channel=channel, **kw))
    return version


def _end(deps: Deps, version: Any, status: str = "Completed", **detail: Any) -> Any:
    current = deps.store.get_version(version.job, version.number)
    return record_state_change(deps, event(current.backend_job_name, status, **detail))


def _calls(deps: Deps, kind: str) -> list:
    return [c[1] for c in deps.chat.calls if c[0] == kind]  # type: ignore[attr-defined]


# --- caps -----------------------------------------------------------------------------------


def test_over_the_user_cap_a_launch_waits_in_line_and_goes_in_turn() -> None:
    deps = _deps(max_active_per_user=1)
    versions = [_start(deps) for _ in range(5)]
    assert [v.status for v in versions][:1] == [Status.QUEUED] and versions[0].backend_job_name
    waiting = [deps.store.get_version(v.job, v.number) for v in versions[1:]]
    assert all(not v.backend_job_name for v in waiting)
    assert [v.queue_reason for v in waiting] == [
        f"its requester already has 1 version active, the most per user; place {n} in line"
        for n in (1, 2, 3, 4)]
    other = _start(deps, "U2")  # another user isn't held back
    assert other.backend_job_name
    order = [versions[0].job]
    for _ in range(4):
        active = [v for v in deps.store.list_active() if v.backend_job_name
                  and v.requested_by == "U1"]
        assert len(active) == 1  # never over the cap
        _end(deps, active[0])
        nxt = [v for v in deps.store.list_active() if v.backend_job_name
               and v.requested_by == "U1"]
        order.append(nxt[0].job)
    assert order == [v.job for v in versions]  # oldest first


def test_the_cap_holds_under_concurrent_launches() -> None:
    deps = _deps(max_active_per_user=2)
    barrier = threading.Barrier(6)
    out: list[Any] = []

    def go() -> None:
        barrier.wait()
        out.append(_start(deps))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    launched = [v for v in deps.store.list_active() if v.backend_job_name]
    assert len(out) == 6 and len(launched) == 2


def test_a_pool_cap_for_one_user_and_the_channel_cap() -> None:
    deps = _deps(max_active_per_channel=2)
    a = _start(deps, "U1", pool="gpu-1")  # gpu-1: max_active_per_user 2 (pools.yml)
    b = _start(deps, "U1", pool="gpu-1")
    c = _start(deps, "U2", pool="gpu-1")  # the channel's two places are taken
    assert a.backend_job_name and b.backend_job_name and not c.backend_job_name
    waiting = deps.store.get_version(c.job, c.number)
    assert waiting.queue_reason and "the most per channel" in waiting.queue_reason
    assert _start(deps, "U3", channel="C2").backend_job_name  # another channel goes


# --- runtime ceiling, estimates, actuals ----------------------------------------------------------


def test_a_pools_runtime_ceiling_is_enforced_and_defaults_are_brought_under_it() -> None:
    deps = _deps()
    with pytest.raises(InvalidInput, match="at most 24h"):
        _start(deps, pool="gpu-1", max_runtime_s=48 * 3600)
    ok = _start(deps, pool="gpu-1", max_runtime_s=24 * 3600)
    assert ok.spec.max_runtime_s == 24 * 3600
    # gpu-8's ceiling (12 h) is below what the version it reruns asked for: brought down.
    again, _ = rerun(deps, LaunchRequest(user="U1", pool="gpu-8", channel="C1"), job=ok.job)
    assert again.spec.max_runtime_s == 12 * 3600


def test_estimates_say_the_spot_figure_and_the_end_records_cost_and_saving() -> None:
    deps = _deps()
    v = _start(deps, pool="gpu-1", spot=True, max_runtime_s=10 * 3600)
    assert v.estimated_cost_usd == pytest.approx(14.08)
    assert v.estimated_spot_cost_usd == pytest.approx(14.08 * 0.3)
    ended = _end(deps, v, BillableTimeInSeconds=1800, TrainingTimeInSeconds=3600)
    assert ended.actual_cost_usd == pytest.approx(0.704)
    assert ended.spot_saving_usd == pytest.approx(0.704)
    month = deps.store.get_ledger(month_of(T0), ["total", "pool:gpu-1", "user:U1"])
    for key in ("total", "pool:gpu-1", "user:U1"):
        assert month[key].spent_usd == pytest.approx(0.704)
        assert month[key].committed_usd == pytest.approx(0.0)
        assert month[key].spot_saving_usd == pytest.approx(0.704) and month[key].versions == 1


def test_a_local_run_costs_its_wall_time() -> None:
    deps = _deps()
    v = _start(deps, pool="cpu-small")  # $0.23 an hour
    record_state_change(deps, event(v.backend_job_name, "InProgress", "Training"))
    deps.clock.advance(hours=2)  # type: ignore[attr-defined]
    ended = _end(deps, v)
    assert ended.actual_cost_usd == pytest.approx(0.46)


# --- budgets ------------------------------------------------------------------------------------


def _budget(deps: Deps, limit: float, policy: BudgetPolicy = BudgetPolicy.APPROVE) -> None:
    budgets.set_budget(deps, user="UADMIN", scope=BudgetScope.CHANNEL, subject="C1",
                       limit_usd=limit, policy=policy)


def test_only_admins_set_budgets() -> None:
    deps = _deps()
    with pytest.raises(NotAllowed, match="Only admins"):
        budgets.set_budget(deps, user="U1", scope=BudgetScope.CHANNEL, subject="C1",
                           limit_usd=100)


def test_over_budget_a_start_needs_an_approvers_ok_and_alerts_are_told_once() -> None:
    deps = _deps()
    _budget(deps, 1.2)
    first = _start(deps, max_runtime_s=4 * 3600)  # cpu-small: ≤ $0.92
    assert first.status is Status.QUEUED and first.backend_job_name
    assert _calls(deps, "budget alert") == []  # 77 %: no alert yet
    second, approval = start_job(deps, LaunchRequest(user="U1", algorithm="toy",
                                                     pool="cpu-small", channel="C1"))
    assert second.status is Status.AWAITING_APPROVAL and approval is not None
    assert approval.reason.startswith("over budget: $0.92 of $1.20 used by this channel")
    from bot.services.approvals import decide

    decide(deps, approval_id=approval.id, user="UAPPROVER", approve=True)
    assert _calls(deps, "budget alert") == [("channel:C1", month_of(T0), 80),
                                            ("channel:C1", month_of(T0), 100)]
    budgets.tell_alerts(deps, [deps.store.get_budget(BudgetScope.CHANNEL, "C1")])
    reconcile(deps)
    assert len(_calls(deps, "budget alert")) == 2  # each once


def test_a_refusing_budget_refuses_and_says_how_to_go_on() -> None:
    deps = _deps()
    _budget(deps, 0.5, BudgetPolicy.REFUSE)
    with pytest.raises(InvalidInput, match="Refused: over budget") as err:
        _start(deps)
    assert err.value.hint and "--max-runtime" in err.value.hint


def test_an_undelivered_alert_is_told_by_the_reconcile() -> None:
    deps = _deps()
    _budget(deps, 1.0)
    deps.chat.refuse_announcements = 5  # type: ignore[attr-defined]
    _start(deps, max_runtime_s=4 * 3600)  # ≤ $0.92 of $1.00: the 80 % alert, refused by Slack
    assert _calls(deps, "budget alert") == []
    deps.chat.refuse_announcements = 0  # type: ignore[attr-defined]
    reconcile(deps)
    reconcile(deps)
    assert [t for _, _, t in _calls(deps, "budget alert")] == [80]


def test_budgets_from_the_config_file_count_until_a_command_overrides_them() -> None:
    deps = _deps(budgets=[Budget(scope=BudgetScope.USER, subject="U1", limit_usd=0.1,
                                 source="config")])
    version, approval = start_job(deps, LaunchRequest(user="U1", algorithm="toy",
                                                      pool="cpu-small", channel="C1"))
    assert approval is not None and "by the requester" in approval.reason
    listed = budgets.list_budgets(deps)
    assert [(s.budget.key, s.budget.source) for s in listed] == [("user:U1", "config")]


# --- the report, the digest, the near-ceiling warning --------------------------------------------


def test_the_months_report_groups_what_was_spent() -> None:
    deps = _deps()
    for user, pool in (("U1", "cpu-small"), ("U2", "gpu-1"), ("U1", "gpu-1")):
        v = _start(deps, user, pool=pool)
        _end(deps, v, BillableTimeInSeconds=3600)
    report = costs.cost_report(deps, by="pool")
    assert report.period == month_of(T0)
    assert report.total.spent_usd == pytest.approx(0.23 + 2 * 1.408)
    assert [(r.subject, r.versions) for r in report.rows] == [("gpu-1", 2), ("cpu-small", 1)]
    by_user = costs.cost_report(deps, by="user")
    assert {r.subject: round(r.spent_usd, 3) for r in by_user.rows} == {
        "U1": round(0.23 + 1.408, 3), "U2": 1.408}
    assert [round(r.spent_usd, 3) for r in report.top_jobs] == [1.408, 1.408, 0.23]
    recent = costs.cost_report(deps, since="7d", by="pool")
    assert recent.total.spent_usd == pytest.approx(report.total.spent_usd)
    with pytest.raises(InvalidInput, match="--month"):
        costs.cost_report(deps, month="November")
    with pytest.raises(InvalidInput, match="--by"):
        costs.cost_report(deps, by="colour")


def test_the_weekly_digest_goes_once_to_each_channel_with_spend() -> None:
    deps = _deps()
    for channel in ("C1", "C2"):
        _end(deps, _start(deps, channel=channel), BillableTimeInSeconds=3600)
    assert costs.send_weekly_digests(deps) == []  # the week isn't over
    deps.clock.advance(days=7)  # type: ignore[attr-defined]
    deps.chat.refuse_announcements = 1  # type: ignore[attr-defined]
    first = costs.send_weekly_digests(deps)
    assert len(first) == 1  # one channel's digest refused: retried on the next pass
    second = costs.send_weekly_digests(deps)
    assert sorted(first + second) == ["C1", "C2"]
    assert costs.send_weekly_digests(deps) == []
    digests = _calls(deps, "cost digest")
    assert sorted(d[0] for d in digests) == ["C1", "C2"]
    assert all(d[1] == week_of(T0) and d[2] == pytest.approx(0.23) for d in digests)


def test_a_running_version_near_its_ceiling_is_warned_once() -> None:
    deps = _deps()
    v = _start(deps, max_runtime_s=3600)
    record_state_change(deps, event(v.backend_job_name, "InProgress", "Training"))
    deps.clock.advance(minutes=40)  # type: ignore[attr-defined]
    reconcile(deps)
    assert _calls(deps, "near ceiling") == []
    deps.clock.advance(minutes=9)  # type: ignore[attr-defined]
    reconcile(deps)
    reconcile(deps)
    assert _calls(deps, "near ceiling") == [v.label]
    assert deps.store.get_version(v.job, v.number).ceiling_warned


# --- review fixes: what waited is checked again; sweeps; retries -----------------------------


def test_versions_queued_behind_a_cap_are_checked_against_the_budget_as_they_launch() -> None:
    deps = _deps(max_active_per_user=1)
    budgets.set_budget(deps, user="UADMIN", scope=BudgetScope.USER, subject="U1",
                       limit_usd=20.0, policy=BudgetPolicy.REFUSE)
    first = _start(deps, max_runtime_s=3600)  # $0.23 holds the cap
    waiting = [_start(deps, max_runtime_s=72 * 3600) for _ in range(3)]  # $16.56 each
    assert all(not deps.store.get_version(v.job, v.number).backend_job_name for v in waiting)
    _end(deps, first, BillableTimeInSeconds=60)
    states = [deps.store.get_version(v.job, v.number) for v in waiting]
    assert [bool(v.backend_job_name) for v in states] == [True, False, False]
    _end(deps, states[0], BillableTimeInSeconds=72 * 3600)  # spent $16.56 of $20
    refused = [deps.store.get_version(v.job, v.number) for v in waiting[1:]]
    assert all(v.status is Status.FAILED and "over budget" in (v.failure_reason or "")
               for v in refused)
    assert deps.store.get_ledger(month_of(T0), ["user:U1"])["user:U1"].used_usd <= 20.0


def test_over_an_approve_budget_a_waiting_version_keeps_waiting_and_says_why() -> None:
    deps = _deps(max_active_per_user=1)
    _budget(deps, 1.0)
    first = _start(deps, max_runtime_s=3600)
    second = _start(deps, max_runtime_s=3 * 3600)  # $0.69: fits the budget when asked
    third = _start(deps, max_runtime_s=3 * 3600)
    _end(deps, first, BillableTimeInSeconds=3600)  # $0.23 spent; the second launches
    held = deps.store.get_version(third.job, third.number)
    assert deps.store.get_version(second.job, second.number).backend_job_name
    assert held.status is Status.QUEUED and not held.backend_job_name
    assert held.queue_reason and held.queue_reason.startswith("over budget")


def test_a_sweep_is_checked_against_the_budget_as_a_whole() -> None:
    from bot.adapters.optuna_tuner import OptunaTuner
    from bot.domain.sweep import SweepStatus
    from bot.services.sweeps import SweepRequest, start_sweep

    deps = _deps()
    deps = Deps(store=deps.store, compute=deps.compute, catalog=deps.catalog,
                clock=deps.clock, policy=deps.policy, chat=deps.chat, tuner=OptunaTuner())
    _budget(deps, 10.0, BudgetPolicy.REFUSE)
    request = SweepRequest(user="U1", algorithm="toy", assignments={"lr": "0.01..1"},
                           trials=8, parallel=2, pool="cpu-small", channel="C1",
                           max_runtime_s=72 * 3600, name="sw")
    with pytest.raises(InvalidInput, match="over budget"):
        start_sweep(deps, request)
    budgets.set_budget(deps, user="UADMIN", scope=BudgetScope.CHANNEL, subject="C1",
                       limit_usd=10.0)  # the same, asking an approver
    sweep = start_sweep(deps, request)
    assert sweep.status is SweepStatus.AWAITING_APPROVAL
    approval = deps.store.get_approval(sweep.approval_id or "")
    assert "over budget" in approval.reason and "for 8 trials" in approval.reason


def test_a_retried_start_is_answered_by_the_first_not_refused_by_its_own_charge() -> None:
    deps = _deps()
    _budget(deps, 20.0, BudgetPolicy.REFUSE)
    first = _start(deps, max_runtime_s=72 * 3600, request_key="T1:trigger")
    again = _start(deps, max_runtime_s=72 * 3600, request_key="T1:trigger")
    assert (again.job, again.number) == (first.job, first.number)


def test_stopping_a_version_a_dispatch_just_launched_stops_the_backend_job() -> None:
    from bot.services import launching

    deps = _deps(max_active_per_user=1)
    first = _start(deps)
    waiting = _start(deps)
    real = deps.store.get_version
    calls = {"n": 0}

    def racing_get(job: str, number: int) -> Any:
        got = real(job, number)
        # The stop read the version queued; a dispatch launches it right after that read.
        if job == waiting.job and calls["n"] == 0:
            calls["n"] += 1
            _end(deps, first)
        return got

    deps.store.get_version = racing_get  # type: ignore[method-assign]
    stopped = launching.stop_version(deps, user="U1", job=waiting.job)
    deps.store.get_version = real  # type: ignore[method-assign]
    assert stopped.backend_job_name and stopped.status is Status.STOPPING
    assert stopped.backend_job_name in deps.compute.stopped  # type: ignore[attr-defined]
