"""What the history keeps: one :class:`RunRecord` per run, one :class:`ResultRecord` per test."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FAILING", "OUTCOMES", "HistorySummary", "PastResult", "ResultRecord", "RunRecord"]

#: every outcome a result may have; "error" is a failure outside the call phase
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
FAILING = frozenset({"failed", "error"})


@dataclass(frozen=True)
class ResultRecord:
    """The final result of one test item in one run (all times in seconds)."""

    nodeid: str
    outcome: str
    setup_s: float | None = 0.0
    call_s: float | None = 0.0
    teardown_s: float | None = 0.0
    worker: str | None = None
    #: seconds from the controller's session start to the start of the test's setup
    start_s: float | None = None
    peak_rss_kb: int | None = None
    cpu_s: float | None = None

    @property
    def duration_s(self) -> float | None:
        """Setup + call + teardown; None when no phase time is known (e.g. imported lastfailed)."""
        parts = [p for p in (self.setup_s, self.call_s, self.teardown_s) if p is not None]
        return sum(parts) if parts else None


@dataclass(frozen=True)
class RunRecord:
    """One pytest run (or one imported file, ``source`` says which)."""

    started: float
    finished: float
    argv: tuple[str, ...] = ()
    git_commit: str | None = None
    git_branch: str | None = None
    workers: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    source: str = "pytest"

    @property
    def wall_s(self) -> float:
        return max(0.0, self.finished - self.started)


@dataclass(frozen=True)
class HistorySummary:
    """What the run header tells about the history."""

    path: str
    runs: int
    tests: int


@dataclass(frozen=True, slots=True)
class PastResult:
    """One past result of a test, as the estimator and the priority signals read it."""

    run_id: int
    outcome: str
    duration_s: float | None
    git_commit: str | None
