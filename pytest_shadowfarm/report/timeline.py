"""Which worker ran what, when: an SVG picture and a Mermaid Gantt chart (pure, no pytest).

Both are drawn from the run report's ``tests`` entries (``worker``, ``start_s``,
``duration_s``, ``outcome``, ``nodeid``): one lane per worker, one bar per test, failures
in red. A run of thousands of tests would make thousands of bars, so consecutive passing
tests of one module on one worker are merged into one bar when the picture would
otherwise hold more than its budget (failures always keep their own bar).

Why both: GitHub's Markdown sanitizer removes inline ``<svg>`` from job summaries (as it
does in READMEs, github/markup#1065), while fenced ``mermaid`` blocks are rendered. The
summary therefore carries the Mermaid chart and the SVG is written next to the run report,
a file to upload as an artifact or open in a browser.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from pytest_shadowfarm.estimate import module_key
from pytest_shadowfarm.history.records import FAILING

__all__ = ["Bar", "bars_from_tests", "compress", "nice_step", "render_mermaid", "render_svg"]

COLOURS = {"passed": "#4c78a8", "failed": "#d62728", "skipped": "#b8b8b8"}


@dataclass(frozen=True)
class Bar:
    """One test, or several consecutive tests of one module, on one worker."""

    worker: str
    start_s: float
    end_s: float
    label: str
    #: "passed", "failed" (failed or error) or "skipped" (skipped, xfailed)
    kind: str
    tests: int = 1
    #: the module of a merged bar ("" when it spans several)
    module: str = ""


def _kind(outcome: str) -> str:
    if outcome in FAILING:
        return "failed"
    if outcome in ("skipped", "xfailed"):
        return "skipped"
    return "passed"


def bars_from_tests(tests: Iterable[Mapping[str, object]]) -> list[Bar]:
    """One bar per test that has a worker and a start time, sorted by worker and start."""
    bars = []
    for test in tests:
        start, duration = test.get("start_s"), test.get("duration_s")
        if not isinstance(start, int | float) or not isinstance(duration, int | float):
            continue
        bars.append(
            Bar(
                worker=str(test.get("worker") or "main"),
                start_s=float(start),
                end_s=float(start) + max(0.0, float(duration)),
                label=str(test.get("nodeid", "?")),
                kind=_kind(str(test.get("outcome", "passed"))),
            )
        )
    return sorted(bars, key=lambda b: (_worker_key(b.worker), b.start_s, b.label))


def _worker_key(worker: str) -> tuple[str, int, str]:
    """gw2 before gw10: natural order of worker ids."""
    match = re.fullmatch(r"(\D*)(\d+)(.*)", worker)
    if match is None:
        return (worker, -1, "")
    return (match.group(1), int(match.group(2)), match.group(3))


def _module_of(bar: Bar) -> str:
    return bar.module if bar.tests > 1 else module_key(bar.label)


def _join(a: Bar, b: Bar) -> Bar:
    """One bar for two neighbours on a worker (never a failure: those keep their own)."""
    module = _module_of(a) if _module_of(a) == _module_of(b) else ""
    count = a.tests + b.tests
    return Bar(
        worker=a.worker,
        start_s=a.start_s,
        end_s=max(a.end_s, b.end_s),
        label=f"{count} tests of {module or 'several modules'}",
        kind="skipped" if a.kind == b.kind == "skipped" else "passed",
        tests=count,
        module=module,
    )


def _mergeable(a: Bar, b: Bar) -> bool:
    return a.worker == b.worker and a.kind != "failed" and b.kind != "failed"


def _merge_modules(bars: Sequence[Bar]) -> list[Bar]:
    """Consecutive non-failing tests of one module on one worker become one bar."""
    merged: list[Bar] = []
    for bar in bars:
        last = merged[-1] if merged else None
        if last is not None and _mergeable(last, bar) and _module_of(last) == _module_of(bar) != "":
            merged[-1] = _join(last, bar)
        else:
            merged.append(bar)
    return merged


def _merge_shortest(bars: Sequence[Bar], budget: int) -> list[Bar]:
    """Join the neighbours that span the least time until ``budget`` bars are left.

    Long tests and long modules keep bars of their own; the short ones around them are
    what gets joined. Each round joins disjoint pairs, shortest first, at most as many as
    there are bars too many.
    """
    merged = list(bars)
    while len(merged) > budget:
        pairs = sorted(
            (merged[i + 1].end_s - merged[i].start_s, i)
            for i in range(len(merged) - 1)
            if _mergeable(merged[i], merged[i + 1])
        )
        chosen: set[int] = set()
        taken: set[int] = set()
        for _, i in pairs:
            if len(chosen) >= len(merged) - budget:
                break
            if i not in taken and i + 1 not in taken:
                chosen.add(i)
                taken.update((i, i + 1))
        if not chosen:
            break  # only failures (or one bar per worker) left
        joined: list[Bar] = []
        i = 0
        while i < len(merged):
            if i in chosen:
                joined.append(_join(merged[i], merged[i + 1]))
                i += 2
            else:
                joined.append(merged[i])
                i += 1
        merged = joined
    return merged


def compress(bars: Sequence[Bar], budget: int) -> list[Bar]:
    """At most about ``budget`` bars: modules first, then the shortest neighbours joined.

    Failures always keep their own bar, so a run with more failures than ``budget`` keeps
    all of them.
    """
    if len(bars) <= budget:
        return list(bars)
    return _merge_shortest(_merge_modules(bars), budget)


def nice_step(span: float, ticks: int = 8) -> float:
    """A 1/2/5 x 10^k step that cuts ``span`` into about ``ticks`` pieces."""
    if not span > 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover - the loop ends at 10


def _fmt(seconds: float) -> str:
    return f"{seconds:.2f}".rstrip("0").rstrip(".") if seconds < 100 else f"{seconds:.0f}"


def _lanes(bars: Sequence[Bar]) -> list[str]:
    return sorted({b.worker for b in bars}, key=_worker_key)


def render_svg(
    tests: Iterable[Mapping[str, object]],
    *,
    wall_s: float | None = None,
    title: str = "Which worker ran which test",
    width: int = 900,
    budget: int = 2000,
) -> str:
    """The timeline as a standalone, accessible SVG document."""
    bars = compress(bars_from_tests(tests), budget)
    lanes = _lanes(bars)
    failed = sum(b.tests for b in bars if b.kind == "failed")
    total = sum(b.tests for b in bars)
    end = max([b.end_s for b in bars] + [wall_s or 0.0, 1e-3])
    left, right, top, lane_h, gap = 80, 24, 40, 22, 6
    plot_w = width - left - right
    axis_y = top + len(lanes) * (lane_h + gap) + 4
    height = axis_y + 64

    def x(seconds: float) -> float:
        return left + seconds / end * plot_w

    desc = (
        f"{total} tests on {len(lanes)} worker{'s' if len(lanes) != 1 else ''} "
        f"over {_fmt(end)} seconds; {failed} failed (red)."
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="sf-title sf-desc" '
        'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" '
        'font-size="12">',
        f'<title id="sf-title">{escape(title)}</title>',
        f'<desc id="sf-desc">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold" fill="#222">'
        f"{escape(title)}</text>",
    ]
    step = nice_step(end)
    tick = 0.0
    while tick <= end + 1e-9:
        tx = x(tick)
        out.append(
            f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{axis_y}" '
            'stroke="#e3e3e3" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#444">'
            f"{_fmt(tick)}</text>"
        )
        tick += step
    out.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#888"/>'
    )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 34}" text-anchor="middle" '
        'fill="#444">seconds since the start of the run</text>'
    )
    for index, lane in enumerate(lanes):
        y = top + index * (lane_h + gap)
        out.append(
            f'<text x="{left - 8}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end" '
            f'fill="#222">{escape(lane)}</text>'
        )
        # Failures last, so they are drawn on top, and at least 5 px wide, so a 10 ms
        # failure in a 10 minute run is still seen; other bars get a thin white edge so
        # back-to-back tests stay apart.
        lane_bars = sorted((b for b in bars if b.worker == lane), key=lambda b: b.kind == "failed")
        for bar in lane_bars:
            bx = x(bar.start_s)
            failed = bar.kind == "failed"
            bw = max(5.0 if failed else 1.0, x(bar.end_s) - bx)
            stroke = (
                ' stroke="#5a0000" stroke-width="1.5"'
                if failed
                else ' stroke="#ffffff" stroke-width="0.5"'
            )
            tip = (
                f"{bar.label}: {bar.kind}, {_fmt(bar.end_s - bar.start_s)} s "
                f"from {_fmt(bar.start_s)} s"
            )
            out.append(
                f'<rect x="{bx:.2f}" y="{y}" width="{bw:.2f}" height="{lane_h}" '
                f'fill="{COLOURS[bar.kind]}"{stroke}><title>{escape(tip)}</title></rect>'
            )
    legend_y = axis_y + 50
    lx = left
    for kind, name in (("passed", "passed"), ("failed", "failed / error"), ("skipped", "skipped")):
        out.append(
            f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" fill="{COLOURS[kind]}"/>'
        )
        out.append(f'<text x="{lx + 17}" y="{legend_y}" fill="#222">{name}</text>')
        lx += 120
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    """A task name Mermaid cannot misread: no ':' (field separator), '#', ';' or newlines."""
    text = text.replace("::", " ").replace(":", " ")
    return re.sub(r"[#;\r\n]+", " ", text).strip() or "?"


def _mermaid_label(bar: Bar) -> str:
    """Short names: Mermaid writes a narrow bar's name beside it, where long ones collide."""
    if bar.tests > 1:
        name = (
            f"{bar.module.rsplit('/', 1)[-1]} x{bar.tests}" if bar.module else f"{bar.tests} tests"
        )
    else:
        name = bar.label.rsplit("::", 1)[-1]
    return _mermaid_text(("FAILED " if bar.kind == "failed" else "") + name)


