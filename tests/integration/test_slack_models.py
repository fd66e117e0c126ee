"""Models through the real Bolt app and the strict local Slack: the Register model button on
a completed version's card, the model's approval card, Approve and Reject."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain import ModelStatus
from bot.localslack.modal_values import build_view_values
from tests.integration.slack_harness import Harness

REQUESTER, APPROVER = "U0LOCAL1", "U0LOCAL2"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, algorithms=["quick-metrics"], approvers=[APPROVER],
                      tensorboard=False)
    yield harness
    harness.close()


def _completed_card(h: Harness, job: str = "exp") -> dict:
    h.command(f"start quick-metrics epochs=2 --name {job}")
    h.wait_status(job, "COMPLETED")
    h.wait(lambda: h.version(job).message_ts and not h.version(job).outbox)
    ts = h.version(job).message_ts
    return h.wait(lambda: next((m for m in h.cards() if m["ts"] == ts
                                and '"register_model"' in json.dumps(m.get("blocks", []))),
                               None))


def _model_card(h: Harness, label: str) -> dict:
    return h.wait(lambda: next((m for m in h.cards()
                                if f"model *{label}*" in json.dumps(m.get("blocks", []))), None))


def test_register_then_the_requester_is_refused_and_an_approver_approves(h: Harness) -> None:
    card = _completed_card(h)
    h.press("register_model", "exp:1", user=REQUESTER, message_ts=card["ts"])
    h.wait_ephemeral("Registered model *exp v1*", user=REQUESTER)
    model_card = _model_card(h, "exp v1")
    blocks = json.dumps(model_card["blocks"])
    assert '"approve_model"' in blocks and '"reject_model"' in blocks
    assert "validation:accuracy" in blocks and "*exp v1*" in blocks  # objective, source
    stored = h.bot.deps.store.get_model_version("exp", 1)
    assert (stored.channel, stored.message_ts) == ("C0LOCAL", model_card["ts"])

    h.press("approve_model", "exp:1", user=REQUESTER, message_ts=model_card["ts"])
    h.wait_ephemeral("Only approvers can decide model versions", user=REQUESTER)
    assert h.bot.deps.store.get_model_version("exp", 1).status is ModelStatus.PENDING

    h.press("approve_model", "exp:1", user=APPROVER, message_ts=model_card["ts"])
    h.wait_ephemeral("Approved model *exp v1*", user=APPROVER)
    decided = h.bot.deps.store.get_model_version("exp", 1)
    assert (decided.status, decided.decided_by) == (ModelStatus.APPROVED, APPROVER)
    updated = h.wait(lambda: next((m for m in h.cards() if m["ts"] == model_card["ts"]
                                   and "approved by" in json.dumps(m.get("blocks", []))),
                                  None))
    assert '"actions"' not in json.dumps(updated["blocks"])  # no buttons left
    h.press("approve_model", "exp:1", user=APPROVER, message_ts=model_card["ts"])
    h.wait_ephemeral("already approved", user=APPROVER)
    assert h.slack.refusals() == []


def test_reject_asks_a_reason_and_records_it(h: Harness) -> None:
    _completed_card(h)
    h.command("model register exp --group exp-candidates")
    model_card = _model_card(h, "exp-candidates v1")
    h.press("reject_model", "exp-candidates:1", user=APPROVER, message_ts=model_card["ts"])
    view = h.wait(lambda: next((v for v in h.slack.views()
                                if v["callback_id"] == "reject_model_reason"), None))
    _, resp = h.submit(view, build_view_values(view, {"reason": ""}), user=APPROVER)
    assert resp.get("response_action") == "errors"
    h.submit(view, build_view_values(view, {"reason": "accuracy < baseline"}), user=APPROVER)
    h.wait(lambda: h.bot.deps.store.get_model_version("exp-candidates", 1).status
           is ModelStatus.REJECTED)
    rejected = h.bot.deps.store.get_model_version("exp-candidates", 1)
    assert (rejected.decided_by, rejected.note) == (APPROVER, "accuracy < baseline")
    h.wait(lambda: next((m for m in h.cards() if m["ts"] == model_card["ts"]
                         and "rejected by" in json.dumps(m.get("blocks", []))), None))
    assert h.slack.refusals() == []


def test_an_approver_who_registered_it_may_not_decide_it(h: Harness) -> None:
    _completed_card(h)
    h.command("model register exp", user=APPROVER)
    model_card = _model_card(h, "exp v1")
    h.press("approve_model", "exp:1", user=APPROVER, message_ts=model_card["ts"])
    h.wait_ephemeral("you registered it", user=APPROVER)
    # Reject is refused before its form is filled in: the loading modal says why.
    h.press("reject_model", "exp:1", user=APPROVER, message_ts=model_card["ts"])
    h.wait(lambda: next((v for v in h.slack.views()
                         if "you registered it" in json.dumps(v.get("blocks", []))), None))
    assert h.bot.deps.store.get_model_version("exp", 1).pending
