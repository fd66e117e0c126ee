"""Sweeps through Slack: `/train sweep` through the real Bolt app against the strict local
Slack, with real trials of the tabular preset run by the local compute (~2 s each) — one card
updated in place, "new best" and the end in its thread, the objective chart, the card's
buttons, Stop sweep and the channel allow-list — and the SlackChat's sweep methods alone
(coalescing, refusals, the chart being best effort)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.domain import ChatUndelivered, NotFound
from bot.domain.sweep import Sweep, SweepStatus, Trial
from bot.domain.sweep_space import FloatRange, SweepSpec
from bot.localslack import LocalSlack
from bot.slack.charts import sweep_chart_for
from bot.slack.notifier import SlackChat
from tests.integration.slack_harness import CHANNEL, Harness

REQUESTER, APPROVER, STRANGER = "U0LOCAL1", "U0LOCAL2", "U0STRANGER"
SWEEP = ("sweep tabular-classification learning_rate=0.05..0.3:log --trials {trials} "
         "--parallel 1 --name {name}")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, algorithms=["tabular-classification"], approvers=[APPROVER],
                      tensorboard=False)
    yield harness
    harness.close()


def _sweep(h: Harness, name: str) -> Sweep | None:
    try:
        return h.bot.deps.store.get_sweep(name)
    except NotFound:
        return None


def _ended(h: Harness, name: str, timeout: float = 120) -> Sweep:
    """The sweep once it ended and the channel heard it (its outbox is empty)."""
    def done() -> Sweep | None:
        s = _sweep(h, name)
        return s if s is not None and s.status.terminal and not s.outbox else None

    return h.wait(done, timeout)


def _card(h: Harness, ts: str) -> dict:
    return next(m for m in h.cards() if m["ts"] == ts)


def _buttons(message: dict) -> dict[str, str]:
    return {e["action_id"]: e.get("value", "") for b in message.get("blocks", [])
            if b["type"] == "actions" for e in b["elements"]}


def _refused(h: Harness) -> list[tuple[str, int, str | None]]:
    return [(r["method"], r["status"], r["error"]) for r in h.slack.refusals()]


def test_a_sweep_has_one_card_updated_in_place_and_its_thread_tells_the_rest(h: Harness) -> None:
    h.command(SWEEP.format(trials=3, name="sw1"), user=REQUESTER)
    h.wait_ephemeral("Sweep *sw1* is running: 3 trials, 1 at a time", user=REQUESTER)
    posted = h.wait(lambda: _sweep(h, "sw1") and _sweep(h, "sw1").message_ts)  # type: ignore[union-attr]
    sweep = _ended(h, "sw1")
    assert sweep.status is SweepStatus.COMPLETED and sweep.message_ts == posted
    trials = h.bot.deps.store.list_versions("sw1")
    assert sorted(v.trial for v in trials) == [0, 1, 2]  # type: ignore[type-var]

    # One card, edited in place until it shows the end.
    card = h.wait(lambda: next((m for m in h.cards() if m["ts"] == posted
                                and "completed" in m["text"]), None))
    tops = [m for m in h.cards() if m.get("subtype") != "thread_broadcast"]
    assert [m["ts"] for m in tops] == [posted]
    updates = [r for r in h.slack.requests_for("chat.update") if r.params.get("ts") == posted]
    assert updates and all(r.status == 200 for r in updates)
    blocks = json.dumps(card["blocks"], ensure_ascii=False)
    assert "3 done · 0 running · 0 pruned · 0 failed · 3/3 started" in blocks
    assert "*Best*: trial" in blocks and "*Top 3*" in blocks

    # The thread: each new best once (no broadcast), the end once (broadcast), the chart.
    replies = card["replies"]
    bests = [r for r in replies if r["text"].startswith(":trophy: New best in *sw1*")]
    ends = [r for r in replies if "sweep *sw1* completed" in r["text"]]
    assert 1 <= len(bests) <= 3 and all(r.get("subtype") is None for r in bests)
    assert len(ends) == 1 and ends[0]["subtype"] == "thread_broadcast"
    assert ends[0]["text"].startswith(f":white_check_mark: <@{REQUESTER}> sweep *sw1*")
    uploads = [f for r in replies for f in r.get("files", [])]
    assert [f["name"] for f in uploads] == ["sw1-objective.png"]
    (png,) = [f["content"] for f in h.slack.files() if f["name"] == "sw1-objective.png"]
    assert png.startswith(b"\x89PNG")

    # The buttons act on the best trial's version, with the version card's handlers.
    best_version = int(_buttons(card)["rerun_version"].rpartition(":")[2])
    assert _buttons(card) == {a: f"sw1:{best_version}"
                              for a in ("rerun_version", "save_preset", "register_model")}
    assert h.bot.deps.store.get_version("sw1", best_version).trial is not None
    h.press("rerun_version", f"sw1:{best_version}", message_ts=posted)
    h.wait(lambda: next((v for v in h.slack.views() if v["callback_id"] == "rerun_form"), None))
    h.press("save_preset", f"sw1:{best_version}", message_ts=posted)
    h.wait(lambda: next((v for v in h.slack.views() if v["callback_id"] == "save_preset"), None))
    h.press("register_model", f"sw1:{best_version}", message_ts=posted)
    h.wait_ephemeral(f"Registered model *sw1 v{best_version}*", user=REQUESTER)
    h.wait(lambda: next((m for m in h.cards() if f"model *sw1 v{best_version}*"
                         in json.dumps(m.get("blocks", []))), None))  # its approval card
    assert _refused(h) == []


def test_stop_sweep_is_for_its_requester_and_approvers(h: Harness) -> None:
    h.command(SWEEP.format(trials=20, name="sw2"), user=REQUESTER)
    posted = h.wait(lambda: _sweep(h, "sw2") and _sweep(h, "sw2").message_ts)  # type: ignore[union-attr]
    card = h.wait(lambda: next((m for m in h.cards() if m["ts"] == posted), None))
    assert _buttons(card)["stop_sweep"] == "sw2"
    stop = next(e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == "stop_sweep")
    assert stop["style"] == "danger" and "Stop sweep *sw2*" in stop["confirm"]["text"]["text"]

    h.press("stop_sweep", "sw2", user=STRANGER, message_ts=posted)
    refused = h.wait_ephemeral("can stop it", user=STRANGER)
    assert f"<@{REQUESTER}>" in refused
    assert _sweep(h, "sw2").status is SweepStatus.RUNNING  # type: ignore[union-attr]

    h.press("stop_sweep", "sw2", user=REQUESTER, message_ts=posted)
    h.wait(lambda: any("Stopping sweep *sw2*" in e or "Sweep *sw2* is stopped" in e
                       for e in h.ephemeral_texts(REQUESTER)))
    sweep = _ended(h, "sw2")
    assert (sweep.status, sweep.stopped_by) == (SweepStatus.STOPPED, REQUESTER)
    assert len(h.bot.deps.store.list_versions("sw2")) < 20
    final = h.wait(lambda: next((m for m in h.cards() if m["ts"] == posted
                                 and "stopped" in m["text"]), None))
    assert "stop_sweep" not in _buttons(final)
    ends = [r for r in final["replies"] if "sweep *sw2* stopped" in r["text"]]
    assert len(ends) == 1 and ends[0]["subtype"] == "thread_broadcast"
    # Pressed again (a stale card): said plainly, nothing else happens.
    h.press("stop_sweep", "sw2", user=REQUESTER, message_ts=posted)
    h.wait_ephemeral("already ended", user=REQUESTER)
    assert _refused(h) == []


def test_a_sweep_in_a_channel_not_allowed_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, algorithms=["tabular-classification"], channels=["C0ELSEWHERE"],
                tensorboard=False)
    try:
        h.command(SWEEP.format(trials=2, name="sw3"))
        h.wait_ephemeral("doesn't take requests from here")
        h.press("stop_sweep", "sw3")
        h.wait(lambda: len([e for e in h.ephemeral_texts()
                            if "doesn't take requests" in e]) == 2)
        assert _sweep(h, "sw3") is None and h.cards() == []
    finally:
        h.close()


# --- SlackChat's sweep methods alone ------------------------------------------------------

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SPEC = SweepSpec(algorithm="tabular-classification", algorithm_version="1.0.0",
                 ranges=[FloatRange(name="learning_rate", low=0.01, high=0.3)], trials=10,
                 parallel=10, objective_metric="validation:accuracy",
                 objective_goal="maximize", pool="cpu-small")


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack() as server:
        yield server


def _chat(slack: LocalSlack, **kw: Any) -> SlackChat:
    return SlackChat(WebClient(token="xoxb-local", base_url=slack.api_url), **kw)


def _trials(running: int, done: int = 0) -> list[Trial]:
    return ([Trial(number=n, version=n + 1, params={"learning_rate": 0.1}, state="completed",
                   objective=0.5 + n / 100) for n in range(done)]
            + [Trial(number=n, version=n + 1, params={"learning_rate": 0.1})
               for n in range(done, done + running)])


def _posted(chat: SlackChat, **kw: Any) -> Sweep:
    sweep = Sweep(name="sw", spec=SPEC, requested_by=REQUESTER, created_at=T0,
                  channel=CHANNEL, **kw)
    ref = chat.sweep_created(sweep, [])
    assert ref is not None
    return sweep.model_copy(update={"message_ts": ref[1]})


def _updates(slack: LocalSlack) -> list[str]:
    return [r.params["text"] for r in slack.requests_for("chat.update")]


def test_card_edits_are_coalesced_the_newest_is_shown_and_the_end_goes_at_once(
        slack: LocalSlack) -> None:
    chat = _chat(slack, progress_interval_s=2.0)
    sweep = _posted(chat)
    for n in range(1, 11):
        chat.sweep_changed(sweep, _trials(n))
    assert _updates(slack) == []  # held back: the card was posted a moment ago
    slack.wait_for(lambda: _updates(slack), timeout=5)
    time.sleep(0.5)
    assert len(_updates(slack)) == 1  # one edit, carrying the newest state
    card = slack.messages(CHANNEL)[0]
    assert "0 done · 10 running" in json.dumps(card["blocks"], ensure_ascii=False)

    chat.sweep_changed(sweep, _trials(9, done=1))  # within the interval: held back …
    ended = sweep.model_copy(update={"status": SweepStatus.COMPLETED})
    chat.sweep_changed(ended, _trials(0, done=10))  # … and superseded by the end, at once
    assert len(_updates(slack)) == 2 and "completed" in _updates(slack)[-1]
    chat.sweep_changed(sweep, _trials(5, done=5))  # an older state, late: never shown
    time.sleep(2.5)  # past the interval: nothing held back is shown either
    assert len(_updates(slack)) == 2
    assert "10 done · 0 running" in json.dumps(slack.messages(CHANNEL)[0]["blocks"],
                                               ensure_ascii=False)


def test_a_status_change_is_shown_at_once(slack: LocalSlack) -> None:
    chat = _chat(slack, progress_interval_s=30)
    sweep = _posted(chat)
    chat.sweep_changed(sweep.model_copy(update={"status": SweepStatus.STOPPING}), _trials(2))
    assert len(_updates(slack)) == 1 and "stopping" in _updates(slack)[0]


def test_a_card_slack_refuses_to_edit_never_raises(slack: LocalSlack,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    chat = _chat(slack, progress_interval_s=0)
    sweep = _posted(chat)
    slack.fail_next("chat.update", error="message_not_found")
    time.sleep(1.05)  # the channel's one-edit-a-second
    chat.sweep_changed(sweep, _trials(1))
    assert "message_not_found" in caplog.text
    chat.sweep_changed(sweep.model_copy(update={"message_ts": None}), _trials(1))  # no card
    assert len(slack.requests_for("chat.update")) == 1


def test_the_end_is_broadcast_from_the_thread_with_the_chart(slack: LocalSlack) -> None:
    chat = _chat(slack, sweep_chart=sweep_chart_for)
    sweep = _posted(chat).model_copy(update={"status": SweepStatus.COMPLETED})
    chat.sweep_new_best(sweep, _trials(0, done=1)[0])
    chat.sweep_ended(sweep, _trials(0, done=3))
    (card,) = [m for m in slack.messages(CHANNEL) if m.get("subtype") != "thread_broadcast"]
    best, end, chart = card["replies"]
    assert best["text"].startswith(":trophy: New best") and best.get("subtype") is None
    assert end["subtype"] == "thread_broadcast" and f"<@{REQUESTER}>" in end["text"]
    assert [f["name"] for f in chart["files"]] == ["sw-objective.png"]


def test_an_end_slack_refuses_raises_and_a_failed_chart_does_not(slack: LocalSlack) -> None:
    def broken(sweep: Sweep, trials: Any) -> bytes:
        raise RuntimeError("no fonts")

    chat = _chat(slack, sweep_chart=broken)
    sweep = _posted(chat).model_copy(update={"status": SweepStatus.STOPPED})
    slack.fail_next("chat.postMessage", error="is_archived")
    with pytest.raises(ChatUndelivered) as refused:
        chat.sweep_ended(sweep, _trials(0, done=2))
    assert refused.value.code == "is_archived"
    chat.sweep_ended(sweep, _trials(0, done=2))  # the chart fails: the end was told
    chat.sweep_chart = sweep_chart_for
    slack.fail_next("files.getUploadURLExternal", error="missing_scope")
    chat.sweep_ended(sweep, _trials(0, done=2))  # Slack refuses the upload: the same
    ends = [r for r in slack.messages(CHANNEL)[0]["replies"] if "stopped" in r["text"]]
    assert len(ends) == 2


def test_without_a_card_the_end_goes_to_the_channel_and_without_a_channel_nowhere(
        slack: LocalSlack) -> None:
    chat = _chat(slack, sweep_chart=sweep_chart_for)
    sweep = Sweep(name="sw", spec=SPEC, requested_by=REQUESTER, created_at=T0,
                  status=SweepStatus.FAILED, failure_reason="no trial completed")
    assert chat.sweep_created(sweep, []) is None
    chat.sweep_ended(sweep, [])
    chat.sweep_new_best(sweep, _trials(0, done=1)[0])
    assert slack.requests_for("chat.postMessage") == []
    chat.sweep_ended(sweep.model_copy(update={"channel": CHANNEL}), [])
    (end,) = slack.messages(CHANNEL)
    assert end["text"].startswith(":x: <@U0LOCAL1> sweep *sw* failed") and not end["replies"]
    assert slack.requests_for("files.getUploadURLExternal") == []
