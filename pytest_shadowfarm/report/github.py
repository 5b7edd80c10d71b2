"""The GitHub Actions job summary (Markdown) and failure annotations (pure, no pytest).

Input: the run report dict (``report/runreport.build_report``), the failures with their
source locations, and the anomalies the terminal summary also shows. Output: Markdown for
``$GITHUB_STEP_SUMMARY`` and ``::error file=...,line=...::`` workflow commands.

GitHub's limits shape it: a step summary is at most 1 MiB, and only the first 10 error
annotations of a step are shown; so lists are capped, and the failures past the tenth
are pointed to in one notice instead of being dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_shadowfarm.report.terminal import (
    ANOMALY_FACTOR,
    ANOMALY_MIN_S,
    Anomaly,
    format_seconds,
)
from pytest_shadowfarm.report.timeline import render_mermaid

__all__ = [
    "MAX_ANNOTATIONS",
    "MAX_SUMMARY_BYTES",
    "Failure",
    "annotation_lines",
    "build_summary",
    "escape_data",
    "escape_property",
]

#: GitHub shows at most 10 error annotations per step
MAX_ANNOTATIONS = 10
#: GitHub refuses a step summary larger than 1 MiB; stay well below
MAX_SUMMARY_BYTES = 900 * 1024
MAX_MESSAGE_CHARS = 2000
#: what an empty table cell shows
NONE = "-"


@dataclass(frozen=True)
class Failure:
    """One failed test (or collection error) and where to point at it."""

    nodeid: str
    #: "failed" or "error"
    outcome: str
    #: the phase that failed: setup, call, teardown or collect
    when: str
    message: str
    #: seconds since the session start when the failure was reported
    at_s: float
    #: path relative to the repository root (GITHUB_WORKSPACE), or None if outside it
    file: str | None = None
    #: 1-based line in ``file``
    line: int | None = None


# --- annotations ------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR and LF; actions/toolkit's escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_lines(failures: Sequence[Failure], *, limit: int = MAX_ANNOTATIONS) -> list[str]:
    """``::error`` lines for the first ``limit`` failures, then one notice for the rest."""
    lines = []
    for failure in failures[:limit]:
        props = []
        if failure.file is not None:
            props.append(f"file={escape_property(failure.file)}")
            if failure.line is not None:
                props.append(f"line={failure.line}")
        what = "error in " + failure.when if failure.outcome == "error" else "failed"
        props.append(f"title={escape_property(f'{failure.nodeid} {what}')}")
        message = failure.message.strip()[:MAX_MESSAGE_CHARS] or what
        lines.append(f"::error {','.join(props)}::{escape_data(message)}")
    if len(failures) > limit:
        rest = len(failures) - limit
        lines.append(
            f"::notice title={escape_property('pytest-shadowfarm')}::"
            f"{rest} more failure{'s' if rest != 1 else ''} not annotated "
            "(GitHub shows 10 per step); all are listed in the job summary"
        )
    return lines


# --- summary ---------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text that is safe inside a Markdown table cell (GFM unescapes ``\\|`` even in code)."""
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _code(text: str) -> str:
    """An inline code span for a table cell; a double fence if ``text`` has a backtick."""
    return f"`` {_cell(text)} ``" if "`" in text else f"`{_cell(text)}`"


def _s(seconds: float | None) -> str:
    return NONE if seconds is None else format_seconds(seconds)


def _pct(actual: float, predicted: float) -> str:
    return f"{(actual - predicted) / predicted * 100:+.0f} %" if predicted > 0 else ""


def _counts_text(counts: Mapping[str, int]) -> str:
    order = ("failed", "error", "passed", "skipped", "xfailed", "xpassed")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return ", ".join(parts) or "no tests"


def _headline(report: Mapping[str, Any], failures: Sequence[Failure]) -> list[str]:
    counts = report.get("counts", {})
    shard = report.get("shard")
    where = f" (shard {shard['index']}/{shard['count']})" if shard else ""
    icon = "❌" if failures or counts.get("failed") or counts.get("error") else "✅"
    lines = [
        f"## {icon} pytest-shadowfarm{where}: {_counts_text(counts)} in {_s(report.get('wall_s'))}",
        "",
    ]
    first = report.get("first_failure_s")
    tests = report.get("tests", [])
    if failures:
        order = _order_of(tests)
        head = failures[0]
        position = order.get(head.nodeid)
        at = f" (test {position + 1} of {len(tests)} to start)" if position is not None else ""
        lines.append(
            f"**First failure after {_s(first if first is not None else head.at_s)}**{at}."
        )
    predicted = report.get("predicted_total_s")
    actual = report.get("actual_total_s")
    ran, selected = len(report.get("tests", [])), report.get("selected_tests") or 0
    if predicted and ran < selected and report.get("predicted_ran_s"):
        lines.append(
            f"Stopped early after {ran} of {selected} tests: predicted "
            f"{_s(report['predicted_ran_s'])} for those, actual {_s(actual)} "
            f"({_pct(actual or 0.0, report['predicted_ran_s'])}); wall {_s(report.get('wall_s'))}."
        )
    elif predicted:
        lines.append(
            f"Predicted {_s(predicted)} of test time, actual {_s(actual)} "
            f"({_pct(actual or 0.0, predicted)}); wall {_s(report.get('wall_s'))}."
        )
    else:
        lines.append(
            f"Actual {_s(actual)} of test time; no prediction yet (this run teaches the history)."
        )
    lines.append("")
    return lines


