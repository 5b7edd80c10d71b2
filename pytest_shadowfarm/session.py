"""The session writer: the one plugin object that applies pytest's and xdist's hooks to the Run.

Registered by :mod:`pytest_shadowfarm.plugin` only when the plugin is enabled and only in
the controller (never in an xdist worker). It reads the history at the session start,
estimates the selected tests, keeps the worker registry and the per-test traces, and at
the end records the run in the history and writes the run report. Hooks here translate
pytest objects into plain values; the history, the estimator and the report know
nothing of pytest.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import dsession, starting_workers
from pytest_shadowfarm.errors import HistoryError, ShadowFarmWarning
from pytest_shadowfarm.estimate import WINDOW, Estimator
from pytest_shadowfarm.files import ensure_state_dir
from pytest_shadowfarm.gcpause import paused_gc
from pytest_shadowfarm.history import HistoryStore, RunRecord
from pytest_shadowfarm.history.opening import is_damaged, set_aside
from pytest_shadowfarm.priority.signals import failure_window
from pytest_shadowfarm.recorder import PHASES, count_outcomes
from pytest_shadowfarm.report.runreport import RunSummary, build_report, write_report
from pytest_shadowfarm.report.terminal import (
    ANOMALY_MIN_S,
    Anomaly,
    find_anomalies,
    header_line,
    prediction_line,
    summary_lines,
    write_own_line,
)
from pytest_shadowfarm.usage import USAGE_ATTR, add_usage
from pytest_shadowfarm.vcs import head_commit_and_branch
from shadowfarm_wire.protocol import COLLECTION_KEY

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from pytest_shadowfarm.priority.plan import Planner
    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.workers.source import WorkerSource

__all__ = ["SessionWriter", "emit_warning"]


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


class SessionWriter:
    """Applies one controller session's hooks to its :class:`~pytest_shadowfarm.run.Run`."""

    def __init__(
        self,
        config: pytest.Config,
        run: Run,
        planner: Planner,
        *,
        source: WorkerSource | None = None,
    ) -> None:
        self.config = config
        self.run = run
        self.settings = run.settings
        self.planner = planner
        #: where the run's workers come from (told when one dies under the run)
        self.source = source
        #: the history's close, overlapping the end of the session (joined at unconfigure)
        self._closing: threading.Thread | None = None
        self._report: dict[str, Any] | None = None
        #: the state directory this run made (said once, in the header)
        self.created_dir: Path | None = None

    # --- session start: history -------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # tryfirst: before xdist starts its workers, so times are measured from here.
        run = self.run
        run.start()
        run.xdist = dsession(self.config) is not None
        # A bad --tx: xdist says what is wrong when it starts its workers.
        with contextlib.suppress(pytest.UsageError):
            run.workers_at_start = starting_workers(self.config)
        with paused_gc():
            self._read_history()

    def _read_history(self) -> None:
        """Open and read the history; a file damaged inside is set aside once, then anew.

        The open checks the header only (a full integrity check would read the whole
        file at every run's start); a page damaged further in shows when it is read. Such
        a file used to disable the history at every run: it is moved aside once instead,
        with a warning naming the moved file, and a new history starts.
        """
        run = self.run
        try:
            self._load_history()
        except (HistoryError, OSError, sqlite3.Error) as exc:
            if not is_damaged(exc):
                self._no_history(exc)
                return
            if run.store is not None:
                with contextlib.suppress(sqlite3.Error):
                    run.store.close()
                run.store = None
            path = self.settings.history
            try:
                aside = set_aside(path)
            except (HistoryError, OSError) as again:
                self._no_history(again)
                return
            run.warn(
                f"{path}: the history is damaged inside ({exc}); moved it to {aside.name} "
                "and started a new history (delete the moved file if you do not need it)"
            )
            try:
                self._load_history()
            except (HistoryError, OSError, sqlite3.Error) as again:
                self._no_history(again)

    def _no_history(self, exc: BaseException) -> None:
        self.run.warn(f"history disabled for this run: {exc}")
        self.run.store = None

    def _load_history(self) -> None:
        run = self.run
        if ensure_state_dir(self.settings.history.parent):
            self.created_dir = self.settings.history.parent
        run.store = HistoryStore.open(
            self.settings.history, keep=self.settings.history_keep, warn=run.warn
        )
        run.store.defer_checkpoints()  # to the close, which overlaps the session's end
        run.recent = run.store.recent(
            per_test=WINDOW,
            per_failing_test=failure_window(self.settings.half_life),
            workers=run.workers_at_start,
        )
        run.estimator = Estimator(run.recent.durations)
        run.overheads = run.store.overheads(workers=run.workers_at_start)
        # every test with a result has its runs in recent: no count over the history
        run.history = run.store.summary(tests=len(run.recent.runs))

    def pytest_report_header(self) -> list[str]:
        lines = [header_line(self.run.history)]
        if self.created_dir is not None:
            lines.insert(
                0,
                f"shadowfarm: created {self.created_dir} for the history and run reports "
                "(its .gitignore keeps it out of git)",
            )
        return lines

    # --- prediction ------------------------------------------------------------------------

    def predict(self, nodeids: Sequence[str]) -> str:
        """Estimate every test of the run; return the line that says what is predicted."""
        run = self.run
        self.planner.estimate(nodeids, run.estimator)
        plan = run.plan
        return prediction_line(
            len(nodeids),
            len(plan.known_etc),
            plan.predicted_total_s,
            like_this_run=run.recent.like_this_run,
            workers=run.workers_at_start,
            wall_s=self.predicted_wall_s(),
        )

    def predicted_wall_s(self) -> float | None:
        """When the run should end: its tests plus what recent runs spent around them."""
        plan, overheads = self.run.plan, self.run.overheads
        if overheads is None or plan.predicted_total_s is None:
            return None
        workers = self.run.workers_at_start
        return overheads.wall(plan.predicted_total_s, len(plan.expected), workers)

    def pytest_report_collectionfinish(self, items: Sequence[pytest.Item]) -> str | None:
        if self.run.xdist:
            return None  # the controller collects nothing under xdist: workers tell us
        return self.predict([item.nodeid for item in items])

    # --- workers ----------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        self.run.workers.asked(str(node.gateway.id), node=node)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        gateway = node.gateway
        warm = bool(getattr(gateway, "shadowfarm_warm", False))
        # set by the hand-off that made the gateway (farm.handoff, dask.gateway)
        engine = getattr(gateway, "shadowfarm_engine", None)
        host = getattr(gateway, "shadowfarm_host", None)
        source = engine if engine not in (None, "local") else ("farm" if warm else None)
        self.run.workers.ready(str(gateway.id), warm=warm, source=source, engine=engine, host=host)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self.run.workers.collected(str(node.gateway.id))
        if self.run.plan.etc:
            return  # the first worker's collection is the reference
        line = self.predict(list(ids))
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.option.verbose >= 0:
            write_own_line(reporter, line)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        worker = str(node.gateway.id)
        crashed = error is not None
        # a warm farm worker's says whether it reused the collection it prepared
        output = getattr(node, "workeroutput", None) or {}
        self.run.workers.down(
            worker,
            crashed=crashed,
            reason=str(error) if crashed else None,
            collection=output.get(COLLECTION_KEY),
        )
        if crashed and self.source is not None:
            self.source.lost(worker, error)

    # --- tests ------------------------------------------------------------------------------

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.run.recorder.started(nodeid, self.run.now())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Three reports per test: the optional attributes are looked up in the report's
        # __dict__ (a missing attribute through getattr costs an exception each).
        run = self.run
        extra = vars(report)
        trace = run.recorder.phase(
            report.nodeid,
            report.when if report.when in PHASES else "crash",
            report.outcome,
            report.duration,
            run.now(),
            worker=extra.get("worker_id") or (None if run.xdist else "main"),
            xfail="wasxfail" in extra,
        )
        usage = extra.get(USAGE_ATTR)
        if usage is not None:
            add_usage(trace, usage)  # CPU and peak RSS measured in the worker (telemetry)

    # --- session end: history, report -------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        run = self.run
        wall = run.wall_s = run.now()
        run.workers.close(wall)
        with paused_gc():
            if run.store is not None and run.recorder.traces:
                self._record(wall)
            if self.settings.report_json is not None:
                write_report(self.settings.report_json, self.final_report(), on_error=run.warn)
            if self.settings.timeline is not None:
                self._write_timeline(self.settings.timeline)
        if run.store is not None:
            self._closing = run.store.close_in_background()
            run.store = None

    def _write_timeline(self, path: Path) -> None:
        from pytest_shadowfarm.report.timeline import render_svg

        report = self.final_report()
        svg = render_svg(report.get("tests", []), wall_s=report.get("wall_s"))
        try:
            ensure_state_dir(path.parent)
            path.write_text(svg, encoding="utf-8")
        except OSError as exc:
            self.run.warn(f"cannot write the timeline to {path} (--sf-timeline): {exc}")

    def final_report(self) -> dict[str, Any]:
        """The run report (what ``--sf-report-json`` writes), built once the session ended.

        Read by features at session end (the GitHub summary reads it in
        ``pytest_terminal_summary``); asked earlier, it is built afresh and not kept.
        """
        if self._report is not None:
            return self._report
        run = self.run
        while run.extras_providers:
            run.extras_providers.pop(0)()
        for nodeid, fields in run.plan.report_extras().items():
            run.test_extras.setdefault(nodeid, {}).update(fields)
        summary = RunSummary(
            wall_s=run.elapsed(),
            predicted_total_s=run.plan.predicted_total_s,
            etc=run.plan.etc,
            workers=list(run.workers),
            events=run.events.entries,
            test_extras=run.test_extras,
        )
        report = {**build_report(run.recorder, summary), **run.report_extras}
        report["predicted_wall_s"] = self.predicted_wall_s()
        # a run stopped early (-x, --maxfail) is compared over the tests that ran
        report["selected_tests"] = len(run.plan.expected)
        report["predicted_ran_s"] = sum(run.plan.expected.get(n, 0.0) for n in run.recorder.traces)
        if run.wall_s is not None:
            self._report = report
        return report

    def _record(self, wall: float) -> None:
        run = self.run
        assert run.store is not None
        commit, branch = head_commit_and_branch(self.settings.rootdir)
        results = run.recorder.results()
        record = RunRecord(
            started=run.started_at,
            finished=run.started_at + wall,
            argv=tuple(self.config.invocation_params.args),
            git_commit=commit,
            git_branch=branch,
            workers=len(run.workers),
            counts=count_outcomes(results),
        )
        try:
            run.store.record_run(record, results)
            tests = len(run.recent.runs.keys() | run.recorder.traces.keys())
            run.history = run.store.summary(tests=tests)
            run.recorded = True
        except sqlite3.Error as exc:
            run.warn(f"could not record this run in {self.settings.history}: {exc}")

    @functools.cached_property
    def call_estimator(self) -> Estimator:
        """The call phase alone: what anomalies are judged by (see find_anomalies)."""
        return Estimator(self.run.recent.call_durations)

    def anomalies(self) -> list[Anomaly]:
        """Tests of this run far slower than their history (see find_anomalies)."""
        known = self.run.plan.known_etc
        slow = [
            t
            for t in self.run.recorder.traces.values()
            if t.seconds.get("call", 0.0) > ANOMALY_MIN_S
        ]
        expected = {t.nodeid: self.call_estimator.etc(t.nodeid) for t in slow if t.nodeid in known}
        return find_anomalies(slow, expected)

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        run = self.run
        traces = run.recorder.traces
        expected = run.plan.expected
        lines = summary_lines(
            predicted_s=run.plan.predicted_total_s,
            actual_s=run.recorder.actual_total_s,
            wall_s=run.elapsed(),
            anomalies=self.anomalies(),
            history=run.history,
            recorded=run.recorded,
            predicted_wall_s=self.predicted_wall_s(),
            ran=len(traces),
            selected=len(expected) or None,
            predicted_ran_s=sum(expected.get(n, 0.0) for n in traces),
        )
        terminalreporter.section("shadowfarm", sep="-")
        for line in lines:
            terminalreporter.write_line(line)

    def pytest_unconfigure(self) -> None:
        run = self.run
        if run.store is not None:  # the session never ended (e.g. a usage error)
            run.store.close()
            run.store = None
        if self._closing is not None:
            self._closing.join()
