"""Collects what happens to each test during a run, from plain values (no pytest import).

The plugin feeds it the start of each test and each phase report; at the end it yields
one :class:`~pytest_shadowfarm.history.ResultRecord` per test, in the order the tests
started. Times are seconds since the controller's session start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pytest_shadowfarm.history.records import ResultRecord

__all__ = ["PHASES", "RunRecorder", "TestTrace", "count_outcomes", "final_outcome"]

PHASES = ("setup", "call", "teardown")


def final_outcome(phases: dict[str, str], *, xfail: bool = False) -> str:
    """One outcome for a test from the outcomes of its phases (pytest's own reading).

    A failed setup or teardown is an "error", a failed call a "failure"; a skip in any
    phase is a skip; an expected failure is "xfailed" and an unexpected pass "xpassed".
    """
    call = phases.get("call")
    if phases.get("setup") == "failed":
        return "error"
    if call == "failed":
        return "failed"
    if phases.get("crash") in ("failed", "rerun"):
        # "rerun": its worker crashed and the rerun never started (the run stopped first)
        return "failed"
    if phases.get("teardown") == "failed":
        return "error"
    if "skipped" in phases.values():
        return "xfailed" if xfail else "skipped"
    if xfail and call == "passed":
        return "xpassed"
    return "passed" if phases else "skipped"


@dataclass(slots=True)
class TestTrace:
    """Everything known about one test in this run (slots: a run holds one per test, and
    an instance dict each would be 5,000 more objects for every full collection to walk)."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    order: int
    start_s: float
    worker: str | None = None
    phases: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    xfail: bool = False
    reruns: int = 0
    peak_rss_kb: int | None = None
    cpu_s: float | None = None

    @property
    def outcome(self) -> str:
        return final_outcome(self.phases, xfail=self.xfail)

    @property
    def duration_s(self) -> float:
        return sum(self.seconds.values())

    def to_result(self) -> ResultRecord:
        return ResultRecord(
            nodeid=self.nodeid,
            outcome=self.outcome,
            setup_s=self.seconds.get("setup", 0.0),
            call_s=self.seconds.get("call", 0.0),
            teardown_s=self.seconds.get("teardown", 0.0),
            worker=self.worker,
            start_s=round(self.start_s, 6),
            peak_rss_kb=self.peak_rss_kb,
            cpu_s=self.cpu_s,
        )


def count_outcomes(tests: Iterable[TestTrace | ResultRecord]) -> dict[str, int]:
    """outcome -> how many of ``tests`` had it."""
    return dict(Counter(test.outcome for test in tests))


class RunRecorder:
    """The run as it happens: one :class:`TestTrace` per test, the first failure time."""

    def __init__(self) -> None:
        self.traces: dict[str, TestTrace] = {}
        self.first_failure_s: float | None = None

    def started(self, nodeid: str, at_s: float, worker: str | None = None) -> None:
        trace = self.traces.get(nodeid)
        if trace is None:
            self.traces[nodeid] = TestTrace(nodeid, len(self.traces), at_s, worker)
        else:
            # Started again: a rerun after its worker crashed. Keep the order it first had.
            self.traces[nodeid] = replace(
                trace, start_s=at_s, worker=worker, phases={}, seconds={}, reruns=trace.reruns + 1
            )

    def phase(
        self,
        nodeid: str,
        when: str,
        outcome: str,
        seconds: float,
        at_s: float,
        *,
        worker: str | None = None,
        xfail: bool = False,
    ) -> TestTrace:
        """Record one phase report (``when`` is setup/call/teardown, or "crash"); return
        the test's trace."""
        trace = self.traces.get(nodeid)
        if trace is None:  # a report without a logstart (e.g. a crash report from xdist)
            self.started(nodeid, at_s, worker)
            trace = self.traces[nodeid]
        trace.phases[when] = outcome
        trace.seconds[when] = trace.seconds.get(when, 0.0) + max(0.0, seconds)
        if xfail:
            trace.xfail = True
        if worker is not None:
            trace.worker = worker
        if outcome == "failed" and not xfail and self.first_failure_s is None:
            self.first_failure_s = at_s
        return trace

    def results(self) -> list[ResultRecord]:
        return [t.to_result() for t in self.ordered()]

    def ordered(self) -> list[TestTrace]:
        return sorted(self.traces.values(), key=lambda t: t.order)

    def counts(self) -> dict[str, int]:
        return count_outcomes(self.traces.values())

    @property
    def actual_total_s(self) -> float:
        return sum(t.duration_s for t in self.traces.values())
