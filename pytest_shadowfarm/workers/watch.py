"""Worker health in a run: watch each worker's memory, replace it before it fails.

Made by :func:`pytest_shadowfarm.plugin.compose` for the controller of an xdist run when
``--sf-health`` is on (the default) and worker telemetry is on. After every test, the
worker's RSS (measured by the worker: :mod:`pytest_shadowfarm.swarm.telemetry`) goes to
the :class:`~.health.HealthMonitor`, whose assessments are acted on here, on xdist's
main loop:

* ``prepare``: a replacement starts now, from the run's
  :class:`~.source.WorkerSource` (a warm farm worker when the farm has one, else a new
  local one), while the sick worker goes on;
* once the replacement has collected, or at ``swap`` whatever comes first, the sick
  worker is drained: it gets no new test, runs what it holds and leaves
  (``ended = "replaced"`` with the monitor's reason). So a ``-n N`` run keeps N workers,
  plus one while a replacement starts. A worker that is only old (its max age, learned
  by the farm) serves on to ``swap``, beside its replacement.

The watch assesses at most every :data:`ACT_EVERY_S` of run time (a setup error that
says a worker is short of memory: at once): on thousands of tiny tests, assessing every
worker after every test cost the controller more than the rest of the plugin together.

A worker that crashes anyway is handled by the scheduler (its test is rerun once on a
fresh worker). What happened goes into the run report (``health``) and the summary.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import check_internals, distributing, dsession
from pytest_shadowfarm.sizes import format_size
from pytest_shadowfarm.usage import USAGE_ATTR
from pytest_shadowfarm.workers.health import (
    Assessment,
    HealthMonitor,
    Sample,
    Thresholds,
)
from pytest_shadowfarm.workers.predictions import lead_tests

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.workers.ceiling import Ceiling
    from pytest_shadowfarm.workers.source import WorkerSource

__all__ = ["HealthWatch", "make_controller"]

#: seconds of run time between two assessments of the workers
ACT_EVERY_S = 0.05
#: seconds between two reads of the controller's own RSS (memory outside the workers)
OUTSIDE_EVERY_S = 0.5
#: after this many replacements failed to start, the watch only drains
MAX_START_FAILURES = 2
#: setup errors that say a worker is short of memory or file descriptors
ERROR_NAMES = ("MemoryError", "OSError")


class HealthWatch:
    """Feeds the health monitor and replaces the workers it gives up on."""

    def __init__(
        self,
        config: pytest.Config,
        run: Run,
        source: WorkerSource,
        monitor: HealthMonitor,
        ceiling: Ceiling,
    ) -> None:
        self.config = config
        self.run = run
        self.source = source
        self.monitor = monitor
        self.ceiling = ceiling
        self.tests_done: dict[str, int] = {}
        #: sick worker -> the id of its replacement (None: it could not be started)
        self.replacing: dict[str, str | None] = {}
        self.replaced: list[dict[str, Any]] = []
        #: the workers this watch started
        self.started: list[str] = []
        self.failed_starts = 0
        #: workers drained without a replacement of their own: the run is owed that many
        self.owed = 0
        self._outside_bytes = 0
        self._outside_at = -OUTSIDE_EVERY_S
        #: PSI memory "some" avg10 of the run's cgroup (or the host), when readable
        self._pressure_pct: float | None = None
        #: each worker's RSS after its first test: what a fresh worker costs
        self._fresh_bytes: dict[str, int] = {}
        #: the max age the source gave (the farm learns it per profile); None: not asked yet
        self.max_age: dict[str, Any] | None = None
        self._acted_at = -ACT_EVERY_S

    # --- input ------------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)  # after the session writer recorded the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        extra = vars(report)
        worker = extra.get("worker_id")
        if not isinstance(worker, str):
            return
        if report.when == "setup" and report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = str(getattr(crash, "message", "") or "")
            for name in ERROR_NAMES:
                if message.startswith(name):
                    self.monitor.observe_error(worker, name)
                    self._acted_at = -ACT_EVERY_S  # act on the next sample
        if report.when != "teardown":
            return
        usage = extra.get(USAGE_ATTR)
        rss_kb = usage.get("rss_kb") if isinstance(usage, dict) else None
        if not isinstance(rss_kb, int) or rss_kb <= 0:
            return  # an old worker, or telemetry off
        peak_kb = usage.get("peak_rss_kb") if isinstance(usage, dict) else None
        done = self.tests_done[worker] = self.tests_done.get(worker, 0) + 1
        self._fresh_bytes.setdefault(worker, rss_kb * 1024)
        now = self.run.now()
        self.monitor.observe(
            worker,
            Sample(
                tests_done=done,
                t=now,
                rss_bytes=rss_kb * 1024,
                peak_bytes=peak_kb * 1024 if isinstance(peak_kb, int) else None,
            ),
        )
        if now - self._acted_at >= ACT_EVERY_S:
            self._acted_at = now
            self.act()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        worker = str(node.gateway.id)
        if error is None and worker in self.replacing:
            # xdist ends a finished worker's process only when the session ends; a
            # replaced one would keep all it leaked until then, under the same ceiling.
            with contextlib.suppress(Exception):
                node.gateway.exit()
        predictions = self.monitor.forget(worker)
        for entry in self.replaced:
            if entry["worker"] == worker:
                entry["tests"] = self.tests_done.get(worker, 0)
                entry["lead_tests"] = lead_tests(predictions, entry["tests"])

    # --- acting -----------------------------------------------------------------------------

    def act(self) -> None:
        """Assess every worker now; start replacements and drain the workers given up on.

        One replacement starts at a time: two leaking workers reach their limits together,
        and two replacements starting beside two full workers would take the room both
        predictions counted on. A worker at ``swap`` while another's replacement starts is
        drained at once; the run gets its worker back when that replacement is up.
        """
        session = dsession(self.config)
        if session is None or session.shuttingdown or session.sched is None:
            return
        run = self.run
        if self.max_age is None:
            self._apply_max_age()
        startups = run.workers.startups()
        if startups:
            self.monitor.startup_s = statistics.median(startups)
        assessments = {
            a.worker: a
            for a in self.monitor.assess(
                run.now(),
                outside_bytes=self._outside() + self._reserve(),
                remaining_tests=self._remaining_tests(),
                pressure_pct=self._pressure_pct,
            )
        }
        for assessment in sorted(assessments.values(), key=lambda a: -a.score):
            record = run.workers.get(assessment.worker)
            if record is None or record.state not in ("ready", "collected"):
                continue
            if assessment.decision == "ok" or assessment.worker in self.replacing:
                continue
            if not self._starting():
                self._start_worker(session, assessment.worker, assessment)
            elif assessment.decision == "swap":
                self.replacing[assessment.worker] = None  # its worker comes back later
        for sick, replacement in list(self.replacing.items()):
            record = run.workers.get(sick)
            if record is None or record.state not in ("ready", "collected"):
                continue
            ready = replacement is not None and (
                (r := run.workers.get(replacement)) is not None and r.collected_s is not None
            )
            decision = assessments.get(sick)
            if decision is not None and decision.decision == "swap":
                self._retire(session, sick, decision)
            elif ready and (decision is None or decision.cause != "age"):
                # a sick worker goes as soon as its replacement is up; one that is only
                # old serves on to its age (recycling it sooner would cost more starts)
                self._retire(session, sick, decision)
        # A worker drained without its own replacement is given back while work waits;
        # a worker that simply ran out of work is not (xdist ends those as a run winds down).
        if self.owed and not self._starting() and self._pending(session):
            self.owed -= 1
            self._start_worker(session, None, None)

    def _apply_max_age(self) -> None:
        """Recycle workers at the max age the source knows for this run's profile (the
        farm learns it from how earlier runs' workers ended), unless one is set here."""
        age = self.source.max_age()
        self.max_age = age.to_dict()
        th = self.monitor.thresholds
        if not age.limited or th.max_age_tests is not None or th.max_age_s is not None:
            return
        basis = f"learned by the farm: {age.basis}" if age.basis else "learned by the farm"
        self.monitor.thresholds = replace(
            th, max_age_tests=age.tests, max_age_s=age.seconds, max_age_basis=basis
        )
        self.run.events.emit("health_max_age", tests=age.tests, seconds=age.seconds, basis=basis)

    def _starting(self) -> bool:
        """Whether a worker this watch started has not collected yet."""
        return any(
            (w := self.run.workers.get(r)) is not None and w.live and w.collected_s is None
            for r in self.started
        )

    def _pending(self, session: Any) -> bool:
        """Whether tests wait that no worker holds yet."""
        waiting = getattr(session.sched, "waiting", None)  # our scheduler
        if waiting is None:
            waiting = getattr(session.sched, "pending", None)  # xdist's load scheduling
        if waiting is not None:
            return bool(waiting)
        return len(self.run.plan.etc) > len(self.run.recorder.traces)

    def _start_worker(self, session: Any, sick: str | None, assessment: Assessment | None) -> None:
        """Start one worker: ``sick``'s replacement, or (None) one the run is short of."""
        run = self.run
        if self.failed_starts >= MAX_START_FAILURES:
            if sick is not None:
                self.replacing[sick] = None
            return
        run.workers.expect(run.now(), late=True)
        try:
            node = self.source.start(session.nodemanager, session.queue.put)
        except Exception as exc:
            self.failed_starts += 1
            if sick is not None:
                self.replacing[sick] = None
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            run.events.emit("replacement_failed", worker=sick, error=text)
            run.warn(f"health: a replacement worker could not start: {text}")
            return
        finally:
            run.workers.expect(None)
        replacement = str(node.gateway.id)
        self.started.append(replacement)
        session._active_nodes.add(node)
        expect = getattr(session.sched, "expect_worker", None)
        if expect is not None:  # our scheduler keeps work for a worker still to come
            expect()
        if sick is not None:
            self.replacing[sick] = replacement
        run.events.emit(
            "health_replacement",
            worker=sick,
            replacement=replacement,
            score=round(assessment.score, 3) if assessment is not None else None,
            reason=assessment.reason if assessment is not None else "a worker was drained",
        )

    def _retire(self, session: Any, worker: str, assessment: Assessment | None) -> None:
        run = self.run
        record = run.workers.get(worker)
        if record is None or record.node is None:
            return
        reason = assessment.reason if assessment is not None else "replaced before it failed"
        cause = assessment.cause if assessment is not None else "memory"
        # Our scheduler asks for the items it has not started back (xdist's own keeps them
        # on the worker); then the worker runs the rest of what it holds and leaves.
        take_back = getattr(session.sched, "take_back", None)
        if take_back is not None:
            take_back(record.node)
        record.node.shutdown()
        run.workers.drain(worker, ended="replaced", reason=reason, cause=cause)
        if self.replacing.get(worker) is None:
            self.owed += 1
        tests = self.tests_done.get(worker, 0)
        self.replaced.append(
            {
                "worker": worker,
                "replacement": self.replacing.get(worker),
                "tests": tests,
                "reason": reason,
                "cause": cause,
                "lead_tests": None,
            }
        )
        mib = 1 << 20
        run.events.emit(
            "worker_replaced",
            worker=worker,
            tests=tests,
            reason=reason,
            level_mib=round((assessment.level_bytes or 0) / mib, 1) if assessment else None,
            share_mib=round((assessment.share_bytes or 0) / mib, 1) if assessment else None,
        )

    # --- what the monitor needs -------------------------------------------------------------

    def _outside(self) -> int:
        """Memory under the ceiling that no watched worker holds.

        Under a cgroup limit: what the cgroup holds (its working set, without the page
        cache the kernel can drop) less what the watched workers hold; that counts the
        controller, workers still starting and anything else in the cgroup. Else the
        controller's own RSS.
        """
        now = self.run.now()
        # Fresh while any worker is being watched closely: at a few tests from the limit,
        # half a second of a fast leak is more than the margin.
        if now - self._outside_at < OUTSIDE_EVERY_S and not self.monitor.alarmed():
            return self._outside_bytes
        self._outside_at = now
        from pytest_shadowfarm.workers.ceiling import read_pressure

        pressure = read_pressure(self.ceiling.cgroup)
        self._pressure_pct = pressure.some_avg10 if pressure is not None else None
        import psutil

        own = int(psutil.Process().memory_info().rss)
        cgroup = self.ceiling.cgroup if self.ceiling.kind == "cgroup" else None
        if cgroup is not None:
            from pytest_shadowfarm.workers.ceiling import find_memory_cgroup

            fresh = find_memory_cgroup()
            held = fresh.working_set_bytes if fresh is not None else None
            if held is not None:
                watched = sum(self.monitor.current_bytes().values())
                self._outside_bytes = max(own, held - watched)
                return self._outside_bytes
        self._outside_bytes = own
        return own

    def _reserve(self) -> int:
        """Room kept for a replacement: what a fresh worker holds after its first test.

        A replacement is a whole new process under the same ceiling; if that room were
        not kept, starting it would take the very headroom the sick worker's prediction
        counted on. It is kept while one starts too: a starting worker grows to that size
        faster than the cgroup's figure is read.
        """
        if not self._fresh_bytes:
            return 0
        return int(statistics.median(self._fresh_bytes.values()))

    def _remaining_tests(self) -> dict[str, float] | None:
        """Tests each working worker may still run: the tests not started, shared out."""
        run = self.run
        if not run.plan.etc:
            return None
        pending = max(0, len(run.plan.etc) - len(run.recorder.traces))
        working = run.workers.working()
        if not working:
            return None
        # each worker also runs the tests it holds (the scheduler commits two)
        share = pending / len(working) + 2
        return {w.id: share for w in working}

    # --- report -----------------------------------------------------------------------------

    def pytest_sessionfinish(self) -> None:
        crashes = [w for w in self.run.workers if w.ended == "crashed"]
        self.run.report_extras["health"] = {
            "ceiling_bytes": self.ceiling.bytes,
            "ceiling": self.ceiling.source,
            "replacements": len(self.replaced),
            "crashes": len(crashes),
            "replaced": self.replaced,
            "max_age": self.max_age,
            "predictions": [asdict(p) for p in self.monitor.predictions()],
        }

    @pytest.hookimpl(trylast=True)  # inside the "shadowfarm" section the writer opened
    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        write = terminalreporter.write_line
        for entry in self.replaced:
            lead = entry.get("lead_tests")
            ahead = f"; {lead:.0f} tests before it would have failed" if lead else ""
            write(
                f"health: {entry['worker']} replaced after {entry['tests']} tests: "
                f"{entry['reason']}{ahead}"
            )
        th = self.monitor.thresholds
        if th.max_age_basis and (th.max_age_tests or th.max_age_s):
            limit = f"{th.max_age_tests} tests" if th.max_age_tests else f"{th.max_age_s:g}s"
            write(f"health: workers recycled at {limit} ({th.max_age_basis})")
        if self.replaced or self.config.option.verbose > 0:
            write(
                f"health: memory ceiling {format_size(self.ceiling.bytes)} "
                f"({self.ceiling.source}); {len(self.replaced)} workers replaced"
            )


def make_controller(config: pytest.Config, run: Run, source: WorkerSource) -> HealthWatch | None:
    """The health watch of an xdist run, when ``--sf-health`` and telemetry are on."""
    settings = run.settings
    if settings.health != "on" or settings.telemetry_interval <= 0 or not distributing(config):
        return None
    try:
        thresholds = Thresholds(prepare=settings.health_prepare, swap=settings.health_swap)
    except ValueError as exc:
        where = f"{settings.describe('health_prepare')} / {settings.describe('health_swap')}"
        raise pytest.UsageError(f"pytest-shadowfarm: {where}: {exc}") from None
    if not check_internals().ok:
        return None  # the scheduler has warned already: replacing workers needs them too
    import psutil

    from pytest_shadowfarm.workers.ceiling import find_ceiling

    ceiling = find_ceiling(
        held_bytes=int(psutil.Process().memory_info().rss), override=settings.memory_limit
    )
    return HealthWatch(
        config, run, source, HealthMonitor(ceiling.bytes, thresholds=thresholds), ceiling
    )
