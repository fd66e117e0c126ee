"""What the channel hears: launch before the card, the outbox, hints, spot interruptions."""

from __future__ import annotations

import threading
import time

import pytest

from bot.domain import ChatUndelivered, JobVersion, Status
from bot.services.context import Deps
from bot.services.reconcile import reconcile
from bot.services.requests import LaunchRequest, start_job
from bot.services.state_changes import record_state_change
from tests.fakes import RecordingChat, event


def _start(deps: Deps, name: str = "exp1", channel: str | None = "C1") -> JobVersion:
    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="local-cpu",
                                               channel=channel, job_name=name))
    return version


def _chat(deps: Deps) -> RecordingChat:
    assert isinstance(deps.chat, RecordingChat)
    return deps.chat


class OrderingChat(RecordingChat):
    """Records, at the moment the card is posted, what the backend had been asked."""

    def __init__(self, deps: Deps) -> None:
        super().__init__()
        self.deps = deps
        self.launched_before_card: int | None = None

    def version_created(self, version):  # type: ignore[no-untyped-def]
        self.launched_before_card = len(self.deps.compute.launched)  # type: ignore[attr-defined]
        return super().version_created(version)


class RefusingChat(RecordingChat):
    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def version_created(self, version):  # type: ignore[no-untyped-def]
        raise ChatUndelivered(self.code)


def test_the_launch_does_not_wait_for_the_card(deps: Deps) -> None:
    deps.chat = chat = OrderingChat(deps)
    v = _start(deps)
    assert chat.launched_before_card == 1  # CreateTrainingJob (here: the fake) came first
    assert v.message_ts == "1.1" and v.backend_job_name


def test_a_refused_card_leaves_its_reason_and_the_job_runs(deps: Deps) -> None:
    deps.chat = RefusingChat("is_archived")
    v = _start(deps)
    assert v.card_error == "is_archived" and v.message_ts is None
    assert deps.compute.launched  # type: ignore[attr-defined]


def test_an_announcement_slack_refused_is_kept_and_delivered_by_the_reconcile(
    deps: Deps,
) -> None:
    v = _start(deps)
    chat = _chat(deps)
    chat.refuse_announcements = 1
    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    assert done is not None and done.status is Status.COMPLETED
    assert done.outbox == ["announce"]
    assert deps.store.list_undelivered() == [done]
    assert not [c for c in chat.calls if c[0] == "announced"]

    summary = reconcile(deps)

    assert summary.delivered == ["exp1 v1"]
    assert [c for c in chat.calls if c[0] == "announced"] == [
        ("announced", ("exp1 v1", Status.COMPLETED))]
    assert deps.store.get_version("exp1", 1).outbox == []
    reconcile(deps)
    assert len([c for c in chat.calls if c[0] == "announced"]) == 1  # once


def test_a_redelivered_terminal_event_does_not_announce_twice(deps: Deps) -> None:
    v = _start(deps)
    for _ in range(3):
        record_state_change(deps, event(v.backend_job_name or "", "Failed", "Failed",
                                        FailureReason="in <module>"))
    assert len([c for c in _chat(deps).calls if c[0] == "announced"]) == 1


def test_a_version_without_a_channel_has_nothing_to_announce(deps: Deps) -> None:
    v = _start(deps, channel=None)
    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    assert done is not None and done.outbox == []


def _spot_events(name: str) -> list[tuple[str, str, list[str]]]:
    """Training → Interrupted → Starting → Training → Completed, each with the transitions
    SageMaker lists in the event's SecondaryStatusTransitions."""
    seen: list[str] = []
    out = []
    for status, secondary in (("InProgress", "Starting"), ("InProgress", "Training"),
                              ("InProgress", "Interrupted"), ("InProgress", "Starting"),
                              ("InProgress", "Training"), ("Completed", "Completed")):
        seen.append(secondary)
        out.append((status, secondary, list(seen)))
    return out


def test_a_spot_interruption_is_not_a_stop(deps: Deps) -> None:
    v = _start(deps)
    name = v.backend_job_name or ""
    shown: list[tuple[Status, str | None, int]] = []
    for status, secondary, transitions in _spot_events(name):
        deps.clock.advance(minutes=1)  # type: ignore[attr-defined]
        after = record_state_change(deps, event(
            name, status, secondary,
            SecondaryStatusTransitions=[{"Status": s, "StartTime": 1_770_000_000_000 + m}
                                        for m, s in enumerate(transitions)],
            LastModifiedTime=deps.clock.now().timestamp() * 1000))
        assert after is not None
        shown.append((after.status, after.secondary_status, after.spot_interruptions))
    assert Status.STOPPING not in [s for s, _, _ in shown]
    assert shown[2] == (Status.TRAINING, "Interrupted", 1)
    assert shown[3] == (Status.TRAINING, "Starting", 1)
    assert shown[-1][0] is Status.COMPLETED


