"""Models through the one command path: buttons, replies, `--json` objects, the card."""

from __future__ import annotations

import json

import pytest

from bot.cli import _reply_json
from bot.commands import parse
from bot.dispatch import Actor, execute
from bot.domain import JobVersion, ModelStatus
from bot.localslack.strict import StrictRules
from bot.services import queries
from bot.services.context import Deps
from bot.services.models import decide_model, register_model
from bot.services.requests import LaunchRequest, start_job
from bot.services.state_changes import record_state_change
from bot.slack.blocks import fallback_text, render_blocks
from bot.slack.forms import model_reason_view
from bot.slack.interactions import BUTTON_COMMANDS
from bot.views.models import model_card
from bot.views.presenters import card_buttons
from bot.views.text import render_text
from tests.fakes import event

MODEL_FIELDS = {"group", "number", "label", "job", "version", "status", "objective", "metrics",
                "artifact", "image", "algorithm", "algorithm_version", "algorithm_digest",
                "lineage", "registered_by", "registered_at", "decided_by", "decided_at", "note",
                "package_arn"}


def _completed(deps: Deps, name: str = "exp1", *, artifact: bool = True) -> JobVersion:
    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="local-cpu",
                                         channel="C1", job_name=name))
    detail: dict[str, object] = {"FinalMetricDataList": [
        {"MetricName": "validation:accuracy", "Value": 0.93}]}
    if artifact:
        detail["ModelArtifacts"] = {"S3ModelArtifacts": f"s3://bkt/{name}/model.tar.gz"}
    record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed", **detail))
    return deps.store.get_version(name, v.number)


def _run(deps: Deps, text: str, user: str = "U1") -> object:
    cmd = parse(text)
    return _reply_json(deps, cmd, execute(deps, cmd, Actor(user=user, channel="C1")))


@pytest.mark.parametrize(("action_id", "value", "typed"), [
    ("register_model", "exp1:2", "model register exp1 v2"),
    ("approve_model", "churn-models:3", "model approve churn-models v3"),
])
def test_a_model_button_is_the_command_it_stands_for(action_id: str, value: str,
                                                     typed: str) -> None:
    assert BUTTON_COMMANDS[action_id](value) == parse(typed)


def test_register_answers_then_says_it_was_registered_already(deps: Deps) -> None:
    _completed(deps)
    first = execute(deps, parse("model register exp1"), Actor(user="U1", channel="C1"))
    assert first.doc.title.endswith(
        "Registered model *exp1 v1* from training version *exp1 v1* — pending approval.")
    assert not first.doc.buttons  # the card in the channel has them
    again = execute(deps, parse("model register exp1 v1"), Actor(user="U1", channel="C1"))
    assert "already registered in *exp1*: model *exp1 v1* (PendingManualApproval)" in \
        again.doc.title


def test_json_of_register_models_and_decisions(deps: Deps) -> None:
    _completed(deps)
    _completed(deps, "exp2")
    registered = _run(deps, "model register exp1")
    assert isinstance(registered, dict)
    assert set(registered) == MODEL_FIELDS | {"created"} and registered["created"] is True
    assert registered["status"] == "PendingManualApproval"
    assert registered["objective"] == {"metric": "validation:accuracy", "value": 0.93}
    assert registered["artifact"] == "s3://bkt/exp1/model.tar.gz"
    _run(deps, "model register exp2 --group exp1")

    groups = _run(deps, "models")
    assert groups == [{"group": "exp1", "versions": [
        {k: v for k, v in m.items() if k != "created"} for m in (
            registered, _run(deps, "model register exp2 --group exp1"))]}]
    assert [m["label"] for m in _run(deps, "models exp1")] == ["exp1 v1", "exp1 v2"]  # type: ignore[attr-defined]

    approved = _run(deps, "model approve exp1 v1 --note 'looks good'", user="UAPPROVER")
    assert isinstance(approved, dict) and set(approved) == MODEL_FIELDS
    assert (approved["status"], approved["decided_by"], approved["note"]) == (
        "Approved", "UAPPROVER", "looks good")
    rejected = _run(deps, "model reject exp1 v2 --reason overfits", user="UADMIN")
    assert isinstance(rejected, dict) and rejected["status"] == "Rejected"
    json.dumps(groups)  # plain JSON all the way down


def test_models_text_lists_status_objective_and_source(deps: Deps) -> None:
    none_yet = render_text(execute(deps, parse("models"), Actor(user="U1")).doc)
    assert "No models are registered yet" in none_yet
    _completed(deps)
    register_model(deps, "exp1", 1, user="U1", channel="C1")
    decide_model(deps, "exp1", 1, user="UAPPROVER", approve=True)
    text = render_text(execute(deps, parse("models"), Actor(user="U1")).doc)
    assert "exp1 (1)" in text and "v1 ✔ approved by @UAPPROVER" in text
    assert "validation:accuracy = 0.93" in text and "from exp1 v1" in text


def test_lineage_of_a_version_shows_its_models(deps: Deps) -> None:
    _completed(deps)
    register_model(deps, "exp1", 1, user="U1", channel="C1")
    text = render_text(execute(deps, parse("lineage exp1 v1"), Actor(user="U1")).doc)
    assert "model exp1 v1 — PendingManualApproval" in text


def test_only_a_completed_version_with_a_model_has_the_register_button(deps: Deps) -> None:
    done = _completed(deps)
    bare = _completed(deps, "exp2", artifact=False)
    running, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="local-cpu",
                                               channel="C1", job_name="exp3"))

    def ids(v: JobVersion) -> list[str]:
        return [b.action_id for b in card_buttons(v, queries.links(deps, v))]

    assert "register_model" in ids(done)
    assert "register_model" not in ids(bare) and "register_model" not in ids(running)
    [button] = [b for b in card_buttons(done, queries.links(deps, done))
                if b.action_id == "register_model"]
    assert button.value == "exp1:1"


def test_the_model_card_passes_slack_and_loses_its_buttons_once_decided(deps: Deps) -> None:
    _completed(deps)
    m = register_model(deps, "exp1", 1, user="U1", channel="C1").model
    card = model_card(m)
    StrictRules().check_message({"text": fallback_text(card), "blocks": render_blocks(card)})
    blocks = json.dumps(render_blocks(card))
    assert '"approve_model"' in blocks and '"reject_model"' in blocks and "exp1:1" in blocks
    assert "validation:accuracy = *0.93*" in blocks and "*exp1 v1*" in blocks
    assert "train=`builtin:digits`" in blocks  # the lineage summary

    decided = decide_model(deps, "exp1", 1, user="UAPPROVER", approve=False,
                           note="<b>overfits</b> & more")
    card = model_card(decided)
    StrictRules().check_message({"text": fallback_text(card), "blocks": render_blocks(card)})
    blocks = json.dumps(render_blocks(card))
    assert '"actions"' not in blocks
    assert "rejected by <@UAPPROVER>" in blocks and "&lt;b&gt;overfits" in blocks
    assert decided.status is ModelStatus.REJECTED


def test_the_reject_form_carries_the_model(deps: Deps) -> None:
    view = model_reason_view("exp1", 2, {"channel": "C1"})
    StrictRules().check_view(view)
    assert view["callback_id"] == "reject_model_reason"
    assert json.loads(view["private_metadata"]) == {"channel": "C1", "group": "exp1",
                                                    "number": 2}
