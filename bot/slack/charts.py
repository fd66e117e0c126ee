"""Training-curve charts as PNG (matplotlib, headless). Imported only on the lazy path."""

from __future__ import annotations

import io
from collections.abc import Sequence

from bot.domain import JobVersion
from bot.domain.sweep import Sweep, Trial, best

__all__ = ["chart_for", "confusion_chart_for", "confusion_matrix_png", "sweep_chart_for"]


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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
