"""What the channel hears: launch before the card, the outbox, hints, spot interruptions."""

from __future__ import annotations

from datetime import timedelta

from bot.domain import ChatUndelivered, JobVersion, Status
from bot.services.context import Deps
from bot.services.launching import LaunchRequest, start_job
from bot.services.reconcile import reconcile
from bot.services.state_changes import record_state_change
from tests.fakes import RecordingChat, event

STUCK = timedelta(minutes=30)


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

    summary = reconcile(deps, stuck_after=STUCK)

    assert summary.delivered == ["exp1 v1"]
    assert [c for c in chat.calls if c[0] == "announced"] == [
        ("announced", ("exp1 v1", Status.COMPLETED))]
    assert deps.store.get_version("exp1", 1).outbox == []
    reconcile(deps, stuck_after=STUCK)
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
    assert reconcile(deps, stuck_after=STUCK).stuck == []


def test_an_older_event_does_not_overwrite_a_newer_secondary_status(deps: Deps) -> None:
    v = _start(deps)
    name = v.backend_job_name or ""
    now = deps.clock.now().timestamp() * 1000
    record_state_change(deps, event(name, "InProgress", "Training", LastModifiedTime=now))
    record_state_change(deps, event(name, "InProgress", "Interrupted",
                                    LastModifiedTime=now + 60_000))
    record_state_change(deps, event(name, "InProgress", "Downloading", LastModifiedTime=now - 1))
    assert deps.store.get_version("exp1", 1).secondary_status == "Interrupted"
