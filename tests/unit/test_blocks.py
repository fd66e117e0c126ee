from __future__ import annotations

import json

from bot.slack.blocks import MAX_BLOCKS, render_blocks
from bot.views.doc import Button, Doc


def test_huge_output_stays_within_block_kit_limits() -> None:
    doc = Doc(title="t" * 5000)
    for _i in range(200):
        doc.add("x" * 4000, fields=[(f"k{j}", "v" * 3000) for j in range(25)], code="y" * 9000)
    doc.buttons = [Button(f"b{i}" * 50, f"a{i}", "v" * 3000) for i in range(30)]
    blocks = render_blocks(doc)
    assert len(blocks) <= MAX_BLOCKS
    for b in blocks:
        if b["type"] == "section":
            assert len(b.get("text", {}).get("text", "")) <= 3000
            assert len(b.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in b.get("fields", []))
        if b["type"] == "actions":
            assert len(b["elements"]) <= 25
            assert all(len(e["text"]["text"]) <= 75 for e in b["elements"])
    assert "truncated" in json.dumps(blocks)


def test_buttons_carry_confirm_dialogs_and_urls() -> None:
    doc = Doc(title="card", buttons=[Button("Stop", "stop_version", "j:1", style="danger",
                                            confirm="Stop it?"),
                                     Button("TensorBoard", "open_tensorboard", url="http://x")])
    actions = next(b for b in render_blocks(doc) if b["type"] == "actions")["elements"]
    assert actions[0]["confirm"]["text"]["text"] == "Stop it?" and actions[0]["style"] == "danger"
    assert actions[1]["url"] == "http://x"
