"""The xdist side of the scheduler: make it, feed it per-test inputs, rerun crashed tests once.

:class:`SchedulerPlugin` lives in the controller (registered by
:mod:`pytest_shadowfarm.plugin` only when xdist distributes, ``--sf-dist`` is on and the
installed xdist/execnet are the tested ones). :class:`MarkerSender` lives in each
worker: the controller never sees items, only node ids, so the first worker sends the
``shadowfarm`` marker of each marked test over a channel of its own before it reports
its collection. (A custom event on xdist's own channel kills the worker with
``ValueError('unknown event')``.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import check_internals, distributing, dsession, starting_workers
from pytest_shadowfarm.sched.inputs import from_ranked
from pytest_shadowfarm.sched.policy import TestInputs
from pytest_shadowfarm.sched.scheduler import SCOPES, ShadowFarmScheduling

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from pytest_shadowfarm.priority.plan import Planner
    from pytest_shadowfarm.priority.score import Ranked
    from pytest_shadowfarm.run import Run

__all__ = [
    "MARKERS_KEY",
    "MarkerSender",
    "SchedulerPlugin",
    "configure_worker",
    "make_controller",
    "marker_value",
]

#: ``workerinput`` key of the channel the workers send marker priorities over
MARKERS_KEY = "shadowfarm_markers_channel"

RERUN_REASON = "rerun after worker crash"


def marker_value(marker: Any) -> object:
    """The importance given to ``@pytest.mark.shadowfarm(...)`` (positional or ``priority=``)."""
    if marker.args:
        return marker.args[0]
    return marker.kwargs.get("priority")


def xdist_group(item: pytest.Item) -> str | None:
    """The ``xdist_group`` of an item, named as xdist names it (joined sorted names)."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) if names else None


class MarkerSender:
    """Worker side: send marker priorities and xdist groups before collectionfinish.

    Groups travel here because xdist 3.8 passes them by appending ``@group`` to the node
    id, which pytest 9.2 no longer lets a plugin change: ``--dist loadgroup`` silently
    stops grouping (pytest-dev/pytest-xdist#1386; the maintainers suggest sending the
    groups separately, which is what this does).
    """

    def __init__(self, channel: Any, *, groups: bool) -> None:
        self.channel = channel
        self.groups = groups

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # tryfirst: before xdist's WorkerInteractor sends "collectionfinish" on the same
        # connection, so the controller holds these when it schedules.
        from pytest_shadowfarm.priority import parse_importance

        marks: dict[str, float] = {}
        groups: dict[str, str] = {}
        for item in session.items:
            marker = item.get_closest_marker("shadowfarm")
            if marker is not None:
                # a bad value is reported by the ordering plugin in plain runs
                with contextlib.suppress(ValueError):
                    marks[item.nodeid] = parse_importance(marker_value(marker))
            group = xdist_group(item) if self.groups else None
            if group is not None:
                groups[item.nodeid] = group
        try:
            self.channel.send({"markers": marks, "groups": groups})
            self.channel.close()
        except OSError:  # pragma: no cover - the controller went away
            pass


