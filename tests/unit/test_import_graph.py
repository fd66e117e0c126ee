"""The import graph of ``bot`` and ``functions``: no cycle, at any depth, and no layer
importing one above it (domain ← services ← adapters / Slack and views ← entry points).

Read from the source with ``ast``, so an import inside a function counts (it hides a cycle;
it doesn't remove it); one under ``if TYPE_CHECKING:`` doesn't (it never runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "functions")


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    return skipped


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the submodule when there is one.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    modules = _modules(root)
    known = set(modules)
    return {name: set(_imports(name, path, known)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_package_init(name: str, graph: dict[str, set[str]]) -> bool:
    return any(other.startswith(name + ".") for other in graph)


def test_no_import_cycle_among_bot_and_functions() -> None:
    graph = import_graph()
    # A package's __init__ naming its submodules (lazy re-exports) is not a cycle of the code.
    pruned = {name: {t for t in targets if not (_is_package_init(t, graph)
                                                and name.startswith(t + "."))}
              for name, targets in graph.items()}
    assert cycles(pruned) == []


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "bot" / "a.py").write_text("def f():\n    from bot import b\n")
    (tmp_path / "bot" / "b.py").write_text("from bot.c import g\n")
    (tmp_path / "bot" / "c.py").write_text("import bot.a\ng = 1\n")
    (tmp_path / "bot" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot import a\n")
    (tmp_path / "functions" / "x.py").write_text("from bot import d\n")

    assert cycles(import_graph(tmp_path)) == [["bot.a", "bot.b", "bot.c"]]


# Each module's layer, by the longest matching prefix. A layer may import its own and those
# below it. Composition roots (bootstrap, the Slack wiring) and the CLI are entry points.
LAYERS = {
    "bot.domain": 0,
    "bot.ports": 1, "bot.services": 1, "bot.catalog": 1, "bot.config": 1,
    "bot.adapters": 2, "bot.aws": 2, "bot.clock": 2,
    "bot.views": 2, "bot.commands": 2, "bot.error_text": 2, "bot.dispatch": 2,
    "bot.slack": 2, "bot.localslack": 2,
    "bot.slack.wiring": 3, "bot.bootstrap": 3, "bot.cli": 3, "bot.cli_wait": 3,
    "bot.local_run": 3,
    "bot.local_reconcile": 3, "bot.publish": 3, "functions": 3,
}


def layer_of(module: str) -> int | None:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def test_every_module_has_a_layer() -> None:
    assert [m for m in import_graph() if m != "bot" and layer_of(m) is None] == []


def test_no_layer_imports_one_above_it() -> None:
    upward = sorted(f"{m} → {t}" for m, targets in import_graph().items() for t in targets
                    if (layer_of(m) or 0) < (layer_of(t) or 0))
    assert upward == []
