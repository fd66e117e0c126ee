"""A training log read as SageMaker reads it: metric definitions, progress, the last error.

Used by both compute backends: the local one scans ``logs/stdout.log``, the SageMaker one
CloudWatch log events; the same regexes (from the algorithm's manifest) give the same series.

Standard library and pydantic models only: this module is on the Slack path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.domain import MetricSummary
from bot.domain.job import MAX_SERIES_POINTS

__all__ = [
    "LogScan",
    "compile_metrics",
    "downsample",
    "match_metrics",
    "match_progress",
    "scan_log",
    "summarize",
]


def _iter_lines(path: Path) -> Iterator[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            yield from (line.rstrip("\r\n") for line in f)
    except OSError:
        return


@dataclass
class LogScan:
    """What one pass over a run's log found."""

    series: dict[str, list[float]] = field(default_factory=dict)
    current: float | None = None
    total: float | None = None
    error_line: str | None = None
    last_line: str | None = None

    @property
    def last_metrics(self) -> dict[str, float]:
        return {name: values[-1] for name, values in self.series.items() if values}


def compile_metrics(definitions: Sequence[tuple[str, str]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(name, re.compile(regex)) for name, regex in definitions]


def match_metrics(
    line: str, metrics: Sequence[tuple[str, re.Pattern[str]]]
) -> Iterator[tuple[str, float]]:
    """Every ``(metric, value)`` on a line, as SageMaker's metric definitions would see it."""
    for name, regex in metrics:
        for m in regex.finditer(line):
            try:
                value = float(m.group(1))
            except (TypeError, ValueError):
                continue
            # nan/inf can't be summarised or stored as JSON; SageMaker drops them too.
            if math.isfinite(value):
                yield name, value


def match_progress(line: str, regex: re.Pattern[str] | None) -> tuple[float, float | None] | None:
    """``(current, total)`` from a progress line (groups ``current`` and optional ``total``)."""
    if regex is None:
        return None
    m = regex.search(line)
    if m is None:
        return None
    try:
        current = float(m.group("current"))
        raw_total = m.groupdict().get("total")
        return current, float(raw_total) if raw_total else None
    except (TypeError, ValueError):
        return None


def scan_log(
    path: Path,
    metrics: Sequence[tuple[str, re.Pattern[str]]],
    progress: re.Pattern[str] | None,
) -> LogScan:
    """Read the whole log once: metric series, the last progress, the last ``ERROR:`` line."""
    scan = LogScan(series={name: [] for name, _ in metrics})
    for line in _iter_lines(path):
        for name, value in match_metrics(line, metrics):
            scan.series[name].append(value)
        found = match_progress(line, progress)
        if found is not None:
            scan.current, total = found
            scan.total = total if total is not None else scan.total
        stripped = line.strip()
        if stripped.startswith("ERROR:"):
            scan.error_line = stripped
        if stripped and not stripped.startswith("[trainbot]"):
            scan.last_line = stripped
    return scan


def downsample(values: Sequence[float], limit: int = MAX_SERIES_POINTS) -> list[tuple[int, float]]:
    """At most ``limit`` evenly spaced ``(step, value)`` points, first and last always kept.

    The step is the value's position in the log (0-based): metric lines carry no step number
    that every algorithm agrees on.
    """
    n = len(values)
    if n <= limit:
        return list(enumerate(values))
    picks = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return [(i, values[i]) for i in picks]


def summarize(values: Sequence[float]) -> MetricSummary | None:
    if not values:
        return None
    return MetricSummary(
        first=values[0],
        last=values[-1],
        min=min(values),
        max=max(values),
        count=len(values),
        points=downsample(values),
    )
