"""A team's own (registered) algorithm works wherever a preset does: starts pin its digest,
reruns and presets run exactly that version, `algorithms` lists it, lineage shows its digest,
and the local compute refuses a container image algorithm before anything is created."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.local.compute import LocalCompute
from bot.commands import parse
from bot.dispatch import Actor, execute
from bot.domain import Algorithm, AlgorithmSource, InvalidInput, NotFound, Status
from bot.services import approvals, queries
from bot.services.context import Deps
from bot.services.presets import save_preset
from bot.services.requests import LaunchRequest, rerun, start_job
from bot.services.state_changes import record_state_change
from bot.slack import forms
from bot.slack.interactions import suggest_options
from bot.slack.notifier import SlackChat
from bot.views import data
from bot.views.text import render_text
from tests.fakes import FakeCompute, event
from tests.unit.conftest import ALGO

OLD, NEW = "a1" * 32, "b2" * 32
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn@sha256:" + "c3" * 32
REGISTERED_AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def custom(digest: str = OLD, *, algo_id: str = "churn", kind: str = "script",
           metric: str = "validation:accuracy") -> Algorithm:
    source = AlgorithmSource(
        kind=kind, digest=digest, owner="UOWNER", registered_at=REGISTERED_AT,  # type: ignore[arg-type]
        location=None if kind == "image" else f"file:///algorithms/{algo_id}/{digest}",
        image=IMAGE if kind == "image" else None)
    return ALGO.model_copy(update={
        "id": algo_id, "title": "Churn model", "description": "Our own churn classifier.",
        "objective": ALGO.objective.model_copy(update={"metric": metric}), "source": source})


def register(deps: Deps, algorithm: Algorithm) -> Algorithm:
    stored, _ = deps.store.register_algorithm(deps.scope, algorithm)
    return stored


def start(deps: Deps, algorithm: str = "churn", **kw: object) -> tuple:
    return start_job(deps, LaunchRequest(user="U1", algorithm=algorithm, pool="local-cpu",
                                         channel="C1", job_name="exp", **kw))  # type: ignore[arg-type]


class _RunsImages(FakeCompute):
    """A backend that runs container images (SageMaker, as far as the services can tell)."""

    def check_runnable(self, algorithm: Algorithm) -> None:
        return None

    def training_image(self, algorithm: Algorithm, pool: object) -> str | None:  # type: ignore[override]
        return "framework-image:2.5"


def test_a_start_records_the_registered_digest(deps: Deps) -> None:
    register(deps, custom())
    v, _ = start(deps)
    assert v.spec.algorithm == "churn" and v.spec.algorithm_digest == OLD
    assert v.status is Status.QUEUED and v.backend_job_name  # launched, like a preset
    assert deps.compute.launched[0].spec.algorithm_digest == OLD  # type: ignore[attr-defined]


def test_a_preset_start_records_no_digest(deps: Deps) -> None:
    v, _ = start(deps, "toy")
    assert v.spec.algorithm_digest is None


def test_a_rerun_runs_the_version_its_base_ran_after_a_newer_registration(deps: Deps) -> None:
    register(deps, custom(OLD))
    v1, _ = start(deps)
    register(deps, custom(NEW))
    v2, approval = rerun(deps, LaunchRequest(user="U1", params={"epochs": "5"}), job="exp")
    assert v2.spec.algorithm_digest == OLD and approval is not None
    _, launched = approvals.decide(deps, approval_id=approval.id, user="UAPPROVER",
                                   approve=True)
    assert launched.backend_job_name  # approved: launched, with exactly what v1 ran
    assert deps.compute.launched[-1].spec.algorithm_digest == OLD  # type: ignore[attr-defined]
    fresh, _ = start_job(deps, LaunchRequest(user="U1", algorithm="churn", pool="local-cpu",
                                             job_name="exp-new"))
    assert fresh.spec.algorithm_digest == NEW  # a new start takes the current version


def test_a_removed_algorithm_starts_nothing_new_but_its_versions_rerun(deps: Deps) -> None:
    register(deps, custom())
    start(deps)
    deps.store.hide_algorithm(deps.scope, "churn")
    with pytest.raises(NotFound, match="no algorithm `churn`"):
        start_job(deps, LaunchRequest(user="U1", algorithm="churn", job_name="other"))
    v2, _ = rerun(deps, LaunchRequest(user="UAPPROVER"), job="exp")
    assert v2.spec.algorithm_digest == OLD
    assert "churn" not in [a.id for a in deps.algorithms.all()]


def test_a_preset_saved_from_a_version_pins_its_digest(deps: Deps) -> None:
    register(deps, custom(OLD))
    start(deps)
    preset = save_preset(deps, user="U1", name="nightly", from_job="exp")
    assert preset.spec.algorithm_digest == OLD
    register(deps, custom(NEW))
    v, _ = start_job(deps, LaunchRequest(user="U1", preset="nightly", job_name="from-preset"))
    assert v.spec.algorithm_digest == OLD and v.spec.preset == "nightly"
    deps.store.hide_algorithm(deps.scope, "churn")
    with pytest.raises(NotFound):
        start_job(deps, LaunchRequest(user="U1", preset="nightly", job_name="after-removal"))


def test_a_preset_saved_from_arguments_pins_the_current_digest(deps: Deps) -> None:
    register(deps, custom(NEW))
    preset = save_preset(deps, user="U1", name="p", algorithm="churn", pool="local-cpu")
    assert preset.spec.algorithm_digest == NEW


def test_results_and_the_end_use_the_custom_objective(deps: Deps) -> None:
    register(deps, custom(metric="train:loss"))
    v, _ = start(deps)
    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed"))
    assert done is not None and done.status is Status.COMPLETED
    row = data.version_row(done, deps.algorithms.find)
    assert row["objective"]["metric"] == "train:loss"


def test_algorithms_lists_presets_then_custom_ones_with_owner_version_and_digest(
        deps: Deps) -> None:
    register(deps, custom())
    reply = execute(deps, parse("algorithms"), Actor(user="U1"))
    text = render_text(reply.doc)
    assert text.index("toy") < text.index("churn")
    churn = text[text.index("churn"):]
    assert "custom" in churn and "UOWNER" in churn
    assert f"sha256:{OLD[:12]}" in churn and "1.0.0" in churn
    assert "custom" not in text[:text.index("churn")]
    assert [a.id for a in reply.data] == ["toy", "churn"]  # type: ignore[attr-defined]


def test_algorithms_id_shows_a_custom_manifest(deps: Deps) -> None:
    register(deps, custom(kind="image"))
    reply = execute(deps, parse("algorithms churn"), Actor(user="U1"))
    text = render_text(reply.doc)
    assert "Churn model" in text and "custom" in text and "epochs" in text
    assert IMAGE in text and f"sha256:{OLD[:12]}" in text and "UOWNER" in text


def test_algorithm_json_says_custom_owner_digest_kind_image_and_registration(
        deps: Deps) -> None:
    preset = data.algorithm_data(ALGO)
    assert preset["custom"] is False and preset["kind"] == "preset"
    assert preset["owner"] is None and preset["digest"] is None and preset["image"] is None
    assert preset["registered_at"] is None and preset["id"] == "toy"
    assert "source" not in preset
    mine = data.algorithm_data(custom(kind="image"))
    assert mine["custom"] is True and mine["kind"] == "image" and mine["owner"] == "UOWNER"
    assert mine["digest"] == OLD and mine["image"] == IMAGE
    assert mine["registered_at"] == REGISTERED_AT.isoformat()
    assert set(preset) == set(mine)  # the same fields for every algorithm


def test_lineage_shows_the_registered_digest_and_owner(deps: Deps) -> None:
    register(deps, custom())
    start(deps)
    [node] = [n for n in queries.lineage(deps, "exp").nodes if n.kind == "algorithm"]
    assert node.label == "churn@1.0.0"
    assert f"source sha256:{OLD[:12]}" in (node.detail or "") and "owner UOWNER" in node.detail


def test_lineage_of_an_image_algorithm_names_its_image_with_its_digest(deps: Deps) -> None:
    deps.compute = _RunsImages()
    register(deps, custom(kind="image"))
    start(deps)
    [node] = [n for n in queries.lineage(deps, "exp").nodes if n.kind == "algorithm"]
    assert f"image {IMAGE}" in (node.detail or "")
    assert "framework-image" not in (node.detail or "")  # its own image, not a framework's


def test_an_image_algorithm_is_refused_on_local_compute_before_anything_is_created(
        deps: Deps, tmp_path: Path) -> None:
    local = LocalCompute(tmp_path / "runs", algorithms_root=tmp_path / "algorithms",
                         gpu_names=[])
    deps.compute = local
    register(deps, custom(kind="image"))
    try:
        with pytest.raises(InvalidInput) as refused:
            start(deps)
    finally:
        local.close()
    assert refused.value.message == ("`churn` is a container image algorithm: it runs on "
                                     "SageMaker, and this bot trains locally.")
    assert refused.value.hint == (
        "Ask an admin to run trainbot with TRAINBOT_COMPUTE=sagemaker, or register the "
        "algorithm's source folder (script mode) instead.")
    assert deps.store.list_jobs(limit=10) == []
    assert not (tmp_path / "runs").exists()


def test_local_compute_runs_presets_and_script_algorithms(tmp_path: Path) -> None:
    local = LocalCompute(tmp_path / "runs", algorithms_root=tmp_path, gpu_names=[])
    try:
        local.check_runnable(ALGO)
        local.check_runnable(custom())
    finally:
        local.close()


def test_versions_put_the_custom_objective_first(deps: Deps) -> None:
    register(deps, custom(metric="train:loss"))
    v1, _ = start(deps)
    record_state_change(deps, event(v1.backend_job_name or "", "Completed", "Completed",
                                    FinalMetricDataList=[
                                        {"MetricName": "validation:accuracy", "Value": 0.9},
                                        {"MetricName": "train:loss", "Value": 0.2}]))
    text = render_text(execute(deps, parse("versions exp"), Actor(user="U1")).doc)
    assert "train:loss=0.2, validation:accuracy=0.9" in text  # the objective comes first


class _SlackClient:
    def __init__(self) -> None:
        self.posted: list[dict] = []

    def chat_postMessage(self, **kwargs: object) -> dict:
        self.posted.append(kwargs)
        return {"channel": kwargs["channel"], "ts": "1.1"}


def test_the_slack_chat_knows_an_algorithm_registered_after_it_was_built(deps: Deps) -> None:
    client = _SlackClient()
    chat = SlackChat(client, algorithm_of=deps.algorithms.find)
    register(deps, custom(metric="train:loss"))
    v, _ = start(deps)
    done = record_state_change(deps, event(v.backend_job_name or "", "Completed", "Completed",
                                           FinalMetricDataList=[
                                               {"MetricName": "train:loss", "Value": 0.2}]))
    assert done is not None
    chat.announce(done)
    assert "train:loss=0.2" in str(client.posted[-1]["text"])


def test_the_start_form_offers_custom_algorithms_and_pins_the_digest(deps: Deps) -> None:
    register(deps, custom())
    view = forms.start_choice_view(deps.algorithms.all(), list(deps.catalog.pools.values()),
                                   [], {})
    [group] = view["blocks"][0]["element"]["option_groups"]
    assert [(o["value"], o["text"]["text"]) for o in group["options"]] == [
        ("algo:toy", "Toy"), ("algo:churn", "Churn model (custom)")]
    form = forms.hyperparameter_view(deps.algorithms.get("churn"), {}, {"channel": "C1"},
                                     callback_id="start_form", title="Start training")
    assert json.loads(form["private_metadata"])["digest"] == OLD


def test_a_long_choice_menu_lists_the_choices_of_the_version_the_form_pinned(
        deps: Deps) -> None:
    register(deps, custom(OLD))
    wider = [h.model_copy(update={"choices": ["adam", "sgd", "lion"]})
             if h.name == "optimizer" else h for h in ALGO.hyperparameters]
    register(deps, custom(NEW).model_copy(update={"hyperparameters": wider}))

    def menu(digest: str) -> list[str]:
        meta = {"channel": "C1", "algorithm": "churn", "digest": digest}
        body = {"block_id": "hp:optimizer", "value": "",
                "view": {"private_metadata": json.dumps(meta)}}
        return [o["value"] for o in suggest_options(lambda: deps, body)["options"]]

    assert menu(OLD) == ["adam", "sgd"]
    assert menu(NEW) == ["adam", "sgd", "lion"]
