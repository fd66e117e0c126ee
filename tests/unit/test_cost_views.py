"""What spend looks like: the cost report, the budgets, a budget alert, the weekly digest and
the near-ceiling warning — checked by Slack's own rules (the strict local Slack's: Block Kit
models, limits, escaping), with hostile subjects — and the version and approval cards' cost
lines (on demand, spot, ended with a saving, queued with its reason)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain import Approval, JobSpec, JobVersion, Status
from bot.domain.cost import Budget, BudgetPolicy, BudgetScope, CostReport, CostRow, LedgerEntry
from bot.localslack.strict import StrictRules
from bot.ports import Links
from bot.services.budgets import BudgetStanding, OverBudget
from bot.slack.blocks import fallback_text, render_blocks
from bot.views import presenters
from bot.views.costs import alert_text, budgets_doc, cost_doc, digest_doc, near_ceiling_doc
from bot.views.doc import Doc
from bot.views.text import render_text

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> <https://evil.example|x> `tick` &"


def _checked(doc_or_text: Doc | str) -> str:
    """The message as Slack would receive it, refused as Slack would refuse it."""
    if isinstance(doc_or_text, str):
        params: dict[str, Any] = {"text": doc_or_text}
    else:
        params = {"text": fallback_text(doc_or_text), "blocks": render_blocks(doc_or_text)}
    StrictRules().check_message(params)
    assert params["text"].strip()
    return json.dumps(params, ensure_ascii=False)


def _assert_escaped(everything: str) -> None:
    assert "<!channel>" not in everything and "<https://evil" not in everything
    assert "&lt;!channel&gt;" in everything
    assert "`tick`" not in everything  # a value's backticks can't close its code span


def _report(by: str = "pool", rows: list[CostRow] | None = None, **kw: Any) -> CostReport:
    rows = rows if rows is not None else [
        CostRow(subject="gpu-1", spent_usd=120.5, committed_usd=33.79, versions=4,
                spot_saving_usd=9.61),
        CostRow(subject="cpu-small", spent_usd=3.2, versions=7)]
    total = CostRow(subject="total", spent_usd=sum(r.spent_usd for r in rows),
                    committed_usd=sum(r.committed_usd for r in rows),
                    versions=sum(r.versions for r in rows),
                    spot_saving_usd=sum(r.spot_saving_usd for r in rows))
    fields: dict[str, Any] = {"period": "2026-11", "since": T0.replace(day=1, hour=0),
                              "until": T0, "by": by, "total": total, "rows": rows,
                              "top_jobs": [CostRow(subject="exp", spent_usd=100.0, versions=2)]}
    return CostReport(**(fields | kw))


def test_the_cost_report_lists_each_subject_with_its_spend_and_whats_still_running() -> None:
    doc = cost_doc(_report())
    sent = _checked(doc)
    assert doc.title == ":moneybag: Spend — 2026-11"
    assert dict(doc.sections[0].fields) == {
        "Spent": "$123.70", "Running now (ceiling)": "$33.79", "Ended runs": "11",
        "Spot saved": "$9.61"}
    by_pool = doc.sections[1].text or ""
    assert by_pool.startswith("*By pool*\n")
    assert "`gpu-1` *$120.50* + $33.79 running (ceiling) · 4 ended runs · spot saved $9.61" \
        in by_pool
    assert "`cpu-small` *$3.20* · 7 ended runs" in by_pool
    assert "*Top jobs*" in (doc.sections[2].text or "") and "`exp` *$100.00*" in sent
    text = render_text(doc)
    assert "💰 Spend — 2026-11" in text and "gpu-1 $120.50" in text


def test_an_empty_report_says_nothing_was_spent() -> None:
    doc = cost_doc(_report(rows=[], top_jobs=[]))
    _checked(doc)
    assert "Nothing spent in this period." in render_text(doc)
    assert dict(doc.sections[0].fields) == {"Spent": "$0.00", "Ended runs": "0"}


@pytest.mark.parametrize("by", ["user", "channel", "pool", "algorithm"])
def test_hostile_subjects_are_shown_as_text_never_as_markup(by: str) -> None:
    rows = [CostRow(subject=HOSTILE, spent_usd=5.0, versions=1),
            CostRow(subject="U0ALICE" if by == "user" else "C0TEAM", spent_usd=1.0, versions=1)]
    report = _report(by=by, rows=rows, top_jobs=[CostRow(subject=HOSTILE, spent_usd=5.0)])
    everything = _checked(cost_doc(report))
    _assert_escaped(everything)
    assert "`&lt;!channel&gt; &lt;https://evil.example|x&gt; ˋtickˋ &amp;`" in everything
    if by == "user":
        assert "<@U0ALICE>" in everything
    if by == "channel":
        assert "<#C0TEAM>" in everything


def test_a_hostile_period_or_channel_is_text() -> None:
    doc = cost_doc(_report(period=HOSTILE, channel="C<!channel>"))
    everything = _checked(doc)
    assert "<!channel>" not in everything and "<https://evil" not in everything


def test_many_rows_are_cut_with_a_count_and_fit_slack() -> None:
    rows = [CostRow(subject=f"job-{i:03d}-" + "x" * 60, spent_usd=1000.0 - i, versions=i)
            for i in range(200)]
    doc = cost_doc(_report(by="algorithm", rows=rows, top_jobs=rows[:5]))
    _checked(doc)
    assert "… 185 more" in (doc.sections[1].text or "")


def _standing(budget: Budget, spent: float = 0.0, committed: float = 0.0) -> BudgetStanding:
    return BudgetStanding(budget, "2026-11", LedgerEntry(period="2026-11", key=budget.key,
                                                         spent_usd=spent,
                                                         committed_usd=committed))


CHANNEL_BUDGET = Budget(scope=BudgetScope.CHANNEL, subject="C0TEAM", limit_usd=500,
                        set_by="U0ADMIN", set_at=T0)
USER_BUDGET = Budget(scope=BudgetScope.USER, subject="U0ALICE", limit_usd=100,
                     policy=BudgetPolicy.REFUSE, source="config")


def test_budgets_list_each_with_its_month_so_far() -> None:
    doc = budgets_doc([_standing(CHANNEL_BUDGET, spent=380, committed=33.79),
                       _standing(USER_BUDGET, spent=120)])
    everything = _checked(doc)
    first, second = (s.text or "" for s in doc.sections)
    assert first.startswith(":warning: <#C0TEAM> *$413.79* of $500.00 used in 2026-11 (83 %)")
    assert "an approver's OK" in first and "set by <@U0ADMIN>" in first
    assert second.startswith(":rotating_light: <@U0ALICE> *$120.00* of $100.00 used in "
                             "2026-11 (120 %)")
    assert "are refused" in second and "from the config file" in second
    assert "<!" not in everything
    empty = budgets_doc([])
    _checked(empty)
    assert "No budgets" in render_text(empty)


def test_budget_alerts_name_the_channel_or_speak_to_the_user() -> None:
    channel = alert_text(CHANNEL_BUDGET, "2026-11", 412.0, 80)
    user = alert_text(USER_BUDGET, "2026-11", 100.5, 100)
    for text in (channel, user):
        _checked(text)
    assert channel.startswith(":warning: Budget alert — 80 % reached: <#C0TEAM> has used "
                              "*$412.00* of its $500.00 monthly budget for 2026-11 (82 %).")
    assert "need an approver's OK" in channel
    assert user.startswith(":rotating_light: Budget alert — its limit reached: You have used "
                           "*$100.50* of your $100.00 monthly budget")
    assert "are refused" in user and "/train cost --month 2026-11" in user
    hostile = alert_text(CHANNEL_BUDGET, HOSTILE, 1.0, 80)
    assert "<!channel>" not in hostile and "&lt;!channel&gt;" in hostile


def test_the_weekly_digest_is_the_channels_report_by_user() -> None:
    report = _report(by="user", period="2026-W45", channel="C0TEAM", rows=[
        CostRow(subject="U0ALICE", spent_usd=12.0, versions=3, spot_saving_usd=2.0),
        CostRow(subject=HOSTILE, spent_usd=1.0, versions=1)],
        top_jobs=[CostRow(subject=HOSTILE, spent_usd=1.0, versions=1)])
    doc = digest_doc(report)
    everything = _checked(doc)
    assert doc.title == ":bar_chart: Weekly spend — 2026-W45 in <#C0TEAM>"
    assert "<@U0ALICE> *$12.00* · 3 ended runs · spot saved $2.00" in everything
    _assert_escaped(everything)


def _version(**kw: Any) -> JobVersion:
    spec = JobSpec(algorithm="toy", algorithm_version="1.0.0", pool="gpu-1",
                   max_runtime_s=7200, spot=kw.pop("spot", False))
    fields: dict[str, Any] = {
        "job": "exp", "number": 2, "spec": spec, "requested_by": "U0ALICE",
        "status": Status.TRAINING, "created_at": T0, "updated_at": T0, "channel": "C0TEAM",
        "message_ts": "1.000", "backend_job_name": "tb-exp-v2", "started_at": T0,
        "estimated_cost_usd": 33.79}
    return JobVersion(**(fields | kw))


def test_the_near_ceiling_warning_offers_stop() -> None:
    v = _version(spot=True, estimated_spot_cost_usd=10.14)
    doc = near_ceiling_doc(v)
    everything = _checked(doc)
    assert doc.title == ":hourglass: *exp v2* has used 80 % of its 2h 00m max runtime"
    assert dict(doc.sections[0].fields) == {"Ceiling": "≤ $33.79 · spot ≈ $10.14"}
    on_demand = near_ceiling_doc(_version())
    _checked(on_demand)
    assert dict(on_demand.sections[0].fields) == {
        "Stopped at": "2026-11-02 14:00 UTC at the latest", "Ceiling": "≤ $33.79"}
    (stop,) = doc.buttons
    assert (stop.label, stop.action_id, stop.value, stop.style) == (
        "Stop", "stop_version", "exp:2", "danger")
    assert "can't be resumed" in (stop.confirm or "") and '"confirm"' in everything


def _cost_field(v: JobVersion) -> str:
    doc = presenters.version_card(v, Links())
    _checked(doc)
    return dict(doc.sections[0].fields)["Cost"]


def test_the_card_shows_the_ceiling_and_the_spot_figure_before_the_end() -> None:
    assert _cost_field(_version()) == "≤ $33.79 ceiling"
    assert _cost_field(_version(spot=True, estimated_spot_cost_usd=10.14)) == \
        "≤ $33.79 ceiling · spot ≈ $10.14"
    assert _cost_field(_version(estimated_cost_usd=None)) == "—"


def test_after_the_end_the_card_shows_the_actual_cost_and_what_spot_saved() -> None:
    ended = _version(spot=True, estimated_spot_cost_usd=10.14).transition(
        Status.COMPLETED, at=T0 + timedelta(hours=1))
    assert _cost_field(ended.model_copy(update={"actual_cost_usd": 4.12,
                                                "spot_saving_usd": 9.61})) == \
        "$4.12 actual · spot saved $9.61"
    assert _cost_field(ended.model_copy(update={"actual_cost_usd": 4.12})) == "$4.12 actual"


def test_a_queued_card_says_why_it_waits() -> None:
    reason = ("its requester already has 1 version active, the most per user; "
              "place 2 in line")
    queued = _version(status=Status.QUEUED, backend_job_name=None, started_at=None,
                      message_ts="1.000", queue_reason=reason)
    doc = presenters.version_card(queued, Links())
    everything = _checked(doc)
    assert f"Waiting: {reason}" in everything
    assert "Waiting: pool `gpu-1` runs" in _checked(presenters.version_card(
        queued.model_copy(update={"queue_reason": "pool `gpu-1` runs at most 2 at once; "
                                                  "place 1 in line"}), Links()))
    # Once launched (or with a hostile reason) nothing waits, or it is only text.
    launched = queued.model_copy(update={"backend_job_name": "tb-exp-v2"})
    assert "Waiting" not in _checked(presenters.version_card(launched, Links()))
    hostile = queued.model_copy(update={"queue_reason": HOSTILE})
    assert "&lt;!channel&gt;" in _checked(presenters.version_card(hostile, Links()))


def _approval(reason: str) -> Approval:
    return Approval(id="req-1", job="exp", version=2, requested_by="U0ALICE", pool="gpu-1",
                    reason=reason, requested_at=T0, expires_at=T0 + timedelta(days=1),
                    channel="C0TEAM")


def test_the_approval_card_puts_the_budget_and_the_spot_figure_up_front() -> None:
    standing = _standing(CHANNEL_BUDGET, spent=480)
    over = OverBudget(standing, 33.79).reason
    v = _version(status=Status.AWAITING_APPROVAL, spot=True, estimated_spot_cost_usd=10.14,
                 backend_job_name=None, started_at=None, approval_id="req-1")
    doc = presenters.approval_doc(_approval(f"pool `gpu-1` requires approval; {over}"), v)
    _checked(doc)
    text = doc.sections[0].text or ""
    assert text.splitlines() == [
        ":money_with_wings: *Over budget:* $480.00 of $500.00 used by this channel in "
        "2026-11; this launch ≤ $33.79",
        "Why approval: pool `gpu-1` requires approval"]
    assert dict(doc.sections[0].fields)["Estimated cost"] == "≤ $33.79 · spot ≈ $10.14"
    only_budget = presenters.approval_doc(_approval(over), v)
    assert (only_budget.sections[0].text or "").splitlines() == [
        ":money_with_wings: *Over budget:* $480.00 of $500.00 used by this channel in "
        "2026-11; this launch ≤ $33.79"]
    plain = presenters.approval_doc(_approval("launch needs approval"), v)
    assert plain.sections[0].text == "Why approval: launch needs approval"