def test_a_resumed_spot_job_is_not_stuck(deps: Deps) -> None:
    v = _start(deps)
    name = v.backend_job_name or ""
    record_state_change(deps, event(name, "InProgress", "Training"))
    deps.clock.advance(minutes=35)  # type: ignore[attr-defined]
    record_state_change(deps, event(name, "InProgress", "Interrupted",
                                    LastModifiedTime=deps.clock.now().timestamp() * 1000))
    assert reconcile(deps).stuck == []


def test_an_older_event_does_not_overwrite_a_newer_secondary_status(deps: Deps) -> None:
    v = _start(deps)
    name = v.backend_job_name or ""
    now = deps.clock.now().timestamp() * 1000
    record_state_change(deps, event(name, "InProgress", "Training", LastModifiedTime=now))
    record_state_change(deps, event(name, "InProgress", "Interrupted",
                                    LastModifiedTime=now + 60_000))
    record_state_change(deps, event(name, "InProgress", "Downloading", LastModifiedTime=now - 1))
    assert deps.store.get_version("exp1", 1).secondary_status == "Interrupted"


def test_a_failed_launch_is_announced_without_waiting_for_a_reconcile(deps: Deps) -> None:
    from bot.domain import BackendError

    deps.compute.fail_with = BackendError("no capacity")  # type: ignore[attr-defined]
    with pytest.raises(BackendError):
        _start(deps)
    v = deps.store.get_version(deps.store.list_jobs()[0].name, 1)
    assert v.status is Status.FAILED and v.outbox == []
    assert [c for c in _chat(deps).calls if c[0] == "announced"] == [
        ("announced", (v.label, Status.FAILED))]


class SlowChat(RecordingChat):
    def announce(self, version):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        super().announce(version)


def test_two_deliverers_at_once_announce_once(deps: Deps) -> None:
    from bot.services.versions import deliver_outbox

    deps.chat = SlowChat()
    v = _start(deps)
    deps.chat.refuse_announcements = 1  # the event's own delivery fails: it stays in the outbox
    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    assert done is not None and done.outbox == ["announce"]
    threads = [threading.Thread(target=deliver_outbox, args=(deps, done)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([c for c in deps.chat.calls if c[0] == "announced"]) == 1
    assert deps.store.get_version("exp1", 1).outbox == []


def test_a_claim_left_by_a_crash_expires(deps: Deps) -> None:
    from bot.services.versions import ANNOUNCE_LEASE, deliver_outbox

    v = _start(deps)
    _chat(deps).refuse_announcements = 1
    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    assert done is not None
    until = (deps.clock.now() + ANNOUNCE_LEASE).isoformat()
    held = f"announce@{until}#crashed"
    stale = deps.store.save_version(done.model_copy(update={"outbox": [held]}))
    assert deliver_outbox(deps, stale).outbox == [held]  # someone holds it
    deps.clock.advance(minutes=3)  # type: ignore[attr-defined]
    assert deliver_outbox(deps, stale).outbox == []
    assert len([c for c in _chat(deps).calls if c[0] == "announced"]) == 1


def test_a_retried_request_for_approval_names_its_request_again(deps: Deps) -> None:
    from bot.services.requests import rerun

    v = _start(deps)
    record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    req = LaunchRequest(user="U1", params={"epochs": 5}, channel="C1", request_key="T:trig")
    first, approval = rerun(deps, req, job="exp1")
    again, approval_again = rerun(deps, req, job="exp1")
    assert first.status is Status.AWAITING_APPROVAL and approval is not None
    assert again.number == first.number and approval_again is not None
    assert approval_again.id == approval.id


def test_versions_show_the_objective_metric_first(deps: Deps) -> None:
    from bot.commands import parse
    from bot.dispatch import Actor, execute
    from bot.views.text import render_text

    v = _start(deps)
    record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed",
                                    FinalMetricDataList=[
                                        {"MetricName": "train:loss", "Value": 0.3},
                                        {"MetricName": "validation:accuracy", "Value": 0.9}]))
    reply = execute(deps, parse("versions exp1"), Actor(user="U1"))
    line = next(x for x in render_text(reply.doc).splitlines() if "v1" in x)
    assert line.index("validation:accuracy=0.9") < line.index("train:loss")
