"""Slack re-delivers what it thinks failed (``X-Slack-Retry-Num``) and a signed request can be
replayed inside the 5-minute window: neither may start or decide anything twice.

Launches are counted as run folders of the local backend, the one thing a launch creates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain import NotFound
from bot.localslack.signing import block_actions_body, slash_command_body
from tests.integration.slack_harness import CHANNEL, Harness
from tests.reliability.conftest import fast_harness

REQUESTER, APPROVER = "U0LOCAL1", "U0LOCAL2"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = fast_harness(tmp_path, algorithms=["quick-metrics"], approvers=[APPROVER])
    yield harness
    harness.close()


def retry(n: int) -> dict[str, str]:
    return {"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}


def command(h: Harness, text: str, *, user: str = REQUESTER) -> tuple[str, str]:
    """A signed-ready slash command body and the token of its response_url."""
    inter = h.slack.new_interaction(CHANNEL, user)
    body = slash_command_body(text, user_id=user, user_name=user, channel_id=CHANNEL,
                              response_url=inter["response_url"], trigger_id=inter["trigger_id"])
    return body, inter["response_url"].rsplit("/", 1)[1]


def responses(h: Harness, token: str) -> list[dict]:
    return [r.params for r in h.slack.requests_for("_local.response")
            if r.params.get("token") == token]


def deliver_five_times(h: Harness, body: str) -> None:
    """Once, three Slack retries, then a replay re-signed 200 s later (inside the window)."""
    assert h.post(body)[0] == 200
    for n in (1, 2, 3):
        assert h.post(body, headers=retry(n))[0] == 200
    assert h.post(body, timestamp=int(time.time()) - 200)[0] == 200


def approval_card(h: Harness, approval_id: str) -> str | None:
    try:
        return h.bot.deps.store.get_approval(approval_id).message_ts
    except NotFound:  # the version names its request a moment before the request is stored
        return None


def run_dirs(h: Harness, job: str, number: int) -> list[Path]:
    return list(h.settings.runs_dir.glob(f"trainbot-{job}-v{number}-*"))


@pytest.mark.parametrize("name", ["--name once", ""], ids=["named", "unnamed"])
def test_start_retried_and_replayed_creates_one_version_and_one_launch(
    h: Harness, name: str
) -> None:
    body, token = command(h, f"start quick-metrics epochs=2 {name}")

    deliver_five_times(h, body)

    h.wait(lambda: len(responses(h, token)) >= 5)  # every delivery's lazy listener is done
    jobs = h.bot.deps.store.list_jobs()
    assert len(jobs) == 1, [j.name for j in jobs]
    job = jobs[0].name
    v = h.wait_status(job, "COMPLETED")
    assert [x.number for x in h.bot.deps.store.list_versions(job)] == [1]
    assert len(run_dirs(h, job, 1)) == 1
    assert len(list(h.settings.runs_dir.glob("trainbot-*"))) == 1
    cards = [m for m in h.cards() if m.get("subtype") != "thread_broadcast"
             and f"{job} v1" in json.dumps(m.get("blocks", []))]
    assert [m["ts"] for m in cards] == [v.message_ts]
    assert all("is launching" in r["text"] for r in responses(h, token))


def test_approve_delivered_five_times_decides_once_and_launches_once(h: Harness) -> None:
    h.command("start quick-metrics epochs=1 --name exp")
    h.wait_status("exp", "COMPLETED")
    h.command("rerun exp v1 epochs=2")
    v2 = h.wait_status("exp", "AWAITING_APPROVAL", number=2)
    approval_id = v2.approval_id or ""
    card_ts = h.wait(lambda: approval_card(h, approval_id))
    inter = h.slack.new_interaction(CHANNEL, APPROVER, card_ts)
    body = block_actions_body("approve_request", approval_id, user_id=APPROVER,
                              channel_id=CHANNEL, message_ts=card_ts,
                              response_url=inter["response_url"], trigger_id=inter["trigger_id"])
    token = inter["response_url"].rsplit("/", 1)[1]

    deliver_five_times(h, body)

    h.wait(lambda: len(responses(h, token)) >= 5)
    h.wait_status("exp", "COMPLETED", number=2)
    approval = h.bot.deps.store.get_approval(approval_id)
    assert approval.decision == "approved" and approval.decided_by == APPROVER
    texts = [r["text"] for r in responses(h, token)]
    assert sum("Approved" in t for t in texts) == 1, texts
    assert sum("already approved" in t for t in texts) == 4, texts
    assert len(run_dirs(h, "exp", 2)) == 1
    assert [v.number for v in h.bot.deps.store.list_versions("exp")] == [1, 2]
    card_edits = [r for r in h.slack.requests_for("chat.update") if r.params.get("ts") == card_ts]
    assert len(card_edits) == 1  # the decision is announced on the card once
