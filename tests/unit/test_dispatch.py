"""The one command path: buttons map to the commands `/train` types, and what dispatch does
with a few of them (eval's thread link, preset delete's confirm step, stuck versions, the
image in a lineage)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.commands import Command, PresetDelete, parse
from bot.dispatch import Actor, execute
from bot.domain import Algorithm, ConfigError, JobVersion, ResourcePool
from bot.services import queries
from bot.services.context import Deps
from bot.services.presets import save_preset
from bot.services.requests import LaunchRequest, start_job
from bot.services.state_changes import record_state_change
from bot.slack.interactions import BUTTON_COMMANDS, press
from bot.views.text import render_text
from tests.fakes import FakeCompute, event


def _start(deps: Deps, name: str = "exp1") -> JobVersion:
    version, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="local-cpu",
                                               channel="C1", job_name=name))
    return version


@pytest.mark.parametrize(("action_id", "value", "typed"), [
    ("show_lineage", "exp1:2", "lineage exp1 v2"),
    ("show_logs", "exp1:2", "logs exp1 v2"),
    ("show_eval", "exp1:2", "eval exp1 v2"),
    ("stop_version", "exp1:2", "stop exp1 v2"),
    ("approve_request", "abcd1234", "approve abcd1234"),
    ("start_preset", "nightly", "start --preset nightly"),
])
def test_a_button_is_the_command_it_stands_for(action_id: str, value: str, typed: str) -> None:
    assert BUTTON_COMMANDS[action_id](value) == parse(typed)


def test_the_delete_button_is_a_confirmed_delete() -> None:
    assert BUTTON_COMMANDS["delete_preset"]("p1") == PresetDelete(name="p1", confirmed=True)


class _Responses:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def _press_body(action_id: str, value: str, *, user: str = "U1", channel: str = "C1") -> dict:
    return {"user": {"id": user}, "channel": {"id": channel}, "team": {"id": "T1"},
            "trigger_id": "1.2.3", "actions": [{"action_id": action_id, "value": value}]}


def test_the_stop_button_and_the_stop_command_answer_alike(deps: Deps) -> None:
    _start(deps, "a")
    _start(deps, "b")
    typed = execute(deps, parse("stop a v1"), Actor(user="U1", channel="C1"))
    respond = _Responses()
    press("stop_version", lambda: deps, _press_body("stop_version", "b:1"), respond)
    [answer] = respond.sent
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == typed.doc.title.replace("a v1", "b v1")
    assert deps.store.get_version("b", 1).status is deps.store.get_version("a", 1).status


def test_a_button_outside_the_allowed_channels_runs_nothing(deps: Deps) -> None:
    before = _start(deps, "a")
    deps.policy.channels = ["C0ELSEWHERE"]
    respond = _Responses()
    press("stop_version", lambda: deps, _press_body("stop_version", "a:1"), respond)
    assert "doesn't take requests from here" in respond.sent[0]["text"]
    assert deps.store.get_version("a", 1).status is before.status


def test_a_refused_button_says_why(deps: Deps) -> None:
    before = _start(deps, "a")
    respond = _Responses()
    press("stop_version", lambda: deps, _press_body("stop_version", "a:1", user="U0STRANGER"),
          respond)
    assert "can stop it" in respond.sent[0]["text"]
    assert deps.store.get_version("a", 1).status is before.status


def _with_confusion_matrix(deps: Deps, v: JobVersion) -> JobVersion:
    return deps.store.save_version(v.model_copy(update={"evaluation": {
        "classes": ["a", "b"], "confusion_matrix": [[5, 1], [0, 4]]}}))


def test_eval_links_to_the_pictures_in_the_cards_thread(deps: Deps) -> None:
    v = _with_confusion_matrix(deps, _start(deps))
    reply = execute(deps, parse("eval exp1"), Actor(user="U1", channel="C1"))
    link = deps.chat.thread_link(v)
    assert link and any(link in line and "Confusion matrix" in line
                        for line in reply.doc.context)


def test_eval_without_a_confusion_matrix_has_no_thread_line(deps: Deps) -> None:
    _start(deps)
    reply = execute(deps, parse("eval exp1"), Actor(user="U1", channel="C1"))
    assert not any("Confusion matrix" in line for line in reply.doc.context)


def test_preset_delete_typed_in_slack_asks_first_and_the_button_deletes(deps: Deps) -> None:
    save_preset(deps, user="U1", name="p1", algorithm="toy")
    slack = Actor(user="U1", channel="C1", interactive=True)
    asked = execute(deps, parse("preset delete p1"), slack)
    assert asked.doc.buttons and deps.store.list_presets(deps.scope)
    done = execute(deps, BUTTON_COMMANDS["delete_preset"]("p1"), slack)
    assert "deleted" in done.doc.title and not deps.store.list_presets(deps.scope)


def test_the_cli_deletes_a_preset_at_once(deps: Deps) -> None:
    save_preset(deps, user="U1", name="p1", algorithm="toy")
    execute(deps, parse("preset delete p1"), Actor(user="U1", trusted=True))
    assert not deps.store.list_presets(deps.scope)


def test_status_uses_the_stuck_threshold_of_deps(deps: Deps) -> None:
    v = _start(deps)
    record_state_change(deps, event(v.backend_job_name or "", "InProgress", "Training"))
    deps.clock.advance(minutes=20)  # type: ignore[attr-defined]
    assert queries.status_overview(deps).stuck == []
    deps.stuck_after = deps.stuck_after / 3
    assert [s.label for s in queries.status_overview(deps).stuck] == ["exp1 v1"]
    text = render_text(execute(deps, parse("status"), Actor(user="U1")).doc)
    assert "stuck = no progress for 10" in text


class _ImageCompute(FakeCompute):
    def __init__(self, image: str | Exception | None) -> None:
        super().__init__()
        self.image = image

    def training_image(self, algorithm: Algorithm, pool: ResourcePool) -> str | None:
        if isinstance(self.image, Exception):
            raise self.image
        return self.image


@pytest.mark.parametrize(("image", "shown"), [
    ("123.dkr.ecr/toy:gpu", "image 123.dkr.ecr/toy:gpu"),
    (ConfigError("toy isn't published"), "image: not published"),
    (None, None),
])
def test_lineage_names_the_image_the_backend_runs(deps: Deps, image: str | Exception | None,
                                                  shown: str | None) -> None:
    deps.compute = _ImageCompute(image)
    _start(deps)
    [algorithm] = [n for n in queries.lineage(deps, "exp1").nodes if n.kind == "algorithm"]
    if shown is None:
        assert "image" not in (algorithm.detail or "")
    else:
        assert shown in (algorithm.detail or "")


def test_every_command_runs(deps: Deps) -> None:
    """Dispatch has a handler for each command class (mypy checks the match is exhaustive;
    this runs the read-only ones)."""
    v = _start(deps)
    record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    _start(deps, "exp2")
    commands: list[Command] = [parse(t) for t in (
        "help", "help start", "algorithms", "algorithms toy", "pools", "start", "status",
        "status exp1", "versions exp1", "show exp1", "lineage exp1", "eval exp1",
        "logs exp1", "tb exp1", "preset list")]
    for cmd in commands:
        assert execute(deps, cmd, Actor(user="U1")).doc.title, cmd
