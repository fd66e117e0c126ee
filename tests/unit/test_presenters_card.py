"""What users read on a version card and an approval card: every line true in the state shown,
and the algorithm's objective metric first wherever metrics are listed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import Approval, Decision, JobSpec, JobVersion, Progress, Status
from bot.ports import Links
from bot.services.queries import MetricDelta, StatusOverview, VersionDiff
from bot.slack.blocks import render_blocks
from bot.views import presenters
from bot.views.doc import Doc
from bot.views.text import render_text
from tests.unit.conftest import ALGO

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)
SPEC = JobSpec(algorithm="toy", algorithm_version="1.0.0", pool="gpu-1")
# What a backend can tell as soon as a version is launched, before it runs.
LINKS = Links(tensorboard="http://127.0.0.1:6006/#scalars", logs="file:///runs/exp/stdout.log")
# Written at launch by the local backend of earlier releases, and stored with the version.
LOCAL_NOTE = "ran locally on CPU (pool gpu-1 asks for 1× GPU; none here)"
METRICS = {"train:loss": 0.12, "validation:accuracy": 0.91, "epoch": 3.0}


def _requested(status: Status = Status.QUEUED) -> JobVersion:
    return JobVersion(job="exp", number=2, parent=1, spec=SPEC, requested_by="U0ALICE",
                      status=status, created_at=T0, updated_at=T0, estimated_cost_usd=1.5,
                      channel="C0TEAM")


def _launched(v: JobVersion) -> JobVersion:
    return v.model_copy(update={"backend": "local", "backend_job_name": "tb-exp-v2-ab12",
                                "compute_note": LOCAL_NOTE})


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _cases() -> dict[Status, list[JobVersion]]:
    awaiting = _requested(Status.AWAITING_APPROVAL).model_copy(update={"approval_id": "req-1"})
    queued = _requested()
    launched = _launched(queued)
    starting = launched.transition(Status.STARTING, at=_at(1))
    training = starting.transition(Status.TRAINING, at=_at(2)).model_copy(update={
        "progress": Progress(current=2, total=5, metrics={"train:loss": 0.3, "epoch": 2,
                                                          "validation:accuracy": 0.8}),
        "metrics": METRICS, "secondary_status": "Training"})
    interrupted = training.model_copy(update={"spot_interruptions": 1,
                                              "secondary_status": "Interrupted"})
    uploading = training.transition(Status.UPLOADING, at=_at(8))
    stopping = training.transition(Status.STOPPING, at=_at(9), message="stop requested by U0ALICE")
    completed = uploading.transition(Status.COMPLETED, at=_at(10)).model_copy(update={
        "actual_cost_usd": 0.2, "billable_seconds": 480})
    # Events lost on the way: straight from QUEUED to COMPLETED, no start time known.
    completed_unseen = launched.transition(Status.COMPLETED, at=_at(10)).model_copy(
        update={"metrics": METRICS})
    failed = training.transition(Status.FAILED, at=_at(5)).model_copy(update={
        "failure_reason": "AlgorithmError: CUDA out of memory", "log_tail": ["boom"]})
    failed_launch = queued.model_copy(update={"backend_job_name": "tb-exp-v2-ab12"}).transition(
        Status.FAILED, at=_at(0)).model_copy(update={"failure_reason": "launch error: OSError"})
    stopped = stopping.transition(Status.STOPPED, at=_at(10))
    stopped_queued = queued.transition(Status.STOPPED, at=_at(3),
                                       message="stopped by U0ALICE before it launched")
    rejected = awaiting.transition(Status.REJECTED, at=_at(4)).model_copy(update={
        "failure_reason": "rejected by U0BOSS: too costly"})
    return {
        Status.AWAITING_APPROVAL: [awaiting],
        Status.QUEUED: [queued, launched],
        Status.STARTING: [starting],
        Status.TRAINING: [training, interrupted],
        Status.UPLOADING: [uploading],
        Status.STOPPING: [stopping, stopping.model_copy(update={"spot_interruptions": 2})],
        Status.COMPLETED: [completed, completed_unseen],
        Status.FAILED: [failed, failed_launch],
        Status.STOPPED: [stopped, stopped_queued],
        Status.REJECTED: [rejected],
    }


CASES = _cases()


def _card(v: JobVersion) -> tuple[Doc, str]:
    doc = presenters.version_card(v, LINKS, algorithm=ALGO, now=NOW)
    return doc, render_text(doc) + json.dumps(render_blocks(doc))


def _buttons(doc: Doc) -> set[str]:
    return {b.label for b in doc.buttons}


def test_every_status_has_a_card_case() -> None:
    assert set(CASES) == set(Status)
    assert all(v.status is status for status, vs in CASES.items() for v in vs)


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_card_says_only_what_holds_in_its_state(status: Status) -> None:
    for v in CASES[status]:
        doc, text = _card(v)
        began = v.started_at is not None or status in (
            Status.TRAINING, Status.UPLOADING, Status.COMPLETED)
        where = f"{v.status} card ({v.started_at=}, {v.backend_job_name=})"
        # Nothing in the past tense or at work before the run began ("Compute ran locally").
        assert not re.search(r"\bran\b", text), where
        assert "local CPU (pool gpu-1" in text or not v.compute_note, where
        if not began:
            assert not {"TensorBoard", "Logs"} & _buttons(doc), where
            assert not re.search(r"\b(running|started|took|ago)\b", text), where
            assert "actual" not in text, where
        # Nothing at work after it ended.
        if status.terminal:
            assert not re.search(r"\b(running|ago|so far|resuming)\b", text), where
            assert "█" not in text and "Stop" not in _buttons(doc), where
            assert f"backend: {v.secondary_status}" not in text, where
        else:
            assert not re.search(r"\b(took|Last metrics)\b", text), where
            assert not {"Rerun", "Save as preset", "Evaluation"} & _buttons(doc), where
        # Durations only when known.
        assert ("took" in text) == (v.started_at is not None and v.ended_at is not None), where
        assert (" ago" in text) == (v.started_at is not None and not status.terminal), where
        stop = next((b for b in doc.buttons if b.label == "Stop"), None)
        if stop is not None:
            assert ("The run ends" in (stop.confirm or "")) == began, where


def test_a_queued_card_names_its_compute_without_saying_it_ran() -> None:
    launched = CASES[Status.QUEUED][1]
    doc, text = _card(launched)
    assert ("Compute", "local CPU (pool gpu-1 asks for 1× GPU; none here)") in doc.sections[0].fields
    assert "Stop" in _buttons(doc) and "TensorBoard" not in _buttons(doc)


def test_a_training_card_links_tensorboard_and_logs_and_says_how_long_so_far() -> None:
    doc, text = _card(CASES[Status.TRAINING][0])
    assert {"TensorBoard", "Logs", "Stop"} <= _buttons(doc)
    assert "started 12:01:00 UTC, 29m 00s ago" in text


def test_a_card_without_a_clock_gives_no_running_time() -> None:
    doc = presenters.version_card(CASES[Status.TRAINING][0], LINKS, algorithm=ALGO)
    assert ("Time", "started 12:01:00 UTC") in doc.sections[0].fields


def test_a_version_that_never_launched_cost_nothing() -> None:
    for v in (CASES[Status.REJECTED][0], CASES[Status.STOPPED][1]):
        doc, _ = _card(v)
        assert ("Cost", "none (never launched)") in doc.sections[0].fields


def test_metrics_are_headed_by_what_they_are_in_each_state() -> None:
    heads = {s: _card(CASES[s][0])[1] for s in (Status.TRAINING, Status.COMPLETED,
                                                 Status.FAILED)}
    assert "Metrics so far" in heads[Status.TRAINING]
    assert "*Metrics*" in heads[Status.COMPLETED]
    assert "Last metrics" in heads[Status.FAILED]


def test_spot_interruptions_read_true_in_each_state() -> None:
    interrupted = CASES[Status.TRAINING][1]
    assert "spot interruption 1 — resuming from checkpoint epoch 2" in _card(interrupted)[1]
    resumed = interrupted.model_copy(update={"secondary_status": "Training"})
    assert "resumed after 1 spot interruption" in _card(resumed)[1]
    assert "2 spot interruptions during the run" in _card(CASES[Status.STOPPING][1])[1]


# -- the objective first -----------------------------------------------------------------------


def test_card_lists_the_objective_metric_first() -> None:
    doc, _ = _card(CASES[Status.COMPLETED][0])
    metrics = next(s.text for s in doc.sections if s.text and "Metrics" in s.text)
    assert metrics.startswith("*Metrics*  *validation:accuracy=0.91*  epoch=3")


def test_card_progress_lists_the_objective_metric_first() -> None:
    doc, _ = _card(CASES[Status.TRAINING][0])
    assert any(s.text and "2/5 (40%) validation:accuracy=0.8 epoch=2" in s.text
               for s in doc.sections)


def test_status_overview_lists_the_objective_metric_first() -> None:
    training = CASES[Status.TRAINING][0]
    doc = presenters.status_doc(StatusOverview(now=NOW, running=[training]),
                                stuck_after=timedelta(minutes=30),
                                objectives={"toy": "validation:accuracy"})
    assert "(40%) validation:accuracy=0.8 epoch=2" in render_text(doc)


def test_diff_lists_the_objective_metric_first() -> None:
    a, b = CASES[Status.COMPLETED]
    deltas = [MetricDelta("epoch", 3.0, 3.0, None), MetricDelta("train:loss", 0.12, 0.12, None),
              MetricDelta("validation:accuracy", 0.91, 0.91, None)]
    doc = presenters.diff_doc(VersionDiff(a=a, b=b, changes={}, metrics=deltas),
                              objectives={"toy": "validation:accuracy"})
    rows = next(s.fields for s in doc.sections if s.text == "*Metrics*")
    assert [name for name, _ in rows] == ["validation:accuracy (objective)", "epoch",
                                          "train:loss"]


def test_versions_list_the_objective_metric_first() -> None:
    doc = presenters.versions_doc("exp", [CASES[Status.COMPLETED][0]],
                                  objectives={"toy": "validation:accuracy"})
    assert "validation:accuracy=0.91, epoch=3" in (doc.sections[0].text or "")


# -- the approval card -------------------------------------------------------------------------


def _approval(decision: Decision | None = None, decided_by: str | None = None,
              decided_at: datetime | None = None, decision_note: str = "") -> Approval:
    return Approval(id="req-1", job="exp", version=2, base_version=1, overrides={"epochs": 4},
                    pool="gpu-1", reason="reruns need approval", requested_by="U0ALICE",
                    requested_at=T0, expires_at=T0 + timedelta(days=1), channel="C0TEAM",
                    message_ts="1.0", decision=decision, decided_by=decided_by,
                    decided_at=decided_at, decision_note=decision_note)


def _fields(doc: Doc) -> dict[str, str]:
    return dict(doc.sections[0].fields)


def test_approval_card_shows_the_estimate_before_and_after_the_decision() -> None:
    awaiting = CASES[Status.AWAITING_APPROVAL][0]
    requested = presenters.approval_doc(_approval(), awaiting)
    approved = awaiting.transition(Status.QUEUED, at=_at(1)).model_copy(
        update={"approved_by": "U0BOSS"})
    decided = presenters.approval_doc(
        _approval(decision=Decision.APPROVED, decided_by="U0BOSS", decided_at=_at(1)), approved)
    assert _fields(requested)["Estimated cost"] == "≤ $1.50"
    assert _fields(decided)["Estimated cost"] == "≤ $1.50"


def test_a_decided_approval_card_says_who_asked_and_no_longer_expires() -> None:
    pending = presenters.approval_doc(_approval(), CASES[Status.AWAITING_APPROVAL][0])
    decided = presenters.approval_doc(
        _approval(decision=Decision.REJECTED, decided_by="U0BOSS", decided_at=_at(4),
                  decision_note="too costly"), CASES[Status.REJECTED][0])
    assert "asks to run" in pending.title and "Expires" in _fields(pending)
    assert "asked to run" in decided.title and "Expires" not in _fields(decided)
    assert not decided.buttons
    assert decided.context[0] == "rejected by <@U0BOSS> at 2026-03-02 12:04 UTC — too costly"


def test_an_expired_approval_card_names_no_decider() -> None:
    doc = presenters.approval_doc(
        _approval(decision=Decision.EXPIRED, decided_by="trainbot", decided_at=_at(1440),
                  decision_note="expired"), CASES[Status.REJECTED][0])
    assert doc.context[0] == "expired at 2026-03-03 12:00 UTC: nobody decided in time"
