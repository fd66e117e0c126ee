"""`trainbot --json cost …` and `trainbot --json budget …`: the objects scripts read (a
contract: fields are added, never renamed), through the one command path."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.cli import _reply_json, _usage
from bot.commands import parse
from bot.dispatch import Actor, execute
from bot.domain import JobVersion
from bot.domain.cost import CostReport, CostRow
from bot.services.context import Deps
from bot.services.requests import LaunchRequest, start_job
from bot.services.state_changes import record_state_change
from bot.views import data
from tests.fakes import event

REPORT_FIELDS = {"period", "since", "until", "by", "total", "rows", "top_jobs", "channel"}
TOTAL_FIELDS = {"spent_usd", "committed_usd", "versions", "spot_saving_usd"}
ROW_FIELDS = TOTAL_FIELDS | {"subject"}
BUDGET_FIELDS = {"scope", "subject", "limit_usd", "policy", "month", "used_usd", "percent",
                 "source"}


def _run(deps: Deps, text: str, user: str = "U0ALICE", channel: str | None = "C0TEAM") -> object:
    cmd = parse(text)
    out = _reply_json(deps, cmd, execute(deps, cmd, Actor(user=user, channel=channel)))
    json.dumps(out)  # plain JSON all the way down
    return out


def _launched(deps: Deps, name: str, *, spot: bool = False) -> JobVersion:
    v, _ = start_job(deps, LaunchRequest(user="U0ALICE", algorithm="toy", pool="gpu-1",
                                         channel="C0TEAM", job_name=name, spot=spot))
    assert v.backend_job_name
    return v


def test_cost_json_has_the_totals_the_rows_and_the_top_jobs(deps: Deps) -> None:
    spot = _launched(deps, "spotty", spot=True)
    ended = _launched(deps, "done")
    record_state_change(deps, event(ended.backend_job_name or "", "Completed", "Completed",
                                    BillableTimeInSeconds=3600, TrainingTimeInSeconds=3600))

    out = _run(deps, "cost --by pool")
    assert isinstance(out, dict) and set(out) == REPORT_FIELDS
    assert out["by"] == "pool" and out["channel"] is None
    assert out["period"] == deps.clock.now().strftime("%Y-%m")
    datetime.fromisoformat(out["since"])
    assert datetime.fromisoformat(out["until"]).tzinfo == UTC
    assert set(out["total"]) == TOTAL_FIELDS
    assert out["total"]["spent_usd"] == pytest.approx(1.408)
    assert out["total"]["committed_usd"] == pytest.approx(spot.charged_usd or 0)
    assert out["total"]["versions"] == 1
    (row,) = out["rows"]
    assert set(row) == ROW_FIELDS and row["subject"] == "gpu-1"
    assert out["top_jobs"][0]["subject"] == "done"
    assert all(set(j) == ROW_FIELDS for j in out["top_jobs"])
    # Asked in a channel, the chart goes there too.
    assert ("cost chart", ("C0TEAM", out["period"])) in deps.chat.calls  # type: ignore[attr-defined]

    by_user = _run(deps, "cost --since 7d --by user", channel=None)
    assert isinstance(by_user, dict) and by_user["period"] == "last 7 days"
    assert [(r["subject"], r["versions"]) for r in by_user["rows"]] == [("U0ALICE", 1)]


def test_budget_json_lists_each_budget_with_its_month(deps: Deps) -> None:
    _launched(deps, "exp")
    out = _run(deps, "budget set <#C0TEAM|team> 500", user="UADMIN")
    assert isinstance(out, list)
    (channel,) = out
    assert set(channel) >= BUDGET_FIELDS
    assert {k: channel[k] for k in BUDGET_FIELDS} == {
        "scope": "channel", "subject": "C0TEAM", "limit_usd": 500.0, "policy": "approve",
        "month": deps.clock.now().strftime("%Y-%m"), "used_usd": pytest.approx(5.632),
        "percent": pytest.approx(1.13, abs=0.01), "source": "command"}
    _run(deps, "budget set <@U0ALICE> 20 --policy refuse", user="UADMIN")
    listed = _run(deps, "budget")
    assert isinstance(listed, list)
    assert [(b["scope"], b["subject"], b["policy"]) for b in listed] == [
        ("channel", "C0TEAM", "approve"), ("user", "U0ALICE", "refuse")]
    assert _run(deps, "budget remove <@U0ALICE>", user="UADMIN") == {
        "removed": True, "scope": "user", "subject": "U0ALICE"}
    assert [b["subject"] for b in _run(deps, "budget")] == ["C0TEAM"]  # type: ignore[attr-defined]


def test_version_rows_say_spot_saving_and_why_they_wait(deps: Deps) -> None:
    v = _launched(deps, "spotty", spot=True)
    row = data.version_row(v, deps.algorithms.find)
    assert {"estimated_spot_cost_usd", "spot_saving_usd", "queue_reason"} <= set(row)
    assert row["estimated_spot_cost_usd"] == pytest.approx(v.estimated_spot_cost_usd)
    waiting = data.version_row(v.model_copy(update={"queue_reason": "place 2 in line"}),
                               deps.algorithms.find)
    assert waiting["queue_reason"] == "place 2 in line"


def test_a_digest_report_names_its_channel() -> None:
    report = CostReport(period="2026-W44", since=datetime(2026, 10, 26, tzinfo=UTC),
                        until=datetime(2026, 11, 2, tzinfo=UTC), by="user",
                        total=CostRow(subject="total", spent_usd=1.5, versions=2),
                        rows=[CostRow(subject="U0ALICE", spent_usd=1.5, versions=2)],
                        channel="C0TEAM")
    out = data.cost_report_data(report)
    assert out["channel"] == "C0TEAM" and out["total"] == {
        "spent_usd": 1.5, "committed_usd": 0.0, "versions": 2, "spot_saving_usd": 0.0}
    assert out["since"] == "2026-10-26T00:00:00+00:00"


def test_cli_help_knows_the_new_commands() -> None:
    assert "trainbot cost [--month" in _usage("cost")
    assert "set and remove are for admins" in _usage("budget")
    assert "trainbot budget set (here | #CHANNEL | @USER | me) USD" in _usage(None)
