"""A training job's CloudWatch Logs: its streams, their tail, every line, and what the
algorithm's progress and metric regexes find in them.

SageMaker writes one stream per host and restart, ``<job>/algo-1-<epoch>``, into
:data:`LOG_GROUP`. https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html
Reading raises the client's errors as they are: the caller decides what a failed read means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.adapters.training_log import compile_metrics, match_metrics, match_progress, summarize
from bot.domain import Algorithm, MetricSummary, Progress

__all__ = ["LOG_GROUP", "PROGRESS_WINDOW", "LogEvent", "MetricSeries", "TrainingJobLogs",
           "progress_in"]

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
MAX_LOG_EVENTS = 50_000  # a full-log scan for metric series stops here
MAX_LOG_PAGES = 200  # GetLogEvents calls per stream in a full-log scan
MAX_STREAMS = 8  # one stream per host and restart: `<job>/algo-1-<epoch>`
PROGRESS_WINDOW = 200  # log lines read for live progress

LogEvent = tuple[int, str]
"""One line of a log event: (epoch milliseconds, text)."""


class TrainingJobLogs:
    """The log streams of SageMaker training jobs, read through a CloudWatch Logs client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def streams(self, name: str) -> list[str]:
        """The job's latest streams (by last event), oldest first. Ordering by time can't be
        combined with a prefix in DescribeLogStreams, hence the sort here."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{name}/"}
        for _ in range(5):  # 250 streams: far more than hosts × restarts
            page = self.client.describe_log_streams(**kwargs)
            found.extend(page.get("logStreams", []))
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
        found.sort(key=lambda s: (s.get("lastEventTimestamp") or s.get("creationTime") or 0,
                                  s["logStreamName"]))
        return [s["logStreamName"] for s in found[-MAX_STREAMS:]]

    def tail(self, name: str, lines: int) -> list[LogEvent]:
        """The last ``lines`` lines of all the job's streams, merged by time."""
        events: list[LogEvent] = []
        for stream in self.streams(name):
            page = self.client.get_log_events(
                logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=False,
                limit=min(max(lines, 1), 10_000))
            events.extend(_lines(page.get("events", [])))
        events.sort(key=lambda e: e[0])  # stable: one stream's order is kept within a tick
        return events[-lines:]

    def lines(self, name: str) -> Iterator[str]:
        """Every line of the job's streams, stream by stream, up to :data:`MAX_LOG_EVENTS`
        events and :data:`MAX_LOG_PAGES` pages per stream."""
        budget = MAX_LOG_EVENTS
        for stream in self.streams(name):
            kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream,
                                      "startFromHead": True}
            for _ in range(MAX_LOG_PAGES):
                if budget <= 0:
                    return
                page = self.client.get_log_events(**kwargs, limit=min(budget, 10_000))
                batch = page.get("events", [])
                budget -= len(batch)
                yield from (line for _, line in _lines(batch))
                # Pages may be empty mid-stream; the end is the token it was given coming back.
                token = page.get("nextForwardToken")
                if not token or token == kwargs.get("nextToken"):
                    break
                kwargs["nextToken"] = token


def progress_in(events: Sequence[LogEvent], algorithm: Algorithm) -> Progress | None:
    """Latest progress and metric values in ``events``; ``updated_at`` is the time of the
    last event (so "stuck" means "silent"). None when there are no events."""
    if not events:
        return None
    metrics = compile_metrics([(m.name, m.regex) for m in algorithm.metrics])
    progress_re = _compile(algorithm.progress_regex)
    current = total = None
    latest: dict[str, float] = {}
    for _, line in events:
        latest.update(dict(match_metrics(line, metrics)))
        found = match_progress(line, progress_re)
        if found is not None:
            current, found_total = found
            total = found_total if found_total is not None else total
    return Progress(current=current, total=total, metrics=latest,
                    updated_at=_event_time(events[-1][0]))


class MetricSeries:
    """The values of an algorithm's metrics, line by line. What was added before a read
    failed still counts: a long log cut short gives shorter series, not none."""

    def __init__(self, algorithm: Algorithm) -> None:
        self._metrics = compile_metrics([(m.name, m.regex) for m in algorithm.metrics])
        self._values: dict[str, list[float]] = {m: [] for m, _ in self._metrics}

    def add(self, lines: Iterable[str]) -> None:
        for line in lines:
            for metric, value in match_metrics(line, self._metrics):
                self._values[metric].append(value)

    def summaries(self) -> dict[str, MetricSummary]:
        """Each metric that has values, summarised (at most 200 points each)."""
        return {m: s for m, vs in self._values.items() if (s := summarize(vs)) is not None}


def _lines(events: Sequence[dict[str, Any]]) -> Iterator[LogEvent]:
    for event in events:
        for line in str(event.get("message", "")).splitlines() or [""]:
            yield int(event.get("timestamp") or 0), line.rstrip("\r")


def _event_time(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)


def _compile(regex: str | None) -> re.Pattern[str] | None:
    return re.compile(regex) if regex else None
