"""The Bolt app over HTTP: signatures, acks, cards through COMPLETED, failures, retries, authz."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.slack_harness import CHANNEL, Harness


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, algorithms=["quick-metrics", "crasher", "sleeper"],
                      approvers=["U0LOCAL2"], admins=["U0ADMIN"])
    yield harness
    harness.close()


def test_bad_signature_is_401_and_runs_nothing(h: Harness) -> None:
    status, _ = h.post(h.command_body("start quick-metrics"), secret="wrong")
    assert status == 401
    time.sleep(0.3)
    assert h.slack.requests_for("chat.postMessage") == []


def test_stale_timestamp_is_401(h: Harness) -> None:
    status, _ = h.post(h.command_body("help"), timestamp=int(time.time()) - 301)
    assert status == 401
    status, _ = h.post(h.command_body("help"), timestamp=int(time.time()) + 301)
    assert status == 401


def test_help_is_answered_in_the_ack(h: Harness) -> None:
    status, body = h.command("help")
    assert status == 200
    ack = json.loads(body)
    assert ack["response_type"] == "ephemeral" and "/train start" in json.dumps(ack["blocks"])


def test_bad_input_gets_an_ephemeral_with_usage(h: Harness) -> None:
    status, body = h.command("start quick-metrics epochs")
    assert status == 200 and "key=value" in body and "Usage" in body


def test_start_posts_a_card_that_updates_through_completed(h: Harness) -> None:
    # sleep_s: the run lasts well past the card's post (the launch comes first, and the first
    # card of a process waits for TensorBoard to start), so the thread
    # shows TRAINING too.
    status, _ = h.command("start quick-metrics epochs=3 sleep_s=5 --name exp1")
    assert status == 200
    h.wait_status("exp1", "COMPLETED")
    v = h.wait(lambda: h.version("exp1") if h.version("exp1").message_ts else None)
    card = h.wait(lambda: next((m for m in h.cards() if m["ts"] == v.message_ts
                                and "COMPLETED" in json.dumps(m.get("blocks", []))
                                and "completed." in json.dumps(m.get("replies", []))), None))
    blocks = json.dumps(card["blocks"])
    assert "TensorBoard" in blocks and "http://127.0.0.1:" in blocks
    assert card.get("edit_count", 0) >= 1
    replies = json.dumps(card["replies"])
    assert "TRAINING" in replies and "completed." in replies and "<@U0LOCAL1>" in replies
    # the TensorBoard URL on the card answers
    url = next(e["url"] for b in card["blocks"] if b["type"] == "actions"
               for e in b["elements"] if e.get("url"))
    with urllib.request.urlopen(url, timeout=20) as resp:
        assert resp.status == 200
    h.wait_ephemeral("exp1 v1 is launching")


def test_failure_is_announced_with_reason(h: Harness) -> None:
    h.command("start crasher --name boom")
    h.wait_status("boom", "FAILED")
    v = h.wait(lambda: h.version("boom") if h.version("boom").message_ts else None)
    assert v.failure_reason
    card = h.wait(lambda: next((m for m in h.cards() if m["ts"] == v.message_ts
                                and any("failed" in r.get("text", "") for r in m.get("replies", []))),
                               None))
    announcement = next(r["text"] for r in card["replies"] if "failed" in r.get("text", ""))
    assert "<@U0LOCAL1>" in announcement and v.failure_reason[:20] in announcement


def test_retried_delivery_starts_nothing_new(h: Harness) -> None:
    body = h.command_body("start quick-metrics --name once")
    assert h.post(body)[0] == 200
    for n in (1, 2, 3):
        assert h.post(body, headers={"X-Slack-Retry-Num": str(n),
                                     "X-Slack-Retry-Reason": "http_timeout"})[0] == 200
    h.wait_status("once", "COMPLETED")
    h.wait(lambda: h.version("once").message_ts)
    time.sleep(0.5)
    assert [v.number for v in h.bot.deps.store.list_versions("once")] == [1]
    cards = [m for m in h.cards() if "once v1" in json.dumps(m.get("blocks", []))]
    assert len(cards) == 1


def test_unauthorised_stop_is_refused_politely(h: Harness) -> None:
    h.command("start sleeper --name long")
    v = h.wait_status("long", "TRAINING")
    h.command("stop long", user="U0STRANGER")
    text = h.wait_ephemeral("can stop it", user="U0STRANGER")
    assert "<@U0LOCAL1>" in text
    h.press("stop_version", "long:1", user="U0LOCAL1", message_ts=v.message_ts or "0")
    h.wait_status("long", "STOPPED")


def test_status_lists_running_versions(h: Harness) -> None:
    h.command("start sleeper --name busy")
    h.wait_status("busy", "TRAINING")
    h.command("status", user="U0ONCALL")
    text = h.wait_ephemeral("Running", user="U0ONCALL")
    assert "busy v1" in text
    h.command("stop busy")
    h.wait_status("busy", "STOPPED")


def test_channel_restriction(tmp_path: Path) -> None:
    harness = Harness(tmp_path, algorithms=["quick-metrics"], channels=["C0OTHER"])
    try:
        harness.command("start quick-metrics --name nope")
        harness.wait_ephemeral("doesn't take requests from here")
    finally:
        harness.close()
    assert CHANNEL != "C0OTHER"


def test_every_registered_button_and_modal_has_its_function() -> None:
    """``bot.slack.app`` names the work by string so the ack path needn't import it."""
    from bot.slack import interactions
    from bot.slack.app import BUTTONS, MODAL_BUTTONS, MODALS, handlers

    assert set(interactions.BUTTON_COMMANDS) == {*BUTTONS, "start_preset"}
    for action_id in MODAL_BUTTONS:
        assert callable(getattr(handlers(action_id), action_id)), action_id
    for callback_id, has_submit in MODALS.items():
        assert callable(getattr(handlers(callback_id), f"{callback_id}_ack")), callback_id
        assert callable(getattr(handlers(callback_id), f"{callback_id}_submit", None)) \
            == has_submit
