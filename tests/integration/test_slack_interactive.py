"""Buttons and modals through the real Bolt app: approvals, presets, the start form, charts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.localslack.modal_values import build_view_values
from tests.integration.slack_harness import Harness

REQUESTER, APPROVER, APPROVER2, OTHER = "U0LOCAL1", "U0LOCAL2", "U0LOCAL3", "U0OTHER"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, algorithms=["quick-metrics"], approvers=[APPROVER, APPROVER2])
    yield harness
    harness.close()


def _first_version(h: Harness, job: str = "exp") -> None:
    h.command(f"start quick-metrics epochs=2 --name {job}")
    h.wait_status(job, "COMPLETED")
    # The launch comes before the card: a run this short may end before its card is up.
    h.wait(lambda: h.version(job).message_ts and not h.version(job).outbox)


def _request_rerun(h: Harness, job: str = "exp", params: str = "epochs=4") -> str:
    h.command(f"rerun {job} v1 {params}")
    v2 = h.wait_status(job, "AWAITING_APPROVAL", number=2)
    assert v2.approval_id
    # The version is stored (naming its request) before the request itself and its card.
    h.wait_ephemeral(f"{job} v2 is waiting for approval")
    h.bot.deps.store.get_approval(v2.approval_id)
    return v2.approval_id


def test_rerun_approve_launches_v2_with_parent(h: Harness) -> None:
    _first_version(h)
    approval_id = _request_rerun(h)
    card = h.wait(lambda: next((m for m in h.cards() if approval_id in json.dumps(m.get("blocks", []))),
                               None))
    blocks = json.dumps(card["blocks"])
    assert "Approve" in blocks and "epochs" in blocks and "Estimated cost" in blocks
    h.press("approve_request", approval_id, user=APPROVER, message_ts=card["ts"])
    v2 = h.wait_status("exp", "COMPLETED", number=2)
    assert v2.parent == 1 and v2.approved_by == APPROVER
    assert v2.spec.hyperparameters["epochs"] == 4
    decided = h.wait(lambda: next((m for m in h.cards() if m["ts"] == card["ts"]
                                   and "approved by" in json.dumps(m.get("blocks", []))), None))
    assert '"actions"' not in json.dumps(decided["blocks"])  # buttons removed


def test_reject_asks_a_reason_and_records_it(h: Harness) -> None:
    _first_version(h)
    approval_id = _request_rerun(h)
    h.press("reject_request", approval_id, user=APPROVER)
    view = h.wait(lambda: next((v for v in h.slack.views() if v["callback_id"] == "reject_reason"),
                               None))
    status, resp = h.submit(view, build_view_values(view, {"reason": ""}), user=APPROVER)
    assert resp.get("response_action") == "errors"
    h.submit(view, build_view_values(view, {"reason": "too costly"}), user=APPROVER)
    v2 = h.wait_status("exp", "REJECTED", number=2)
    assert "too costly" in (v2.failure_reason or "")
    approval = h.bot.deps.store.get_approval(approval_id)
    assert approval.decided_by == APPROVER and approval.decision_note == "too costly"


def test_self_approval_and_non_approvers_are_refused(h: Harness) -> None:
    h.command("start quick-metrics epochs=2 --name mine", user=APPROVER)
    h.wait_status("mine", "COMPLETED")
    h.command("rerun mine", user=APPROVER)
    v2 = h.wait_status("mine", "AWAITING_APPROVAL", number=2)
    h.press("approve_request", v2.approval_id or "", user=APPROVER)
    h.wait_ephemeral("can't decide your own request", user=APPROVER)
    h.press("approve_request", v2.approval_id or "", user=OTHER)
    text = h.wait_ephemeral("Only approvers", user=OTHER)
    assert f"<@{APPROVER}>" in text
    assert h.version("mine", 2).status.value == "AWAITING_APPROVAL"


def test_concurrent_approvals_launch_exactly_once(h: Harness) -> None:
    _first_version(h)
    approval_id = _request_rerun(h)
    bodies = [h.press_body("approve_request", approval_id, user=u)
              for u in (APPROVER, APPROVER2) * 3]
    barrier = threading.Barrier(len(bodies))

    def press(body: str) -> None:
        barrier.wait()
        h.post(body)

    threads = [threading.Thread(target=press, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h.wait_status("exp", "COMPLETED", number=2)
    h.wait_ephemeral("already approved")
    launched = [v for v in h.bot.deps.store.list_versions("exp") if v.backend_job_name]
    assert len(launched) == 2  # v1 and one v2
    assert len(list((h.settings.runs_dir).glob("trainbot-exp-v2-*"))) == 1


def test_expired_request_is_refused(tmp_path: Path) -> None:
    harness = Harness(tmp_path, algorithms=["quick-metrics"], approvers=[APPROVER],
                      approval_ttl_minutes=1)
    try:
        _first_version(harness)
        approval_id = _request_rerun(harness)
        clock = harness.bot.deps.clock
        later = clock.now() + timedelta(minutes=2)
        harness.bot.deps.clock = type("Later", (), {"now": staticmethod(lambda: later)})()
        harness.press("approve_request", approval_id, user=APPROVER)
        harness.wait_ephemeral("expired", user=APPROVER)
        assert harness.version("exp", 2).status.value == "REJECTED"
    finally:
        harness.close()


def test_preset_start_button_launches(h: Harness) -> None:
    _first_version(h)
    h.command("preset save nightly --from exp v1 --description 'two epochs'")
    h.wait_ephemeral("Saved preset")
    h.command("preset list")
    listing = h.wait_ephemeral("start_preset")
    assert "confirm" in listing
    h.press("start_preset", "nightly")
    h.wait_ephemeral("is launching (preset `nightly`)")
    job = next(j for j in h.bot.deps.store.list_jobs() if j.name != "exp")
    v = h.wait_status(job.name, "COMPLETED")
    assert v.spec.preset == "nightly"


def test_start_modal_returns_field_errors_inline_then_launches(h: Harness) -> None:
    h.command("start")
    choose = h.wait(lambda: next((v for v in h.slack.views()
                                  if v["callback_id"] == "start_choose"), None))
    _, resp = h.submit(choose, build_view_values(choose, {"source": "algo:quick-metrics",
                                                          "pool": "local-cpu", "name": "form"}))
    assert resp["response_action"] == "update"
    form = resp["view"]
    form["id"] = "VFORM1"
    _, bad = h.submit(form, build_view_values(form, {"epochs": "5000"}))
    assert bad["response_action"] == "errors" and "hp:epochs" in bad["errors"]
    _, ok = h.submit(form, build_view_values(form, {"epochs": "2"}))
    assert ok["response_action"] == "clear"
    v = h.wait_status("form", "COMPLETED")
    assert v.spec.hyperparameters["epochs"] == 2


def test_chart_is_uploaded_into_the_thread_on_completion(h: Harness) -> None:
    _first_version(h)
    v = h.version("exp")
    shares = h.wait(lambda: h.slack.requests_for("files.completeUploadExternal") or None)
    assert v.message_ts in json.dumps(shares[0].params)
    files = h.slack.files()
    assert files[0]["content"][:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_links_to_the_pictures_in_the_thread_and_posts_nothing(h: Harness) -> None:
    _first_version(h)
    v = h.version("exp")
    v = h.bot.deps.store.save_version(v.model_copy(update={"evaluation": {
        "objective": {"metric": "validation:accuracy", "value": 0.9},
        "classes": ["a", "b"], "confusion_matrix": [[5, 1], [0, 4]],
        "per_class": [{"class": "a", "precision": 1.0, "recall": 0.83, "f1": 0.9, "support": 6}],
    }}))
    uploads = len(h.slack.requests_for("files.getUploadURLExternal"))
    h.press("show_eval", "exp:1", message_ts=v.message_ts or "0")
    answer = h.wait_ephemeral("Per class")
    assert "Confusion matrix and curves" in answer and "in the card" in answer
    h.command("eval exp")
    h.wait(lambda: len([e for e in h.ephemeral_texts() if "Per class" in e]) == 2)
    # The ephemeral answers link to the thread; nothing more goes into the public thread.
    assert len(h.slack.requests_for("files.getUploadURLExternal")) == uploads


def test_preset_delete_asks_for_confirmation(h: Harness) -> None:
    _first_version(h)
    h.command("preset save keep --from exp v1")
    h.wait_ephemeral("Saved preset")
    h.command("preset delete keep")
    h.wait_ephemeral("Delete preset")
    assert h.bot.deps.store.list_presets(h.settings.scope)  # still there until confirmed
    h.press("delete_preset", "keep")
    h.wait_ephemeral("deleted")
    assert not h.bot.deps.store.list_presets(h.settings.scope)
