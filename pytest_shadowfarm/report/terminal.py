"""The lines pytest-shadowfarm adds to pytest's terminal output (pure formatting)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_shadowfarm.history.records import HistorySummary
from pytest_shadowfarm.recorder import TestTrace

__all__ = [
    "ANOMALY_FACTOR",
    "ANOMALY_MIN_S",
    "Anomaly",
    "find_anomalies",
    "format_seconds",
    "header_line",
    "parse_seconds",
    "prediction_line",
    "summary_lines",
    "write_own_line",
]

#: a test is an anomaly when it took more than this many times its estimate …
ANOMALY_FACTOR = 3.0
#: … and more than this many seconds
ANOMALY_MIN_S = 0.5


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s"


def parse_seconds(text: str) -> float:
    """The seconds of a :func:`format_seconds` text ("1.50s", "2m05.0s")."""
    minutes, _, rest = text.rpartition("m")
    return (int(minutes) * 60 if minutes else 0) + float(rest.rstrip("s"))


def write_own_line(reporter: Any, line: str) -> None:
    """Write ``line`` to pytest's terminal reporter on a line of its own.

    xdist shows its worker status by rewriting the current line without ending it
    ("ready: 2/2 workers"); a plain ``write_line`` then lands at the end of that status.
    """
    writer = getattr(reporter, "_tw", None)
    if getattr(writer, "width_of_current_line", 0):
        writer.line()  # type: ignore[union-attr]
    reporter.write_line(line)


def header_line(history: HistorySummary | None) -> str:
    if history is None:
        return "shadowfarm: no history (it could not be opened, see the warning above)"
    if history.runs == 0:
        return f"shadowfarm: new history at {history.path}; this run will teach it"
    return f"shadowfarm: history knows {history.runs} runs, {history.tests} tests ({history.path})"


def prediction_line(
    tests: int,
    known: int,
    predicted_s: float | None,
    *,
    like_this_run: int = 0,
    workers: int = 0,
    wall_s: float | None = None,
) -> str:
    """The header's prediction; says how many tests were timed in runs like this one.

    With no test known there is no prediction: the default ETC times the number of
    tests is a scale for ordering, not a forecast to print. ``wall_s`` is when the run
    should end, overheads included (collection, start-up, pytest's time between tests).
    """
    if not known or predicted_s is None:
        return f"shadowfarm: {tests} tests, no history yet: no prediction (this run records one)"
    line = (
        f"shadowfarm: {tests} tests, {known} with history; "
        f"predicted total {format_seconds(predicted_s)}"
    )
    if like_this_run:
        runs = f"-n {workers} runs" if workers else "runs without xdist"
        line += f" ({like_this_run} timed in earlier {runs} only)"
    if wall_s is not None:
        line += f"; run ends after about {format_seconds(wall_s)} with collection and overhead"
    return line


@dataclass(frozen=True)
class Anomaly:
    nodeid: str
    actual_s: float
    expected_s: float


def find_anomalies(traces: Iterable[TestTrace], expected: Mapping[str, float]) -> list[Anomaly]:
    """Tests whose body took far longer than their history says (slowest first).

    Compares the call phase with ``expected`` (call-phase estimates): setup and teardown
    carry module- and session-scoped fixtures, which land in whichever test of the module
    runs first, so a reordered run would otherwise look anomalous. ``expected`` holds only
    tests with a history of their own: a fallback estimate says too little.
    """
    found = []
    for trace in traces:
        etc = expected.get(trace.nodeid)
        actual = trace.seconds.get("call", 0.0)
        if etc is not None and actual > ANOMALY_MIN_S and actual > ANOMALY_FACTOR * etc:
            found.append(Anomaly(trace.nodeid, actual, etc))
    return sorted(found, key=lambda a: a.actual_s, reverse=True)


def _error(actual: float, predicted: float) -> str:
    return f"{(actual - predicted) / predicted * 100:+.1f}%"


def summary_lines(
    *,
    predicted_s: float | None,
    actual_s: float,
    wall_s: float,
    anomalies: list[Anomaly],
    history: HistorySummary | None,
    recorded: bool,
    limit: int = 10,
    predicted_wall_s: float | None = None,
    ran: int | None = None,
    selected: int | None = None,
    predicted_ran_s: float | None = None,
) -> list[str]:
    """The summary section; a run that stopped early is compared over what ran only."""
    lines = []
    stopped = ran is not None and selected is not None and ran < selected
    if stopped and predicted_ran_s:
        lines.append(
            f"stopped early after {ran} of {selected} tests: predicted "
            f"{format_seconds(predicted_ran_s)} for those, actual {format_seconds(actual_s)} "
            f"({_error(actual_s, predicted_ran_s)}); wall {format_seconds(wall_s)}"
        )
    elif predicted_s:
        wall = f"wall {format_seconds(wall_s)}"
        if predicted_wall_s:
            wall += (
                f" (predicted {format_seconds(predicted_wall_s)}, "
                f"{_error(wall_s, predicted_wall_s)})"
            )
        lines.append(
            f"predicted {format_seconds(predicted_s)} of test time, "
            f"actual {format_seconds(actual_s)} ({_error(actual_s, predicted_s)}); {wall}"
        )
    else:
        early = f"stopped early after {ran} of {selected} tests; " if stopped else ""
        lines.append(
            f"{early}actual {format_seconds(actual_s)} of test time "
            f"(no prediction: nothing known yet); wall {format_seconds(wall_s)}"
        )
    if anomalies:
        lines.append(
            f"{len(anomalies)} anomalies (test body more than {ANOMALY_FACTOR:g}x its estimate "
            f"and over {ANOMALY_MIN_S:g}s):"
        )
        for a in anomalies[:limit]:
            lines.append(
                f"  {a.nodeid}: {format_seconds(a.actual_s)} "
                f"(expected {format_seconds(a.expected_s)}, {a.actual_s / a.expected_s:.1f}x)"
            )
        if len(anomalies) > limit:
            lines.append(f"  … and {len(anomalies) - limit} more (see --sf-report-json)")
    if history is not None and recorded:
        lines.append(f"history: {history.path} ({history.runs} runs, {history.tests} tests)")
    elif history is not None:
        lines.append(f"history: {history.path} (nothing recorded this run)")
    return lines
