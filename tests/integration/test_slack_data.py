"""Data straight from Slack, through the bot's HTTP front door (what `trainbot serve` runs):
a CSV shared in the channel, named by its permalink, trains to completion; lineage names the
Slack file and its sha256; a file the user can't see is refused before anything is created."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.services.queries import lineage
from tests.integration.slack_harness import CHANNEL, Harness

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "custom-algorithm" / "data" / "sample.csv"
USER, OTHER = "U0LOCAL1", "U0LOCAL3"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, algorithms=["tabular-classification"], tensorboard=False,
                rerun_approval="never")
    try:
        yield h
    finally:
        h.close()


def test_a_csv_shared_in_the_channel_trains_by_its_permalink(harness: Harness) -> None:
    content = SAMPLE.read_bytes()
    shared = harness.slack.share_file(CHANNEL, USER, "churn.csv", content)

    harness.command(f"start tabular-classification label_column=label --name churn "
                    f"--data train={shared['permalink']}")
    done = harness.wait_status("churn", "COMPLETED", timeout=90)

    digest = hashlib.sha256(content).hexdigest()
    stored = done.spec.data["train"]
    assert stored.startswith("file://") and digest in stored
    assert Path(stored.removeprefix("file://")).read_bytes() == content
    origin = done.spec.data_origin["train"]
    assert origin == f"slack:{shared['id']} churn.csv sha256:{digest}"
    [data_node] = [n for n in lineage(harness.bot.deps, "churn").nodes if n.kind == "data"]
    assert f"slack:{shared['id']}" in data_node.detail and digest in data_node.detail
    assert done.metrics["validation:accuracy"] > 0.7  # always "no" scores 0.70

    # The same file again (its bare id this time) is stored once: the same place.
    harness.command(f"rerun churn --data train={shared['id']}")
    again = harness.wait_status("churn", "COMPLETED", number=2, timeout=90)
    assert again.spec.data["train"] == stored


def test_a_file_the_user_cannot_see_is_refused_before_anything_is_created(
        harness: Harness) -> None:
    elsewhere = harness.slack.share_file("C0ELSEWHERE", OTHER, "secret.csv",
                                         SAMPLE.read_bytes())

    harness.command(f"start tabular-classification label_column=label --name nope "
                    f"--data train={elsewhere['permalink']}")
    told = harness.wait_ephemeral("share it in this channel first")

    assert "secret.csv" not in json.loads(told)["text"]
    assert harness.bot.deps.store.list_jobs() == []
    # A file id nobody has gets the very same answer: whether a file exists isn't told.
    harness.command("start tabular-classification label_column=label --name nope2 "
                    "--data train=F0NOSUCHFILE")
    answers = harness.wait(lambda: (lambda t: t if len(t) == 2 else None)(
        [json.loads(e)["text"] for e in harness.ephemeral_texts()
         if "share it in this channel first" in e]))
    assert answers[0] == answers[1]


def test_the_start_form_takes_a_file_picked_in_its_file_field(harness: Harness) -> None:
    from bot.localslack.modal_values import build_view_values

    picked = harness.slack.upload_file(USER, "picked.csv", SAMPLE.read_bytes())
    harness.command("start")
    choose = harness.wait(lambda: next((v for v in harness.slack.views()
                                        if v["callback_id"] == "start_choose"), None))
    _, resp = harness.submit(choose, build_view_values(choose, {
        "source": "algo:tabular-classification", "pool": "local-cpu", "name": "picked"}))
    form = resp["view"]
    form["id"] = "VFORM2"
    values = build_view_values(form, {"label_column": "label", "data_file:train": picked["id"]},
                               files=lambda _name: picked)
    _, ok = harness.submit(form, values)

    assert ok["response_action"] == "clear"
    done = harness.wait_status("picked", "COMPLETED", timeout=90)
    assert done.spec.data_origin["train"].startswith(f"slack:{picked['id']} picked.csv sha256:")


def test_a_stored_file_cannot_be_named_by_its_path(harness: Harness) -> None:
    """Another user's file, once fetched, is kept apart from the data folders: naming where
    it is stored (or the whole store) is refused like any path outside them."""
    shared = harness.slack.share_file(CHANNEL, OTHER, "payroll.csv", SAMPLE.read_bytes())
    harness.command(f"start tabular-classification label_column=label --name theirs "
                    f"--data train={shared['id']}", user=OTHER)
    stored = harness.wait_status("theirs", "COMPLETED", timeout=90).spec.data["train"]
    [node] = [n for n in lineage(harness.bot.deps, "theirs").nodes if n.kind == "data"]
    assert stored not in node.detail and node.link is None  # lineage names the file, not where

    store = str(Path(stored.removeprefix("file://")).parent.parent)
    for uri in (stored, f"file://{store}"):
        harness.command(f"start tabular-classification label_column=label --data train={uri}")
    told = harness.wait(lambda: (lambda t: t if len(t) == 2 else None)(
        [e for e in harness.ephemeral_texts(USER) if "keeps its own files" in e]))
    assert len(told) == 2
    assert [j.name for j in harness.bot.deps.store.list_jobs()] == ["theirs"]
