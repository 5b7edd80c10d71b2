"""What the history keeps: one :class:`RunRecord` per run, one :class:`ResultRecord` per test."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "FAILING",
    "OUTCOMES",
    "HistorySummary",
    "Overheads",
    "PastResult",
    "RecentHistory",
    "ResultRecord",
    "RunRecord",
]

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


@dataclass(frozen=True)
class RecentHistory:
    """The slice of the history a run reads at its start: bounded by the suite's size.

    A history keeps up to ``history_keep`` (50) results per test; reading all of them at
    every start would cost a 5,000-test suite most of a second. The estimator reads only
    the newest few durations and the failure signal's weights halve every few runs, so
    this holds the newest ``per_test`` durations of every test, and whole results (the
    newest ``per_failing_test``) only of the tests that failed at least once in the kept
    history: for every other test the failure signal is zero.

    The per-test sequences are tuples of numbers, which CPython's garbage collector
    stops tracking: a large suite's history then does not lengthen every full
    collection for the rest of the run (as lists, 5,000 tests' cost measurable time).
    """

    #: nodeid -> setup + call + teardown seconds of its newest results, oldest first
    durations: dict[str, tuple[float, ...]]
    #: nodeid -> call-phase seconds of its newest results, oldest first
    call_durations: dict[str, tuple[float, ...]]
    #: nodeid -> the runs of its newest results, oldest first (every test the history knows)
    runs: dict[str, tuple[int, ...]]
    #: nodeid -> its newest results, oldest first: only tests that failed at least once
    failures: dict[str, list[PastResult]]
    #: tests whose durations come only from runs with this run's number of workers
    #: (see :meth:`HistoryStore.recent`); 0 when nothing was filtered
    like_this_run: int = 0


@dataclass(frozen=True)
class Overheads:
    """What a run spends outside the recorded test durations (medians of recent runs).

    The recorded duration of a test is its setup, call and teardown; the wall clock also
    holds collection and start-up before the first test, pytest's own work between two
    tests (hooks, reporting, the garbage collector), and the end of the session. A
    prediction of when the run ends adds these: leaving them out read 15-30% low.
    """

    #: seconds from the session start to the first test (collection, start-up)
    before_s: float
    #: seconds per test between its recorded phases and the next test's start
    per_test_s: float
    #: seconds from the last test's end to the end of the session
    after_s: float

    def wall(self, tests_s: float, tests: int, workers: int = 0) -> float:
        """The predicted wall time of a run of ``tests`` tests taking ``tests_s`` in all,
        shared by ``workers`` xdist workers (0: one process)."""
        busy = tests_s + self.per_test_s * tests
        return self.before_s + busy / max(1, workers) + self.after_s
