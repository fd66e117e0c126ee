"""Files by concern: no module in ``bot/`` or ``functions/`` grows past 600 lines."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT = 600


def test_no_module_is_over_the_limit() -> None:
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
             for root in ("bot", "functions") for p in (REPO / root).rglob("*.py")}
    assert sizes, "no modules found"
    assert {path: n for path, n in sizes.items() if n > LIMIT} == {}
