"""What a sweep's card and thread messages say, checked by Slack's own rules (the strict local
Slack's: slack_sdk's Block Kit models, limits, escaping) in every state, with 0, 1 and 8
trials, and with hostile or huge search spaces."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.domain.sweep import Sweep, SweepStatus, Trial
from bot.domain.sweep_space import Choices, FloatRange, IntRange, SweepSpec
from bot.localslack.strict import StrictRules
from bot.slack.blocks import fallback_text, render_blocks
from bot.views.sweeps import (
    STOP_SWEEP,
    leaderboard_text,
    new_best_text,
    sweep_card,
    sweep_ended_text,
    sweep_line,
)
from bot.views.text import render_text

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> <https://evil.example|x> `tick` &"
SPEC = SweepSpec(
    algorithm="tabular-classification", algorithm_version="1.0.0",
    ranges=[FloatRange(name="learning_rate", low=0.01, high=0.3, log=True),
            IntRange(name="max_leaf_nodes", low=15, high=255),
            Choices(name="note", values=["plain", HOSTILE])],
    trials=10, parallel=2, objective_metric="validation:accuracy", objective_goal="maximize",
    pool="cpu-small")
STATUSES = [SweepStatus.RUNNING, SweepStatus.STOPPING, SweepStatus.COMPLETED,
            SweepStatus.STOPPED, SweepStatus.FAILED]


def _sweep(status: SweepStatus = SweepStatus.RUNNING, spec: SweepSpec = SPEC,
           **kw: Any) -> Sweep:
    fields: dict[str, Any] = {"origin": "preset fast", "failure_reason": (
        "no trial completed" if status is SweepStatus.FAILED else None)}
    return Sweep(name="sw1", spec=spec, status=status, requested_by="U0ALICE", created_at=T0,
                 channel="C0TEAM", message_ts="1.000", estimated_cost_usd=1.25,
                 **(fields | kw))


def _trial(n: int, state: str = "completed", objective: float | None = None,
           note: str = "plain", **kw: Any) -> Trial:
    if state == "completed" and objective is None:
        objective = 0.5 + n / 100
    return Trial(number=n, version=n + 1, state=state, objective=objective,
                 params={"learning_rate": 0.01 * (n + 1), "max_leaf_nodes": 15 + n,
                         "note": note}, **({"model": state == "completed"} | kw))


EIGHT = [_trial(0, objective=0.81), _trial(1, objective=0.93, note=HOSTILE),
         _trial(2, "pruned", intermediate=[(1, 0.4), (2, 0.45)]), _trial(3, "failed"),
         _trial(4, objective=0.88), _trial(5, objective=0.9), _trial(6, objective=0.7),
         _trial(7, "running")]
TRIALS = {0: [], 1: [_trial(0, objective=0.8)], 8: EIGHT}


def _checked(doc_or_text: Any) -> str:
    """The message as Slack would receive it, refused as Slack would refuse it."""
    if isinstance(doc_or_text, str):
        params: dict[str, Any] = {"text": doc_or_text}
    else:
        params = {"text": fallback_text(doc_or_text), "blocks": render_blocks(doc_or_text)}
    StrictRules().check_message(params)
    assert params["text"].strip()
    return json.dumps(params)


def _buttons(blocks: list[dict]) -> list[dict]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("n", sorted(TRIALS))
def test_every_card_is_valid_and_true_in_the_state_it_shows(status: SweepStatus, n: int) -> None:
    trials = TRIALS[n]
    doc = sweep_card(_sweep(status), trials)
    _checked(doc)
    blocks = render_blocks(doc)
    buttons = _buttons(blocks)
    ids = [b["action_id"] for b in buttons]
    assert len(ids) == len(set(ids))
    assert (STOP_SWEEP in ids) == (status is SweepStatus.RUNNING)
    stop = next((b for b in buttons if b["action_id"] == STOP_SWEEP), None)
    if stop is not None:
        assert stop["value"] == "sw1" and stop["style"] == "danger" and stop["confirm"]
    best_buttons = {b["action_id"]: b["value"] for b in buttons if b["action_id"] != STOP_SWEEP}
    if n == 0:
        assert best_buttons == {}
        assert "Best" not in json.dumps(blocks)
    else:
        version = 2 if n == 8 else 1  # trial 1 (0.93) is the best of eight
        assert best_buttons == {"rerun_version": f"sw1:{version}",
                                "save_preset": f"sw1:{version}",
                                "register_model": f"sw1:{version}"}
    text = json.dumps(blocks, ensure_ascii=False)
    assert "sweep *sw1*" in doc.title and status.value.lower() in doc.title
    done, running, pruned, failed = {0: (0, 0, 0, 0), 1: (1, 0, 0, 0), 8: (5, 1, 1, 1)}[n]
    assert (f"{done} done · {running} running · {pruned} pruned · {failed} failed · "
            f"{n}/10 started") in text
    lead = "Best so far" if status in (SweepStatus.RUNNING, SweepStatus.STOPPING) else "Best"
    assert (f"*{lead}*: trial" in text) == (n > 0)
    assert ("no trial completed" in text) == (status is SweepStatus.FAILED)
    assert render_text(doc).strip()  # the CLI shows the same Doc


def test_the_leaderboard_ranks_completed_trials_only_best_first() -> None:
    board = leaderboard_text(_sweep(), EIGHT)
    rows = board.splitlines()
    assert [r.split()[2] for r in rows] == ["1", "5", "4", "0", "6"]  # trial numbers
    assert rows[0].startswith("1. trial 1") and "0.93" in rows[0]
    minimizing = _sweep(spec=SPEC.model_copy(update={"objective_goal": "minimize"}))
    assert leaderboard_text(minimizing, EIGHT).splitlines()[0].startswith("1. trial 6")
    doc = sweep_card(minimizing, EIGHT)
    assert "lowest" in doc.sections[0].text  # type: ignore[operator]
    assert _buttons(render_blocks(doc))[0]["value"] == "sw1:7"


def test_a_hostile_choice_is_shown_escaped_everywhere() -> None:
    sweep = _sweep(SweepStatus.COMPLETED)
    best = EIGHT[1]
    everything = " ".join([_checked(sweep_card(sweep, EIGHT)),
                           _checked(new_best_text(sweep, best)),
                           _checked(sweep_ended_text(sweep, EIGHT)),
                           _checked(sweep_line(sweep, EIGHT))])
    assert "<!channel>" not in everything and "<https://evil" not in everything
    assert "&lt;!channel&gt;" in everything
    # A value's backticks can't close its code span (inside a code block they are text).
    outside_blocks = [t for t in _texts(render_blocks(sweep_card(sweep, EIGHT)))
                      if not t.startswith("```")]
    assert not any("`tick`" in t for t in outside_blocks)
    assert "`tick`" not in new_best_text(sweep, best) + sweep_ended_text(sweep, EIGHT)


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def test_a_huge_search_space_and_long_values_still_fit() -> None:
    """30 swept parameters of 30 long choices full of characters escaping lengthens: every
    limit holds and all five leaderboard rows are kept (cut, never dropped)."""
    long = "&<>" * 60
    ranges = [Choices(name=f"p{i:02d}", values=[f"{long}{j}" for j in range(30)])
              for i in range(30)]
    spec = SPEC.model_copy(update={"ranges": ranges})
    trials = [Trial(number=n, version=n + 1, state="completed", objective=0.5 + n / 100,
                    params={f"p{i:02d}": f"{long}{n}" for i in range(30)}) for n in range(8)]
    sweep = _sweep(SweepStatus.RUNNING, spec=spec,
                   failure_reason=None, origin="x" * 300)
    doc = sweep_card(sweep, trials)
    _checked(doc)
    blocks = render_blocks(doc)
    board = next(b["text"]["text"] for b in blocks
                 if b.get("text", {}).get("text", "").startswith("```"))
    assert [line[:2] for line in board.strip("`").splitlines()] == ["1.", "2.", "3.", "4.", "5."]
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)
    for text in (new_best_text(sweep, trials[-1]), sweep_ended_text(sweep, trials)):
        _checked(text)
        assert len(text) < 4000


def test_the_end_mentions_the_requester_with_the_best_and_why() -> None:
    completed = sweep_ended_text(_sweep(SweepStatus.COMPLETED), EIGHT)
    assert completed.startswith(":white_check_mark: <@U0ALICE> sweep *sw1* completed")
    assert "5 done · 1 running · 1 pruned · 1 failed" in completed
    assert "Best: trial 1 (v2)" in completed and "0.93" in completed
    failed = sweep_ended_text(_sweep(SweepStatus.FAILED), [_trial(0, "failed")])
    assert failed.startswith(":x: <@U0ALICE> sweep *sw1* failed")
    assert "Best" not in failed and failed.endswith("no trial completed")
    stopped = sweep_ended_text(_sweep(SweepStatus.STOPPED), TRIALS[1])
    assert "stopped" in stopped and "Best: trial 0" in stopped
    best = new_best_text(_sweep(), EIGHT[1])
    assert best.startswith(":trophy: New best in *sw1*: trial 1 (v2)")


def test_the_objective_chart_draws_completed_and_pruned_trials() -> None:
    from bot.slack.charts import sweep_chart_for

    png = sweep_chart_for(_sweep(SweepStatus.COMPLETED), EIGHT)
    assert png is not None and png.startswith(b"\x89PNG")
    assert sweep_chart_for(_sweep(), []) is None
    assert sweep_chart_for(_sweep(), [_trial(0, "failed"), _trial(1, "running"),
                                      _trial(2, "pruned")]) is None  # nothing with a value
    pruned_only = sweep_chart_for(_sweep(), [_trial(0, "pruned", intermediate=[(1, 0.3)])])
    assert pruned_only is not None and pruned_only.startswith(b"\x89PNG")
    dollars = SPEC.model_copy(update={"objective_metric": "cost:$ per $ run"})
    assert sweep_chart_for(_sweep(spec=dollars), EIGHT) is not None  # no math mode


def test_a_sweep_awaiting_approval_carries_its_request_buttons() -> None:
    doc = sweep_card(_sweep(SweepStatus.AWAITING_APPROVAL, approval_id="ab12cd34"), [])
    _checked(doc)
    buttons = {b["action_id"]: b for b in _buttons(render_blocks(doc))}
    assert set(buttons) == {"approve_request", "reject_request", STOP_SWEEP}
    assert buttons["approve_request"]["value"] == "ab12cd34"
    assert buttons["reject_request"]["value"] == "ab12cd34"
    assert buttons[STOP_SWEEP]["text"]["text"] == "Withdraw" and buttons[STOP_SWEEP]["confirm"]
    assert "for all 10 trials" in json.dumps(render_blocks(doc))


def test_a_best_trial_without_a_model_file_offers_no_registration() -> None:
    doc = sweep_card(_sweep(SweepStatus.COMPLETED), [_trial(0, objective=0.8, model=False)])
    ids = [b["action_id"] for b in _buttons(render_blocks(doc))]
    assert "register_model" not in ids and "rerun_version" in ids
