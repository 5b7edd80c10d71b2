"""The controller-side plugin object: run state of one pytest session.

Registered by :mod:`pytest_shadowfarm.plugin` only when the plugin is enabled and only in
the controller (never in an xdist worker). Hooks here translate pytest objects into plain
values for the history, the estimator and the report, which know nothing of pytest.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import starting_workers
from pytest_shadowfarm.errors import HistoryError, ShadowFarmWarning
from pytest_shadowfarm.estimate import WINDOW, Estimator
from pytest_shadowfarm.gcpause import paused_gc
from pytest_shadowfarm.history import HistoryStore, HistorySummary, RunRecord
from pytest_shadowfarm.history.store import RecentHistory
from pytest_shadowfarm.priority.signals import failure_window
from pytest_shadowfarm.report.recorder import PHASES, RunRecorder, count_outcomes
from pytest_shadowfarm.report.runreport import RunSummary, WorkerSpan, build_report, write_report
from pytest_shadowfarm.report.terminal import (
    ANOMALY_MIN_S,
    Anomaly,
    find_anomalies,
    header_line,
    prediction_line,
    summary_lines,
)
from pytest_shadowfarm.settings import Settings
from pytest_shadowfarm.swarm.usage import USAGE_ATTR, add_usage
from pytest_shadowfarm.vcs import head_commit_and_branch

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

__all__ = ["ShadowFarmPlugin", "emit_warning"]


def emit_warning(config: pytest.Config, message: str) -> None:
    """Show a :class:`ShadowFarmWarning` in pytest's warnings summary.

    Deliberately not ``warnings.warn`` under the project's filters: a project with
    ``filterwarnings = error`` would turn our "history moved aside" notice into a
    crashed run, and the environment failing must never break a run.
    """
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        warnings.warn(ShadowFarmWarning(message), stacklevel=2)
    config.hook.pytest_warning_recorded.call_historic(
        kwargs={
            "warning_message": records[0],
            "when": "config",
            "nodeid": "",
            "location": None,
        }
    )


class ShadowFarmPlugin:
    """State and hooks of one controller session."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.perf_counter,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.settings = settings
        self.clock = clock
        self.wallclock = wallclock
        self.t0 = clock()
        self.started_at = wallclock()
        self.store: HistoryStore | None = None
        #: the history's close, overlapping the end of the session (joined at unconfigure)
        self._closing: threading.Thread | None = None
        self.history: HistorySummary | None = None
        #: what this run read from the history at its start (empty: no history)
        self.recent = RecentHistory(durations={}, call_durations={}, runs={}, failures={})
        self.estimator = Estimator({})
        self.recorder = RunRecorder()
        self.etc: dict[str, float] = {}
        self.known_etc: dict[str, float] = {}
        self.predicted_total_s: float | None = None
        self.workers: dict[str, WorkerSpan] = {}
        self.events: list[dict[str, Any]] = []
        #: nodeid -> extra fields of that test in the run report (e.g. priority components)
        self.test_extras: dict[str, dict[str, Any]] = {}
        #: called before the run report is built, to fill ``test_extras`` only when a
        #: report is asked for (a run without one never pays for it)
        self.extras_providers: list[Callable[[], None]] = []
        #: top-level fields feature plugins add to the run report (e.g. "shard")
        self.report_extras: dict[str, Any] = {}
        self._report: dict[str, Any] | None = None
        self.recorded = False
        self.wall_s: float | None = None
        self.xdist = False
        #: xdist workers the run starts with (0 without xdist): whose past runs it reads
        self.workers_at_start = 0

    def now(self) -> float:
        """Seconds since the session start."""
        return self.clock() - self.t0

    def warn(self, message: str) -> None:
        emit_warning(self.config, message)

    # --- session start: history and estimates -------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # tryfirst: before xdist starts its workers, so times are measured from here.
        self.t0 = self.clock()
        self.started_at = self.wallclock()
        self.xdist = self.config.pluginmanager.getplugin("dsession") is not None
        # A bad --tx: xdist says what is wrong when it starts its workers.
        with contextlib.suppress(pytest.UsageError):
            self.workers_at_start = starting_workers(self.config)
        with paused_gc():
            self._read_history()

    def _read_history(self) -> None:
        try:
            self.store = HistoryStore.open(
                self.settings.history, keep=self.settings.history_keep, warn=self.warn
            )
            self.store.defer_checkpoints()  # to the close, which overlaps the session's end
            self.recent = self.store.recent(
                per_test=WINDOW,
                per_failing_test=failure_window(self.settings.half_life),
                workers=self.workers_at_start,
            )
            self.estimator = Estimator(self.recent.durations)
            # every test with a result has its runs in recent: no count over the history
            self.history = self.store.summary(tests=len(self.recent.runs))
        except (HistoryError, OSError, sqlite3.Error) as exc:
            self.warn(f"history disabled for this run: {exc}")
            self.store = None

    def pytest_report_header(self) -> str:
        return header_line(self.history)

    # --- prediction ------------------------------------------------------------------------

    def predict(self, nodeids: Sequence[str]) -> str:
        """Estimate every test of the run; return the line that says what is predicted."""
        estimates = {nodeid: self.estimator.estimate(nodeid) for nodeid in nodeids}
        self.etc = {nodeid: est.seconds for nodeid, est in estimates.items()}
        self.known_etc = {n: e.seconds for n, e in estimates.items() if e.source == "history"}
        self.predicted_total_s = sum(self.etc.values()) if self.known_etc else None
        return prediction_line(
            len(nodeids),
            len(self.known_etc),
            sum(self.etc.values()),
            like_this_run=self.recent.like_this_run,
            workers=self.workers_at_start,
        )

    def pytest_report_collectionfinish(self, items: Sequence[pytest.Item]) -> str | None:
        if self.xdist:
            return None  # the controller collects nothing under xdist: workers tell us
        return self.predict([item.nodeid for item in items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        if self.etc:
            return  # the first worker's collection is the reference
        line = self.predict(list(ids))
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.option.verbose >= 0:
            reporter.write_line(line)

    # --- workers ----------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        worker_id = node.gateway.id
        span = self.workers.setdefault(worker_id, WorkerSpan(worker_id, joined_s=self.now()))
        span.warm = bool(getattr(node.gateway, "shadowfarm_warm", False))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        span = self.workers.get(node.gateway.id)
        if span is not None:
            span.left_s = self.now()

    # --- tests ------------------------------------------------------------------------------

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.recorder.started(nodeid, self.now())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Three reports per test: the optional attributes are looked up in the report's
        # __dict__ (a missing attribute through getattr costs an exception each).
        extra = vars(report)
        trace = self.recorder.phase(
            report.nodeid,
            report.when if report.when in PHASES else "crash",
            report.outcome,
            report.duration,
            self.now(),
            worker=extra.get("worker_id") or (None if self.xdist else "main"),
            xfail="wasxfail" in extra,
        )
        usage = extra.get(USAGE_ATTR)
        if usage is not None:
            add_usage(trace, usage)  # CPU and peak RSS measured in the worker (telemetry)

    # --- session end: history, report -------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        wall = self.wall_s = self.now()
        for span in self.workers.values():
            if span.left_s is None:
                span.left_s = wall
        with paused_gc():
            if self.store is not None and self.recorder.traces:
                self._record(wall)
            if self.settings.report_json is not None:
                write_report(self.settings.report_json, self.final_report(), on_error=self.warn)
        if self.store is not None:
            self._closing = self.store.close_in_background()
            self.store = None

    def final_report(self) -> dict[str, Any]:
        """The run report (what ``--sf-report-json`` writes), built once the session ended.

        Read by feature plugins at session end (the GitHub summary reads it in
        ``pytest_terminal_summary``); asked earlier, it is built afresh and not kept.
        """
        if self._report is not None:
            return self._report
        while self.extras_providers:
            self.extras_providers.pop(0)()
        summary = RunSummary(
            wall_s=self.wall_s if self.wall_s is not None else self.now(),
            predicted_total_s=self.predicted_total_s,
            etc=self.etc,
            workers=list(self.workers.values()),
            events=self.events,
            test_extras=self.test_extras,
        )
        report = {**build_report(self.recorder, summary), **self.report_extras}
        if self.wall_s is not None:
            self._report = report
        return report

    def _record(self, wall: float) -> None:
        assert self.store is not None
        commit, branch = head_commit_and_branch(self.settings.rootdir)
        results = self.recorder.results()
        run = RunRecord(
            started=self.started_at,
            finished=self.started_at + wall,
            argv=tuple(self.config.invocation_params.args),
            git_commit=commit,
            git_branch=branch,
            workers=len(self.workers),
            counts=count_outcomes(results),
        )
        try:
            self.store.record_run(run, results)
            tests = len(self.recent.runs.keys() | self.recorder.traces.keys())
            self.history = self.store.summary(tests=tests)
            self.recorded = True
        except sqlite3.Error as exc:
            self.warn(f"could not record this run in {self.settings.history}: {exc}")

    @functools.cached_property
    def call_estimator(self) -> Estimator:
        """The call phase alone: what anomalies are judged by (see find_anomalies)."""
        return Estimator(self.recent.call_durations)

    def anomalies(self) -> list[Anomaly]:
        """Tests of this run far slower than their history (see find_anomalies)."""
        slow = [
            t for t in self.recorder.traces.values() if t.seconds.get("call", 0.0) > ANOMALY_MIN_S
        ]
        expected = {
            t.nodeid: self.call_estimator.etc(t.nodeid) for t in slow if t.nodeid in self.known_etc
        }
        return find_anomalies(slow, expected)

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        lines = summary_lines(
            predicted_s=self.predicted_total_s,
            actual_s=self.recorder.actual_total_s,
            wall_s=self.wall_s if self.wall_s is not None else self.now(),
            anomalies=self.anomalies(),
            history=self.history,
            recorded=self.recorded,
        )
        terminalreporter.section("shadowfarm", sep="-")
        for line in lines:
            terminalreporter.write_line(line)

    def pytest_unconfigure(self) -> None:
        if self.store is not None:  # the session never ended (e.g. a usage error)
            self.store.close()
            self.store = None
        if self._closing is not None:
            self._closing.join()