def render_mermaid(
    tests: Iterable[Mapping[str, object]],
    *,
    title: str = "Which worker ran which test (minutes and seconds from the start)",
    per_lane: int = 8,
    budget: int = 60,
) -> str:
    """The timeline as a fenced Mermaid Gantt chart, for a GitHub job summary.

    Times are milliseconds from the start (``dateFormat x``); ``displayMode: compact``
    puts a worker's bars on one row where the renderer supports it, so a bar is cut
    short where the worker's next one starts (the controller's start times may overlap a
    few ms), or compact mode would open a second row. About ``per_lane`` bars per worker,
    ``budget`` in all: Mermaid labels every bar, and many narrow ones make a smudge.
    """
    single = bars_from_tests(tests)
    bars = compress(single, min(budget, per_lane * max(1, len(_lanes(single)))))
    lines = [
        "```mermaid",
        "---",
        "displayMode: compact",
        "---",
        "gantt",
        f"    title {_mermaid_text(title)}",
        "    dateFormat x",
        "    axisFormat %M:%S",
    ]
    for lane in _lanes(bars):
        lines.append(f"    section {_mermaid_text(lane)}")
        lane_bars = [b for b in bars if b.worker == lane]
        for bar, after in zip(lane_bars, [*lane_bars[1:], None], strict=True):
            start = round(bar.start_s * 1000)
            end = round(bar.end_s * 1000)
            if after is not None:
                end = min(end, round(after.start_s * 1000))
            end = max(end, start + 1)
            tag = "crit, " if bar.kind == "failed" else ("done, " if bar.kind == "skipped" else "")
            lines.append(f"    {_mermaid_label(bar)} : {tag}{start}, {end}")
    lines.append("```")
    return "\n".join(lines) + "\n"
