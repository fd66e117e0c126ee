"""Training-curve charts as PNG (matplotlib, headless). Imported only on the lazy path."""

from __future__ import annotations

import io

from bot.domain import JobVersion

__all__ = ["chart_for", "confusion_chart_for", "confusion_matrix_png"]


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
