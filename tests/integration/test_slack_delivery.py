"""What reaches people when Slack refuses, rate-limits or loses things — against the strict
local Slack, with faults injected the way Slack fails."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Catalog, load_pools
from bot.config import RerunApproval
from bot.domain import Status
from bot.localslack.modal_values import build_view_values
from bot.localslack.server import LocalSlack
from bot.localslack.workspace import DEFAULT_CHANNEL
from bot.services.authz import Policy
from bot.services.context import Deps
from bot.services.reconcile import reconcile
from bot.services.requests import LaunchRequest, start_job
from bot.services.state_changes import record_state_change
from bot.slack.deadline import set_deadline
from bot.slack.notifier import SlackChat
from bot.slack.wiring import web_client
from tests.fakes import FakeClock, FakeCompute, MemoryStore, event
from tests.integration.slack_harness import Harness
from tests.unit.conftest import ALGO

TOKEN = "xoxb-delivery-test"
REQUESTER, APPROVER = "U0LOCAL1", "U0LOCAL2"


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack(bot_token=TOKEN) as stand_in:
        yield stand_in


def _deps(slack: LocalSlack) -> Deps:
    chat = SlackChat(web_client(TOKEN, slack.api_url))
    return Deps(store=MemoryStore(), compute=FakeCompute(),
                catalog=Catalog(algorithms={"toy": ALGO}, pools=load_pools()),
                clock=FakeClock(), policy=Policy(rerun_approval=RerunApproval.ALWAYS),
                chat=chat)


def _refusal(request: Any) -> bool:
    return bool(getattr(request, "error", None))


def _announcements(slack: LocalSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages(DEFAULT_CHANNEL)
            if m.get("subtype") == "thread_broadcast" or "completed." in m.get("text", "")]


def test_a_failing_thread_reply_does_not_cost_the_announcement(slack: LocalSlack) -> None:
    deps = _deps(slack)
    v, _ = start_job(deps, LaunchRequest(user=REQUESTER, algorithm="toy", pool="local-cpu",
                                         channel=DEFAULT_CHANNEL, job_name="exp"))
    assert v.message_ts
    # The thread reply gets 429 four times (the client's first try and its 3 retries).
    slack.fail_next("chat.postMessage", status=429, retry_after=0, times=4)
    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    assert done is not None and done.status is Status.COMPLETED and done.outbox == []
    [announcement] = _announcements(slack)
    assert f"<@{REQUESTER}>" in announcement["text"]
    # Redelivered events and later reconciles say nothing more.
    record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    reconcile(deps)
    assert len(_announcements(slack)) == 1


def test_an_announcement_slack_refused_is_delivered_by_the_next_reconcile(
    slack: LocalSlack,
) -> None:
    deps = _deps(slack)
    v, _ = start_job(deps, LaunchRequest(user=REQUESTER, algorithm="toy", pool="local-cpu",
                                         channel=DEFAULT_CHANNEL, job_name="exp"))
    slack.fail_next("chat.postMessage", status=429, retry_after=0, times=8)
    done = record_state_change(deps, event(v.backend_job_name or "", "Failed", "Failed",
                                           FailureReason="in <module>: boom & co"))
    assert done is not None and done.outbox == ["announce"]
    assert _announcements(slack) == []

    summary = reconcile(deps)

    assert summary.delivered == ["exp v1"]
    [announcement] = [m for m in slack.messages(DEFAULT_CHANNEL)
                      if m.get("subtype") == "thread_broadcast"]
    assert "in &lt;module&gt;: boom &amp; co" in announcement["text"]


def test_slack_retries_stop_before_the_invocation_would(slack: LocalSlack) -> None:
    client = web_client(TOKEN, slack.api_url)
    slack.fail_next("chat.postMessage", status=429, retry_after=10, times=3)
    set_deadline(8.0)  # a Lambda invocation with 8 s left can't wait 10 s
    try:
        began = time.monotonic()
        with pytest.raises(Exception, match="ratelimited"):
            client.chat_postMessage(channel=DEFAULT_CHANNEL, text="hello")
        assert time.monotonic() - began < 5
    finally:
        set_deadline(None)
    assert len(slack.requests_for("chat.postMessage")) == 1


def test_a_card_slack_refused_gets_the_hint_for_that_refusal(slack: LocalSlack) -> None:
    deps = _deps(slack)
    slack.fail_next("chat.postMessage", error="is_archived")
    v, _ = start_job(deps, LaunchRequest(user=REQUESTER, algorithm="toy", pool="local-cpu",
                                         channel=DEFAULT_CHANNEL, job_name="exp"))
    assert v.backend_job_name and v.card_error == "is_archived"
    from bot.slack.interactions import launched_text

    text = launched_text(v, None)
    assert "archived" in text and "/invite" not in text


# -- through the Bolt app (what `trainbot serve` runs) ----------------------------------------


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, algorithms=["quick-metrics"], approvers=[APPROVER])
    yield harness
    _settle(harness)  # no thread of this test may still talk to Slack after it
    harness.close()


def _settle(h: Harness) -> None:
    """Wait until the bot has said all it had to say (the chart upload comes last)."""
    seen = -1
    while len(h.slack.requests) != seen:
        seen = len(h.slack.requests)
        time.sleep(0.5)


def _open_start_form(h: Harness) -> dict[str, Any]:
    h.command("start")
    choose = h.wait(lambda: next((v for v in h.slack.views()
                                  if v["callback_id"] == "start_choose"), None))
    status, resp = h.submit(choose, build_view_values(choose, {
        "source": "algo:quick-metrics", "name": "formjob"}))
    assert status == 200 and resp["response_action"] == "update"
    return dict(resp["view"], id=choose["id"])


def test_a_form_submitter_hears_by_dm_when_the_ephemeral_is_refused(h: Harness) -> None:
    form = _open_start_form(h)
    h.slack.fail_next("chat.postEphemeral", error="not_in_channel")
    h.submit(form, build_view_values(form, {"hp:epochs": "2"}))
    dm = h.wait(lambda: next((m for m in h.slack.messages(REQUESTER)
                              if "formjob v1" in m.get("text", "")), None))
    assert "launching" in dm["text"]
    assert len(h.bot.deps.store.list_versions("formjob")) == 1


def test_an_expired_trigger_is_explained(h: Harness) -> None:
    h.slack.fail_next("views.open", error="expired_trigger_id")
    h.command("start")
    text = h.wait_ephemeral("expired_trigger_id")
    assert "again" in text and "went wrong" not in text


def test_an_approval_request_names_its_id_and_reaches_approvers_without_a_card(
    h: Harness,
) -> None:
    h.command("start quick-metrics epochs=2 --name exp")
    h.wait_status("exp", "COMPLETED")
    _settle(h)
    h.slack.fail_next("chat.postMessage", error="not_in_channel")
    h.command("rerun exp v1 epochs=3")
    v2 = h.wait_status("exp", "AWAITING_APPROVAL", number=2)
    text = h.wait_ephemeral(f"request `{v2.approval_id}`")
    assert "/invite @trainbot" in text and "approvers were sent it" in text
    dm = h.wait(lambda: next((m for m in h.slack.messages(APPROVER)
                              if v2.approval_id in m.get("text", "")), None))
    assert f"/train approve {v2.approval_id}" in dm["text"]


def test_a_posted_approval_card_gets_no_invite_hint(h: Harness) -> None:
    h.command("start quick-metrics epochs=2 --name exp")
    h.wait_status("exp", "COMPLETED")
    h.command("rerun exp v1 epochs=3")
    v2 = h.wait_status("exp", "AWAITING_APPROVAL", number=2)
    text = h.wait_ephemeral(f"request `{v2.approval_id}`")
    assert "invite" not in text


def test_buttons_and_forms_are_held_to_the_channel_allow_list(tmp_path: Path) -> None:
    h = Harness(tmp_path, algorithms=["quick-metrics"], approvers=[APPROVER],
                channels=["C0ELSEWHERE"])
    try:
        h.press("stop_version", "exp:1")
        h.wait_ephemeral("doesn't take requests from here")
        h.press("start_preset:nightly", "nightly")
        h.wait(lambda: len([e for e in h.ephemeral_texts()
                            if "doesn't take requests" in e]) == 2)
        # A form whose channel is missing is not "allowed".
        view = {"id": "V0FAKE", "type": "modal", "callback_id": "save_preset",
                "private_metadata": json.dumps(
            {"job": "exp", "version": 1}), "blocks": [], "state": {"values": {}}}
        h.submit(view, {"name": {"value": {"type": "plain_text_input", "value": "p1"}}})
        h.wait(lambda: next((m for m in h.slack.messages(REQUESTER)
                             if "doesn't take requests" in m.get("text", "")), None))
        assert h.bot.deps.store.list_presets(h.bot.deps.scope) == []
    finally:
        h.close()


def test_hostile_text_never_reaches_the_channel_live(h: Harness) -> None:
    """Parameter values and preset descriptions with Slack control sequences, through the
    whole app: the strict local Slack refuses any unescaped `<!channel>` or foreign link, so
    this flow passing means every message and view was valid and escaped."""
    # Typed as is; the stand-in escapes &, < and > in command text as Slack does.
    hostile = "<!channel> <https://evil.example|x> `tick` &"
    h.command(f'start quick-metrics epochs=2 note="{hostile}" --name exp')
    v1 = h.wait_status("exp", "COMPLETED")
    assert v1.spec.hyperparameters["note"] == "<!channel> <https://evil.example|x> `tick` &"
    for i in range(3):
        h.command(f'preset save p{i} --from exp v1 --description "{hostile} {i}"')
    h.wait(lambda: len(h.bot.deps.store.list_presets(h.bot.deps.scope)) == 3)
    for text in ("preset list", "preset show p0", "show exp", "versions exp", "lineage exp v1",
                 "status", "diff exp v1 v1", "eval exp v1"):
        h.command(text)
    h.wait(lambda: len(h.slack.requests_for("_local.response")) >= 11)
    h.press("start_preset:p1", "p1", message_ts="0")
    job = h.wait(lambda: next((j.name for j in h.bot.deps.store.list_jobs() if j.name != "exp"),
                              None))
    h.wait_status(job, "COMPLETED")
    refused = [(r.method, r.status, r.error, r.messages) for r in h.slack.requests
               if r.status != 200 or _refusal(r)]
    assert refused == []
    everything = json.dumps(h.slack.state()) + json.dumps(
        [r.params for r in h.slack.requests])
    assert "<!channel>" not in everything.replace("&lt;!channel&gt;", "")
    assert "<https://evil.example" not in everything


def test_an_answer_slack_refused_is_logged_and_the_user_still_hears(
    h: Harness, caplog: pytest.LogCaptureFixture,
) -> None:
    h.command("preset list")
    h.wait_ephemeral("No presets yet")
    h.slack.fail_next("_local.response", status=400, error="invalid_blocks")
    h.command("preset list")
    text = h.wait_ephemeral("Slack refused the formatted answer")
    assert "No presets yet" in text or "Presets" in text
    assert "Slack refused an answer" in caplog.text


def test_the_ack_does_not_wait_on_a_busy_slack_to_open_the_form(h: Harness) -> None:
    h.slack.fail_next("views.open", status=429, retry_after=4)
    began = time.monotonic()
    status, _ = h.command("start")
    assert status == 200 and time.monotonic() - began < 3  # no retry: the trigger is gone
    assert len(h.slack.requests_for("views.open")) == 1
    h.wait_ephemeral("expired_trigger_id")


def test_a_refused_channel_gets_no_loading_modal_and_no_help(tmp_path: Path) -> None:
    h = Harness(tmp_path, algorithms=["quick-metrics"], channels=["C0ELSEWHERE"])
    try:
        for text in ("start", "help", "start quick-metrics epochs"):
            status, body = h.command(text)
            assert status == 200 and "Usage" not in body and "/train start" not in body
        h.wait(lambda: len([e for e in h.ephemeral_texts()
                            if "doesn't take requests" in e]) == 3)
        assert h.slack.views() == [] and h.slack.requests_for("views.open") == []
    finally:
        h.close()