class SchedulerPlugin:
    """Controller side: our scheduler for load/worksteal/loadscope/loadfile/loadgroup."""

    def __init__(self, config: pytest.Config, run: Run, planner: Planner) -> None:
        self.config = config
        self.run = run
        self.planner = planner
        self.scheduler: ShadowFarmScheduling | None = None
        #: the run's markers and groups, filled by the first worker's MarkerSender
        self.markers = run.plan.markers
        self.groups = run.plan.groups
        self._markers_from: str | None = None
        self.crashed: set[str] = set()
        self.crash_failed: list[str] = []
        #: the order lines were written (once per run)
        self._told = False

    # --- markers from the workers ---------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        channel = node.gateway.newchannel()
        worker = node.gateway.id

        def receive(message: object) -> None:
            # Runs in execnet's receiver thread: only store (the first worker's wins).
            if isinstance(message, dict) and self._markers_from is None:
                self._markers_from = worker
                self.markers.update(message.get("markers", {}))
                self.groups.update(message.get("groups", {}))

        channel.setcallback(receive)
        node.workerinput[MARKERS_KEY] = channel

    # --- the scheduler ----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        # xdist's --dist takes fixed choices (pytest-xdist#970), so we answer the hook
        # first for the modes we replace and leave "each" to xdist.
        dist = str(config.getvalue("dist"))
        scope = SCOPES.get(dist)
        if scope is None:
            return None
        if dist == "loadgroup":
            scope = self._group_scope
        self.scheduler = ShadowFarmScheduling(
            inputs=self.inputs,
            scope=scope,
            log=log.shadowfarm,
            on_reject=self._rejected,
            expected_workers=starting_workers(config),
        )
        return self.scheduler

    def _group_scope(self, nodeid: str) -> str | None:
        group = self.groups.get(nodeid)
        return "@" + group if group is not None else SCOPES["loadgroup"](nodeid)

    def inputs(self, nodeids: Sequence[str]) -> Mapping[str, TestInputs]:
        """ETC, urgency and front flag per test: the priority engine's ranks of this run."""
        run = self.run
        ranked = self.planner.rank(nodeids, run.estimator, run.recent)
        if not self._told:
            self._told = True
            self._tell(ranked)
        return from_ranked(ranked, run.plan.markers)

    def _tell(self, ranked: Mapping[str, Ranked]) -> None:
        """The order, change-impact and explain lines, as a run without ``-n`` prints them.

        Called once, when the first collection is scheduled: the controller collects
        nothing itself, so pytest's collection-finish report has no tests to show.
        """
        # here, not at the top: xdist workers import this module and must not pay for these
        from pytest_shadowfarm.ordering import entries_of, order_lines
        from pytest_shadowfarm.priority.order import order
        from pytest_shadowfarm.report.terminal import write_own_line

        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.option.verbose < 0:
            return
        mode = self.run.settings.order
        tests = list(ranked.values())
        run_order = [tests[i] for i in order(entries_of(tests), mode)]
        for line in order_lines(self.run, ranked, run_order, mode, None):
            write_own_line(reporter, line)

    def _rejected(self, worker: str, diff: str) -> None:
        first = "\n".join(diff.splitlines()[:12])
        self.run.warn(
            f"worker {worker} collected different tests than the first worker, so it was "
            "shut down and ran nothing (make collection deterministic: same environment, "
            f"no random parametrization):\n{first}"
        )
        self.run.events.emit("worker_rejected", worker=worker)

    # --- crashes ----------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: Any, sched: Any) -> None:
        if sched is not self.scheduler or self.scheduler is None:
            return
        worker = getattr(getattr(report, "node", None), "gateway", None)
        worker_id = getattr(worker, "id", None)
        self._spare_the_restart_limit()
        if crashitem in self.crashed:
            report.longrepr = f"{report.longrepr} (crashed again on its rerun: not rerun)"
            self.crash_failed.append(crashitem)
            self.run.events.emit("crash_failed", nodeid=crashitem, worker=worker_id)
            return
        if not self._rerun_possible():
            return
        self.crashed.add(crashitem)
        self.scheduler.mark_test_pending(crashitem)
        report.outcome = "rerun"
        report.longrepr = f"{RERUN_REASON}: {report.longrepr}"
        self.run.events.emit("crash_rerun", nodeid=crashitem, worker=worker_id, reason=RERUN_REASON)

    def _spare_the_restart_limit(self) -> None:
        """A crash a test caused does not count against xdist's default restart limit.

        xdist stops the whole run after ``4 * -n`` crashed workers (its default, from
        pytest-xdist#226: a crash in collection restarts workers forever). With a rerun
        per crashed test, 5 tests that kill their worker cost 10 crashes, and at ``-n 2``
        the 9th stopped the run: the tests not yet run then got no report at all. Here
        each crash is pinned on one test and each test crashes at most twice (its run and
        its rerun), so replacing those workers is bounded without the limit; crashes no
        test is blamed for (collection, start-up) still count. An explicit
        ``--max-worker-restart`` is the user's choice and stays as given.
        """
        session = dsession(self.config)
        if session is None or self.config.option.maxworkerrestart is not None:
            return
        maximum = getattr(session, "_max_worker_restart", None)
        if isinstance(maximum, int):
            session._max_worker_restart = maximum + 1

    def _rerun_possible(self) -> bool:
        """Will a worker be left to run a rerun (xdist replaces the crashed one)?"""
        session = dsession(self.config)
        if session is None or getattr(session, "shouldstop", False):
            return False  # -x / --maxfail stopped the run: nothing new starts
        maximum = getattr(session, "_max_worker_restart", None)
        failed = getattr(session, "_failed_nodes_count", 0)
        # DSession counts this crash after the hook: one more must still be allowed,
        # or it shuts everything down (--max-worker-restart) and the rerun never runs.
        return maximum is None or failed + 1 <= maximum

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        if report.outcome == "rerun":
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None

    # --- the end ----------------------------------------------------------------------------

    def pytest_sessionfinish(self) -> None:
        sched = self.scheduler
        if sched is None or sched.collection is None:
            return
        self.run.events.emit(
            "scheduler",
            tests=len(sched.collection),
            units=sched.dispatched,
            cpu_s=round(sched.cpu_s, 6),
            inputs_cpu_s=round(sched.inputs_cpu_s, 6),
            markers=len(self.markers),
            reruns=list(sched.reruns),
            rejected=list(sched.rejected),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        sched = self.scheduler
        if sched is None or sched.collection is None:
            return
        write = terminalreporter.write_line
        if self.config.option.verbose > 0:
            per_test = sched.cpu_s / max(len(sched.collection), 1) * 1e6
            write(
                f"scheduler: {len(sched.collection)} tests in {sched.dispatched} units, "
                f"{per_test:.0f} us CPU per test"
            )
        for nodeid in sched.reruns:
            write(f"{RERUN_REASON}: {nodeid}")
        for nodeid in self.crash_failed:
            write(f"failed: crashed its worker twice: {nodeid}")
        for worker in sched.rejected:
            write(f"worker {worker} rejected: it collected different tests")


def configure_worker(config: pytest.Config) -> None:
    """In an xdist worker: send marker priorities if the controller asked for them."""
    channel = getattr(config, "workerinput", {}).get(MARKERS_KEY)
    if channel is not None:
        sender = MarkerSender(channel, groups=bool(config.getvalue("loadgroup")))
        config.pluginmanager.register(sender, "shadowfarm-markers")


def make_controller(config: pytest.Config, run: Run, planner: Planner) -> SchedulerPlugin | None:
    """Our scheduler, when xdist distributes this run and ``--sf-dist`` is on."""
    balancing = distributing(config) and config.getoption("dist", "no") not in ("no", "each")
    if run.settings.dist != "on" or not balancing:
        return None
    internals = check_internals()
    if not internals.ok:
        run.warn(internals.reason)
        return None
    return SchedulerPlugin(config, run, planner)
