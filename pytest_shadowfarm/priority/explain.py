"""What the run says about its order: the header line and the ``--sf-explain`` table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_shadowfarm.priority.impact import ChangeImpact
from pytest_shadowfarm.priority.score import Ranked

__all__ = ["explain_lines", "signal_counts", "summary_line"]


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


def signal_counts(ranked: Iterable[Ranked], changed: ChangeImpact | None) -> list[str]:
    """The top reasons of a run as short phrases, strongest signals first."""
    tests = list(ranked)
    in_changed = imports_changed = 0
    if changed is not None:
        for r in tests:
            impact = changed.for_nodeid(r.nodeid)
            if impact is not None:
                if impact.hops == 0:
                    in_changed += 1
                else:
                    imports_changed += 1
    failed = sum(r.likely_failure for r in tests)
    flaky = sum(r.flaky for r in tests)
    new = sum("new" in r.components for r in tests)
    important = sum(r.components.get("marker", 0.0) > 0 for r in tests)
    low = sum(r.components.get("marker", 0.0) < 0 for r in tests)
    phrases = []
    if failed:
        phrases.append(f"{failed} failed recently")
    if in_changed:
        phrases.append(f"{in_changed} in changed test files")
    if imports_changed:
        phrases.append(f"{imports_changed} import changed code")
    if new:
        phrases.append(f"{new} new")
    if important:
        phrases.append(f"{important} marked important")
    if flaky:
        phrases.append(f"{flaky} flaky")
    if low:
        phrases.append(f"{low} marked low")
    return phrases


def summary_line(
    mode: str,
    ranked: Iterable[Ranked],
    changed: ChangeImpact | None,
    *,
    note: str | None = None,
) -> str:
    """One header line: the order policy, then the signals that shaped it."""
    if note:
        return f"shadowfarm: order {mode}: {note}"
    phrases = signal_counts(ranked, changed)
    since = f"; changes vs {changed.base}" if changed is not None and changed.changed else ""
    if not phrases:
        return f"shadowfarm: order {mode} by urgency: no test stands out, shortest first{since}"
    return f"shadowfarm: order {mode} by urgency: {', '.join(phrases)}{since}"


def explain_lines(run_order: Sequence[Ranked], limit: int) -> list[str]:
    """The first ``limit`` tests of the run with their urgency, priority, ETC and components."""
    shown = run_order[:limit]
    if not shown:
        return []
    lines = [
        f"shadowfarm: the first {len(shown)} of {len(run_order)} tests "
        "(urgency = priority / ETC; priority = sum of the components):",
        f"  {'#':>4} {'urgency':>9} {'priority':>8} {'ETC':>8}  test",
    ]
    for position, r in enumerate(shown, 1):
        components = " ".join(f"{name}={value:.2f}" for name, value in r.components.items())
        reasons = "; ".join(r.reasons) if r.reasons else "no signal"
        lines.append(
            f"  {position:>4} {r.urgency:>9.3g} {r.priority:>8.3f} {_fmt_seconds(r.etc):>8}  "
            f"{r.nodeid}"
        )
        lines.append(f"  {'':>32}{components} — {reasons}")
    return lines
