"""Training-curve charts as PNG (matplotlib, headless). Imported only on the lazy path."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from bot.domain import JobVersion
from bot.domain.cost import CostReport
from bot.domain.sweep import Sweep, Trial, best

__all__ = ["chart_for", "confusion_chart_for", "confusion_matrix_png", "cost_chart_for",
           "sweep_chart_for"]

COST_BARS = 15  # the rest of a report's rows are summed into one "… N more" bar


def _png(fig: Any) -> bytes:
    """The figure as a PNG (laid out, 100 dpi), closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def chart_for(version: JobVersion) -> bytes | None:
    """One subplot per metric family (loss vs the rest); None when there is no series."""
    series = {k: s for k, s in version.series.items() if s.points}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    losses = {k: s for k, s in series.items() if "loss" in k.lower()}
    others = {k: s for k, s in series.items() if k not in losses}
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for name, s in panel.items():
            xs, ys = zip(*s.points, strict=True)
            ax.plot(xs, ys, label=name, marker="." if len(xs) < 30 else None)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{version.label} — {version.spec.algorithm}")
    return _png(fig)


def confusion_chart_for(version: JobVersion) -> bytes | None:
    """A classifier's confusion matrix as a picture; None when its evaluation has none."""
    ev = version.evaluation or {}
    matrix = ev.get("confusion_matrix")
    if not matrix:
        return None
    classes = [str(c) for c in ev.get("classes") or range(len(matrix))]
    return confusion_matrix_png(matrix, classes, f"{version.label} confusion matrix")


def confusion_matrix_png(matrix: list[list[int]], classes: list[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1 + 0.45 * n, 1 + 0.45 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels=[str(c) for c in classes[:n]], fontsize=7)
    ax.set_yticks(range(n), labels=[str(c) for c in classes[:n]], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=6)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def _plain(text: str) -> str:
    """Text matplotlib shows as written (a pair of ``$`` would start math mode)."""
    return text.replace("$", r"\$")


def sweep_chart_for(sweep: Sweep, trials: Sequence[Trial]) -> bytes | None:
    """The objective by trial: completed trials as points, the best so far as a step line,
    pruned trials as crosses at their last intermediate value (where they had one); failed
    and running trials are left out. None when there is nothing to draw."""
    done = [(t.number, t.objective) for t in trials
            if t.state == "completed" and t.objective is not None]
    pruned = [(t.number, t.intermediate[-1][1]) for t in trials
              if t.state == "pruned" and t.intermediate]
    if not done and not pruned:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    spec = sweep.spec
    pick = max if spec.objective_goal == "maximize" else min
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if done:
        xs, ys = zip(*sorted(done), strict=True)
        ax.scatter(xs, ys, s=22, color="tab:blue", label="completed", zorder=3)
        running: list[float] = []
        for y in ys:
            running.append(y if not running else pick(running[-1], y))
        # The best so far holds from each trial to the last one drawn.
        last = max(x for x, _ in done + pruned)
        ax.step([*xs, last], [*running, running[-1]], where="post", color="tab:green",
                label="best so far", zorder=2)
        top = best(spec, trials)
        if top is not None and top.objective is not None:
            ax.scatter([top.number], [top.objective], s=120, marker="*", color="gold",
                       edgecolor="black", label=f"best: trial {top.number}", zorder=4)
    if pruned:
        px, py = zip(*sorted(pruned), strict=True)
        ax.scatter(px, py, s=30, marker="x", color="tab:red", label="pruned (last value)",
                   zorder=3)
    ax.set_xlabel("trial")
    ax.set_ylabel(_plain(spec.objective_metric))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    goal = "higher" if spec.objective_goal == "maximize" else "lower"
    ax.set_title(_plain(f"{sweep.label}: {spec.objective_metric} by trial ({goal} is better)"),
                 fontsize=10)
    return _png(fig)


def cost_chart_for(report: CostReport) -> bytes | None:
    """The report as horizontal bars, one per row (most first, the rest summed into one):
    spent solid, the ceiling of what still runs hatched after it. None when there is
    nothing to draw."""
    rows = [(r.subject, r.spent_usd, r.committed_usd) for r in report.rows
            if r.spent_usd > 0 or r.committed_usd > 0]
    if not rows:
        return None
    summed = len(rows) > COST_BARS
    if summed:
        rest = rows[COST_BARS - 1:]
        rows = [*rows[:COST_BARS - 1], (f"… {len(rest)} more", sum(r[1] for r in rest),
                                        sum(r[2] for r in rest))]
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    labels = [_plain(_short(subject)) for subject, _, _ in rows]
    spent = [s for _, s, _ in rows]
    committed = [c for _, _, c in rows]
    ys = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(8.0, 1.6 + 0.38 * len(rows)))
    # The bar of "… N more" (the rest summed) in grey: it isn't one subject.
    colors = ["tab:gray" if summed and i == len(rows) - 1 else "tab:blue" for i in ys]
    ax.barh(ys, spent, color=colors, label="spent")
    if any(committed):
        ax.barh(ys, committed, left=spent, color=colors, alpha=0.35, hatch="//",
                edgecolor=colors, label="running (ceiling)")
    ax.set_yticks(ys, labels=labels, fontsize=8)
    ax.invert_yaxis()  # the largest first, at the top
    cents = max(s + c for _, s, c in rows) < 10
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _: _plain(f"${x:,.2f}" if cents else f"${x:,.0f}")))
    ax.set_xlabel("USD")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    where = f" in {report.channel}" if report.channel else ""
    ax.set_title(_plain(f"Spend by {report.by} — {report.period}{where} "
                        f"(${report.total.spent_usd:,.2f} spent)"), fontsize=10)
    return _png(fig)


def _short(text: str, n: int = 32) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
