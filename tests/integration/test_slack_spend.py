"""Spend through Slack: `/train cost` and `/train budget` through the real Bolt app against the
strict local Slack, with real runs of the sleeper fixture by the local compute (the cost
report and its chart, budgets for admins only, an over-budget approval and the alerts it
brings, the near-ceiling warning and its Stop button) — and the SlackChat's spend methods
alone (where each goes, what is best effort, what raises)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.domain import ChatUndelivered, JobSpec, JobVersion, NotFound, Status
from bot.domain.cost import Budget, BudgetScope, CostReport, CostRow
from bot.localslack import LocalSlack
from bot.services.costs import warn_near_ceiling
from bot.slack.charts import cost_chart_for
from bot.slack.notifier import SlackChat
from tests.fakes import FakeClock
from tests.integration.slack_harness import CHANNEL, Harness

REQUESTER, APPROVER, ADMIN = "U0LOCAL1", "U0LOCAL2", "U0ADMIN"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, algorithms=["sleeper"], approvers=[APPROVER], admins=[ADMIN],
                      tensorboard=False)
    yield harness
    harness.close()


def _blocks(message: dict) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


def _answer(h: Harness, needle: str, *, user: str) -> str:
    """The first answer ``user`` got that says ``needle``: its text and blocks as JSON."""
    def found() -> str | None:
        for e in h.slack.ephemerals(user):
            shown = json.dumps([e.get("text"), e.get("blocks")], ensure_ascii=False)
            if needle in shown:
                return shown
        return None

    return h.wait(found)


def _maybe(h: Harness, name: str) -> JobVersion | None:
    try:
        return h.version(name)
    except NotFound:
        return None


def _running(h: Harness, name: str, *extra: str, user: str = REQUESTER) -> JobVersion:
    """A sleeper started from Slack, once it runs and has its card."""
    h.command(f"start sleeper run_s=120 --name {name} " + " ".join(extra), user=user)
    h.wait_status(name, "TRAINING")
    return h.wait(lambda: (v := h.version(name)).message_ts and v)


def _stop(h: Harness, name: str) -> None:
    h.command(f"stop {name}", user=REQUESTER)
    h.wait(lambda: h.version(name).status.terminal)


def test_cost_by_pool_answers_with_the_report_and_posts_its_chart(h: Harness) -> None:
    v = _running(h, "spendy", "--pool cpu-small")
    assert v.charged_usd and v.estimated_cost_usd == pytest.approx(0.92)
    h.command("cost --by pool", user=REQUESTER)
    answer = _answer(h, ":moneybag: Spend — ", user=REQUESTER)
    assert "*By pool*" in answer and "`cpu-small` *$0.00* + $0.92 running (ceiling)" in answer
    # The chart, in the channel the report was asked in (the answer itself is ephemeral).
    chart = h.wait(lambda: next((m for m in h.cards() if m.get("files")), None))
    (shown,) = chart["files"]
    assert shown["name"].startswith("cost-") and shown["name"].endswith("-by-pool.png")
    (png,) = [f["content"] for f in h.slack.files() if f["name"] == shown["name"]]
    assert png.startswith(b"\x89PNG")
    _stop(h, "spendy")
    assert h.slack.refusals() == []


def test_budgets_are_set_by_admins_and_listed_for_everyone(h: Harness) -> None:
    h.command(f"budget set <#{CHANNEL}|general> 500", user=REQUESTER)
    refused = _answer(h, "Only admins may set budgets", user=REQUESTER)
    assert f"<@{ADMIN}>" in refused
    assert h.bot.deps.store.list_budgets() == []

    h.command(f"budget set <#{CHANNEL}|general> 500", user=ADMIN)
    set_to = _answer(h, "Monthly budgets", user=ADMIN)
    assert f"<#{CHANNEL}> *$0.00* of $500.00 used" in set_to
    h.command(f"budget set <@{REQUESTER}|ana> 25 --policy refuse", user=ADMIN)
    _answer(h, "$25.00", user=ADMIN)

    h.command("budget", user=REQUESTER)
    listed = _answer(h, "Monthly budgets", user=REQUESTER)
    assert f"<#{CHANNEL}> *$0.00* of $500.00" in listed and "an approver's OK" in listed
    assert f"<@{REQUESTER}> *$0.00* of $25.00" in listed and "are refused" in listed
    assert f"set by <@{ADMIN}>" in listed
    assert h.slack.refusals() == []


def test_over_budget_asks_an_approver_then_the_alerts_reach_the_user(h: Harness) -> None:
    h.command(f"budget set <@{REQUESTER}|ana> 0.5", user=ADMIN)
    _answer(h, "$0.50", user=ADMIN)
    h.command("start sleeper run_s=120 --pool cpu-small --name pricey", user=REQUESTER)
    h.wait_status("pricey", "AWAITING_APPROVAL")
    card = h.wait(lambda: next((m for m in h.cards() if '"approve_request"' in _blocks(m)),
                               None))
    blocks = _blocks(card)
    assert ":money_with_wings: *Over budget:* $0.00 of $0.50 used by the requester" in blocks
    assert "this launch ≤ $0.92" in blocks and "*Estimated cost*\\n≤ $0.92" in blocks

    approval_id = h.version("pricey").approval_id
    assert approval_id is not None
    h.press("approve_request", approval_id, user=APPROVER, message_ts=card["ts"])
    h.wait_status("pricey", "TRAINING")
    # The launch's ceiling took the month past 80 % and 100 %: each told once, directly.
    alerts = h.wait(lambda: len(m := h.slack.messages(REQUESTER)) >= 2 and m)
    texts = sorted(m["text"] for m in alerts)
    assert len(texts) == 2 and all("of your $0.50 monthly budget" in t for t in texts)
    assert texts[0].startswith(":rotating_light: Budget alert — its limit reached")
    assert texts[1].startswith(":warning: Budget alert — 80 % reached")
    _stop(h, "pricey")
    assert h.slack.refusals() == []


def test_near_its_max_runtime_the_thread_offers_stop_and_stop_stops(h: Harness) -> None:
    v = _running(h, "nearly", "--max-runtime 1h")
    assert v.started_at is not None
    later = replace(h.bot.deps, clock=FakeClock(v.started_at + timedelta(minutes=50)),
                    given_algorithms=h.bot.deps.algorithms)
    assert not warn_near_ceiling(h.bot.deps, v).ceiling_warned  # a moment in: nothing
    assert warn_near_ceiling(later, v).ceiling_warned
    warn_near_ceiling(later, h.version("nearly"))  # once

    def warnings() -> list[dict]:
        card = next(m for m in h.cards() if m["ts"] == v.message_ts)
        return [r for r in card.get("replies", []) if "has used 80 %" in r["text"]]

    (warning,) = h.wait(warnings)
    assert warning["text"].startswith(":hourglass: nearly v1 has used 80 % of its 1h 00m")
    assert '"stop_version"' in _blocks(warning) and '"nearly:1"' in _blocks(warning)
    h.press("stop_version", "nearly:1", user=REQUESTER, message_ts=warning["ts"])
    h.wait(lambda: h.version("nearly").status is Status.STOPPED, timeout=60)
    assert len(warnings()) == 1
    assert h.slack.refusals() == []


def test_a_version_over_the_per_user_cap_waits_and_its_card_says_why(tmp_path: Path) -> None:
    h = Harness(tmp_path, algorithms=["sleeper"], tensorboard=False, max_active_per_user=1)
    try:
        _running(h, "first")
        h.command("start sleeper run_s=120 --name second", user=REQUESTER)
        ts = h.wait(lambda: (v := _maybe(h, "second")) and v.message_ts)
        card = h.wait(lambda: next((m for m in h.cards() if m["ts"] == ts), None))
        assert ("Waiting: its requester already has 1 version active, the most per user; "
                "place 1 in line") in _blocks(card)
        assert h.version("second").status is Status.QUEUED
        _stop(h, "first")  # its place is free: the second goes, and its card stops waiting
        h.wait_status("second", "TRAINING")
        h.wait(lambda: next((m for m in h.cards() if m["ts"] == ts
                             and "Waiting" not in _blocks(m)), None))
        _stop(h, "second")
        assert h.slack.refusals() == []
    finally:
        h.close()


# -- the SlackChat's spend methods alone -------------------------------------------------


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack() as server:
        yield server


def _chat(slack: LocalSlack, **kw: Any) -> SlackChat:
    return SlackChat(WebClient(token="xoxb-local", base_url=slack.api_url), **kw)


def _report(**kw: Any) -> CostReport:
    rows = [CostRow(subject=REQUESTER, spent_usd=12.5, committed_usd=4.0, versions=3),
            CostRow(subject="U0LOCAL2", spent_usd=2.0, versions=1)]
    fields: dict[str, Any] = {
        "period": "2026-W44", "since": T0 - timedelta(days=7), "until": T0, "by": "user",
        "total": CostRow(subject="total", spent_usd=14.5, committed_usd=4.0, versions=4),
        "rows": rows, "channel": CHANNEL}
    return CostReport(**(fields | kw))


def test_alerts_go_to_the_channel_or_to_the_user_and_a_refusal_raises(slack: LocalSlack) -> None:
    chat = _chat(slack)
    chat.budget_alert(Budget(scope=BudgetScope.CHANNEL, subject=CHANNEL, limit_usd=100),
                      "2026-11", 81.0, 80)
    chat.budget_alert(Budget(scope=BudgetScope.USER, subject=REQUESTER, limit_usd=10),
                      "2026-11", 10.0, 100)
    (in_channel,) = slack.messages(CHANNEL)
    (direct,) = slack.messages(REQUESTER)
    assert in_channel["text"].startswith(f":warning: Budget alert — 80 % reached: <#{CHANNEL}>")
    assert direct["text"].startswith(":rotating_light: Budget alert — its limit reached: You")
    slack.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(ChatUndelivered) as refused:
        chat.budget_alert(Budget(scope=BudgetScope.CHANNEL, subject="C0GONE", limit_usd=1),
                          "2026-11", 1.0, 100)
    assert refused.value.code == "channel_not_found"


def test_the_digest_is_a_message_with_its_chart_in_the_thread(slack: LocalSlack) -> None:
    chat = _chat(slack, spend_chart=cost_chart_for)
    chat.cost_digest(CHANNEL, _report())
    (digest,) = slack.messages(CHANNEL)
    assert digest["text"] == ":bar_chart: Weekly spend — 2026-W44 in <#C0LOCAL>"
    assert f"<@{REQUESTER}> *$12.50* + $4.00 running (ceiling)" in _blocks(digest)
    (chart,) = digest["replies"]
    assert [f["name"] for f in chart["files"]] == ["cost-2026-W44-by-user.png"]

    # Refused: raises (the service retries); the chart failing or refused: told anyway.
    slack.fail_next("chat.postMessage", error="is_archived")
    with pytest.raises(ChatUndelivered):
        chat.cost_digest(CHANNEL, _report())

    def broken(report: CostReport) -> bytes:
        raise RuntimeError("no fonts")

    chat.spend_chart = broken
    chat.cost_digest(CHANNEL, _report())
    chat.spend_chart = cost_chart_for
    slack.fail_next("files.getUploadURLExternal", error="missing_scope")
    chat.cost_digest(CHANNEL, _report())
    assert len(slack.messages(CHANNEL)) == 3


def test_the_cost_chart_is_best_effort_and_absent_when_there_is_nothing_to_draw(
        slack: LocalSlack) -> None:
    chat = _chat(slack, spend_chart=cost_chart_for)
    chat.cost_chart(CHANNEL, _report(rows=[], channel=None))
    assert slack.requests_for("files.getUploadURLExternal") == []
    many = [CostRow(subject=f"job-{i}", spent_usd=float(i)) for i in range(40)]
    png = cost_chart_for(_report(rows=many, by="job", period="last 7 days"))
    assert png is not None and png.startswith(b"\x89PNG")
    chat.cost_chart(CHANNEL, _report(rows=many, by="job", period="last 7 days"))
    (posted,) = slack.messages(CHANNEL)
    assert [f["name"] for f in posted["files"]] == ["cost-last-7-days-by-job.png"]
    slack.fail_next("files.getUploadURLExternal", error="missing_scope")
    chat.cost_chart(CHANNEL, _report())  # refused: nothing raised
    _chat(slack).cost_chart(CHANNEL, _report())  # no charts here: nothing at all


def _version(**kw: Any) -> JobVersion:
    spec = JobSpec(algorithm="sleeper", algorithm_version="1.0.0", pool="local-cpu",
                   max_runtime_s=3600)
    fields: dict[str, Any] = {
        "job": "exp", "number": 1, "spec": spec, "requested_by": REQUESTER,
        "status": Status.TRAINING, "created_at": T0, "updated_at": T0, "channel": CHANNEL,
        "started_at": T0, "backend_job_name": "tb-exp-v1", "estimated_cost_usd": 0.0}
    return JobVersion(**(fields | kw))


def test_near_ceiling_goes_to_the_cards_thread_only_and_says_when_slack_refused(
        slack: LocalSlack) -> None:
    chat = _chat(slack)
    chat.near_ceiling(_version())  # no card: nowhere
    assert slack.requests_for("chat.postMessage") == []
    ref = chat.version_created(_version())
    assert ref is not None
    carded = _version(message_ts=ref[1])
    chat.near_ceiling(carded)
    (card,) = slack.messages(CHANNEL)
    (warning,) = card["replies"]
    assert '"stop_version"' in _blocks(warning) and warning.get("subtype") is None
    slack.fail_next("chat.postMessage", error="is_archived")
    with pytest.raises(ChatUndelivered):  # the service gives the notice back for the next pass
        chat.near_ceiling(carded)


def test_a_sweeps_trial_never_gets_a_card_or_an_announcement(slack: LocalSlack) -> None:
    chat = _chat(slack)
    trial = _version(trial=0)
    assert chat.version_created(trial) is None
    chat.announce(trial.transition(Status.COMPLETED, at=T0 + timedelta(minutes=5)))
    assert slack.requests_for("chat.postMessage") == []


def test_a_waiting_cards_place_in_line_is_never_coalesced_away(slack: LocalSlack) -> None:
    chat = _chat(slack, progress_interval_s=30)
    queued = _version(status=Status.QUEUED, backend_job_name=None, started_at=None,
                      queue_reason="pool `gpu-4` runs at most 2 at once; place 2 in line")
    ref = chat.version_created(queued)
    assert ref is not None
    queued = queued.model_copy(update={"message_ts": ref[1]})
    chat.progress(queued)
    chat.progress(queued.model_copy(update={
        "queue_reason": "pool `gpu-4` runs at most 2 at once; place 1 in line"}))
    assert len(slack.requests_for("chat.update")) == 2
    assert "place 1 in line" in _blocks(slack.messages(CHANNEL)[0])
