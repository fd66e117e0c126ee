"""How the terminal client words an edited message: only the lines that changed."""

from __future__ import annotations

from bot.localslack.render import render_edit

CARD = ["*demo v1* — TRAINING", "  • *Pool* `local-cpu`", "██░░ 2/4 (50%)", "[1] Logs  [2] Stop"]


def test_the_same_text_is_no_edit() -> None:
    assert render_edit("#1", CARD, list(CARD)) == ""


def test_changed_and_new_lines_are_aligned_under_the_label() -> None:
    after = ["*demo v1* — COMPLETED", "  • *Pool* `local-cpu`", "*Metrics*  acc=0.75",
             "[1] Logs  [3] Rerun"]

    assert render_edit("#1", CARD, after).splitlines() == [
        "✎ #1: *demo v1* — COMPLETED",
        "      *Metrics*  acc=0.75",
        "      [1] Logs  [3] Rerun",
    ]


def test_lines_that_only_went_away_are_shown_struck() -> None:
    assert render_edit("#1", CARD, [CARD[0], CARD[1], CARD[3]]) == "✎ #1: − ██░░ 2/4 (50%)"


def test_a_reply_keeps_its_indent() -> None:
    edit = render_edit("reply in #1", ["    running"], ["    stopped"], indent="    ")

    assert edit == "    ✎ reply in #1: stopped"