def _order_of(tests: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return {t["nodeid"]: t["order"] for t in tests if isinstance(t.get("order"), int)}


def _failures(
    report: Mapping[str, Any], failures: Sequence[Failure], limit: int, *, messages: bool = True
) -> list[str]:
    if not failures:
        return []
    tests = report.get("tests", [])
    order = _order_of(tests)
    durations = {t["nodeid"]: t.get("duration_s") for t in tests}
    lines = [
        f"### Failures, in the order they happened ({len(failures)})",
        "",
        "| # | test | started as | failed at | took | where |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for number, failure in enumerate(failures[:limit], 1):
        position = order.get(failure.nodeid)
        started = f"{position + 1} of {len(tests)}" if position is not None else NONE
        where = f"{failure.file}:{failure.line}" if failure.file and failure.line else NONE
        kind = "" if failure.outcome == "failed" else f" ({failure.outcome} in {failure.when})"
        lines.append(
            f"| {number} | {_code(failure.nodeid)}{_cell(kind)} | {started} | "
            f"{_s(failure.at_s)} | {_s(durations.get(failure.nodeid))} | {_cell(where)} |"
        )
    if len(failures) > limit:
        lines.append(f"| | … and {len(failures) - limit} more | | | | |")
    if not messages:
        return [*lines, "", "(failure messages left out: GitHub's summary size limit)", ""]
    lines += ["", "<details><summary>Failure messages</summary>", ""]
    for failure in failures[:limit]:
        message = failure.message.strip()[:MAX_MESSAGE_CHARS]
        lines += [f"**{_cell(failure.nodeid)}**", "", "```text", message.replace("```", "'''")]
        lines += ["```", ""]
    lines += ["</details>", ""]
    return lines


def _prediction(report: Mapping[str, Any]) -> list[str]:
    predicted = report.get("predicted_total_s")
    actual = report.get("actual_total_s")
    shard = report.get("shard")
    lines = [
        "### Predicted vs actual",
        "",
        "| | predicted | actual | error |",
        "|---|---:|---:|---:|",
    ]
    pct = _pct(actual, predicted) if predicted and actual is not None else ""
    lines.append(f"| test time (sum of all tests) | {_s(predicted)} | {_s(actual)} | {pct} |")
    lines.append(f"| wall time | | {_s(report.get('wall_s'))} | |")
    if shard:
        loads = shard.get("shard_predicted_s") or []
        spread = f"{_s(min(loads))} to {_s(max(loads))}" if loads else NONE
        lines.append(
            f"| shard {shard['index']}/{shard['count']}: {shard['tests']} of "
            f"{shard['total_tests']} tests | {_s(shard.get('predicted_s'))} | | |"
        )
        lines += [
            "",
            f"All {shard['count']} shards were predicted at {spread} "
            f"({shard.get('cut_modules', 0)} modules cut; plan `{shard.get('plan', '?')}`, "
            "equal in every shard of one run).",
        ]
    lines.append("")
    return lines


def _slowest(report: Mapping[str, Any], limit: int) -> list[str]:
    tests = [t for t in report.get("tests", []) if isinstance(t.get("duration_s"), int | float)]
    tests.sort(key=lambda t: (-t["duration_s"], t["nodeid"]))
    if not tests:
        return []
    lines = [
        f"### Slowest {min(limit, len(tests))} tests",
        "",
        "| test | took | predicted | worker |",
        "|---|---:|---:|---|",
    ]
    for t in tests[:limit]:
        lines.append(
            f"| {_code(t['nodeid'])} | {_s(t['duration_s'])} | {_s(t.get('etc_s'))} | "
            f"{_cell(str(t.get('worker') or NONE))} |"
        )
    lines.append("")
    return lines


def _anomalies(anomalies: Sequence[Anomaly], limit: int) -> list[str]:
    if not anomalies:
        return []
    lines = [
        f"### Anomalies: {len(anomalies)} tests took more than {ANOMALY_FACTOR:g}x their "
        f"estimate (and over {ANOMALY_MIN_S:g} s)",
        "",
        "| test | took | expected | ratio |",
        "|---|---:|---:|---:|",
    ]
    for a in anomalies[:limit]:
        lines.append(
            f"| {_code(a.nodeid)} | {_s(a.actual_s)} | {_s(a.expected_s)} | "
            f"{a.actual_s / a.expected_s:.1f}x |"
        )
    lines.append("")
    return lines


def _flaky(report: Mapping[str, Any], limit: int) -> list[str]:
    flaky = [t for t in report.get("tests", []) if t.get("flaky") is True]
    if not flaky:
        return []
    lines = [
        f"### Flaky tests ({len(flaky)})",
        "",
        "Their outcome flipped between pass and fail without a code change in the history.",
        "",
    ]
    lines += [
        f"- {_code(t['nodeid'])}: {_cell(str(t.get('outcome')))} this run" for t in flaky[:limit]
    ]
    lines.append("")
    return lines


def _workers(report: Mapping[str, Any]) -> list[str]:
    workers = report.get("workers") or []
    if not workers:
        return []
    per_worker: dict[str, list[float]] = {}
    for t in report.get("tests", []):
        if t.get("worker") is not None and isinstance(t.get("duration_s"), int | float):
            per_worker.setdefault(str(t["worker"]), []).append(t["duration_s"])
    warm = sum(1 for w in workers if w.get("warm"))
    lines = [
        f"### Workers: {len(workers)} ({warm} warm, {len(workers) - warm} cold)",
        "",
        "| worker | start | joined | left | tests | busy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for w in workers:
        done = per_worker.get(str(w.get("id")), [])
        lines.append(
            f"| {_cell(str(w.get('id')))} | {'warm' if w.get('warm') else 'cold'} | "
            f"{_s(w.get('joined_s'))} | {_s(w.get('left_s'))} | {len(done)} | "
            f"{_s(sum(done))} |"
        )
    lines.append("")
    return lines


_TIME_KEYS = ("t_s", "at_s", "time_s", "t")
_KIND_KEYS = ("kind", "event", "type", "action")


def _value(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + " ".join(map(str, value)) + "]"
    return str(value)


def _events(report: Mapping[str, Any], limit: int) -> list[str]:
    events = report.get("events") or []
    if not events:
        return []
    lines = [f"### Scaling and worker events ({len(events)})", "", "| at | event | details |"]
    lines.append("|---:|---|---|")
    for event in events[:limit]:
        at = next((event[k] for k in _TIME_KEYS if isinstance(event.get(k), int | float)), None)
        kind = next((str(event[k]) for k in _KIND_KEYS if k in event), "event")
        rest = ", ".join(
            f"{k}={_value(v)}"
            for k, v in event.items()
            if k not in _TIME_KEYS and k not in _KIND_KEYS
        )
        lines.append(f"| {_s(at)} | {_cell(kind)} | {_cell(rest)} |")
    if len(events) > limit:
        lines.append(f"| | … and {len(events) - limit} more (see the run report) | |")
    lines.append("")
    return lines


def _timeline(report: Mapping[str, Any], svg_path: str | None) -> list[str]:
    tests = report.get("tests") or []
    if not tests:
        return []
    lines = ["### Timeline: which worker ran what", "", render_mermaid(tests)]
    if svg_path:
        lines.append(
            f"Failures are red. The same timeline as an SVG picture: `{_cell(svg_path)}` "
            "(upload it as an artifact to keep it)."
        )
    else:
        lines.append("Failures are red.")
    lines.append("")
    return lines


def build_summary(
    report: Mapping[str, Any],
    failures: Sequence[Failure],
    anomalies: Sequence[Anomaly] = (),
    *,
    svg_path: str | None = None,
    limit: int = 10,
    max_failures: int = 50,
) -> str:
    """The job summary: failures first, then prediction, slow tests, anomalies, workers."""
    sections = [
        _headline(report, failures),
        _failures(report, failures, max_failures),
        _prediction(report),
        _slowest(report, limit),
        _anomalies(anomalies, limit),
        _flaky(report, 2 * limit),
        _workers(report),
        _events(report, 2 * limit),
        _timeline(report, svg_path),
    ]
    text = "\n".join(line for section in sections for line in section) + "\n"
    if len(text.encode()) > MAX_SUMMARY_BYTES:
        # Only the failure messages can be this long: drop them, keep everything else.
        sections[1] = _failures(report, failures, max_failures, messages=False)
        text = "\n".join(line for section in sections for line in section) + "\n"
    return text
