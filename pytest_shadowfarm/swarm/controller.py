"""The swarm on the controller: telemetry channels in every xdist run, scaling with --sf-workers.

:class:`SwarmPlugin` is registered in the controller of every xdist run with the plugin
enabled. It opens each worker's telemetry channel (``pytest_configure_node``, before
xdist starts the worker) and follows what the workers and tests do: when each worker
was asked for (``workers[].joined_s`` in the run report: a worker costs from then), when
it collected (its start-up time), which tests started and finished.

With ``--sf-workers MIN:MAX`` it also scales the swarm: a timer thread puts a tick event
on ``dsession.queue`` every :data:`TICK_S`, and the :class:`~.scaler.Scaler` handles it
on the main thread. With a farm in use, a snapshot of the run goes to the farm every
couple of seconds (:mod:`.farmlink`).
"""

from __future__ import annotations

import math
import os
import threading
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import check_internals, dsession
from pytest_shadowfarm.swarm.channel import CHANNEL_KEY, INTERVAL_KEY, TelemetryHub
from pytest_shadowfarm.swarm.farmlink import (
    POST_EVERY_S,
    FarmSession,
    FarmTelemetry,
    client_poster,
    run_snapshot,
)
from pytest_shadowfarm.swarm.policy import Limits
from pytest_shadowfarm.swarm.progress import Progress
from pytest_shadowfarm.swarm.scaler import TICK_EVENT, Scaler
from pytest_shadowfarm.swarm.summary import summary_lines, worker_seconds
from pytest_shadowfarm.usage import USAGE_ATTR
from pytest_shadowfarm.workers.source import PopenSource, WorkerSource

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.settings import Settings

__all__ = ["TICK_S", "SwarmPlugin", "apply_worker_range"]

TICK_S = 0.25


def apply_worker_range(config: pytest.Config, settings: Settings) -> None:
    """With ``--sf-workers`` and no ``-n``/``--tx``: start xdist with MIN workers.

    Must run before xdist's own ``pytest_cmdline_main`` (tryfirst) turns ``-n`` into
    ``--tx`` specs, so the plugin calls it from a ``pytest_cmdline_main`` wrapper.
    """
    if settings.workers is None or not hasattr(config.option, "numprocesses"):
        return
    if hasattr(config, "workerinput"):
        return  # a worker gets the controller's argv too; it must not start workers of its own
    if config.option.numprocesses is None and not getattr(config.option, "tx", None):
        config.option.numprocesses = settings.workers.low


def auto_workers() -> int | None:
    """How many workers ``-n auto`` starts on this machine (xdist's own count)."""
    try:
        from xdist.plugin import auto_detect_cpus
    except ImportError:
        return os.cpu_count()
    return int(auto_detect_cpus())


class _Ticker(threading.Thread):
    """Puts a tick on the dsession queue every ``interval``: nothing else, ever."""

    def __init__(self, put: Any, interval: float) -> None:
        super().__init__(name="shadowfarm-swarm-tick", daemon=True)
        self.put = put
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.put((TICK_EVENT, {}))


class SwarmPlugin:
    """Controller-side swarm: telemetry always (under xdist), scaling with ``--sf-workers``."""

    def __init__(
        self,
        config: pytest.Config,
        run: Run,
        *,
        source: WorkerSource | None = None,
        farm: FarmSession | None = None,
    ) -> None:
        self.config = config
        self.run = run
        self.settings = run.settings
        self.hub = TelemetryHub(run.now)
        self.limits = self.limits_of(self.settings)
        #: where new workers come from (the farm's when it runs, else local popen)
        self.source: WorkerSource = source if source is not None else PopenSource()
        #: the farm session of this run, if it claimed workers (gets the run's telemetry)
        self.farm_session = farm
        self.scaler: Scaler | None = None
        self.ticker: _Ticker | None = None
        self.farm: FarmTelemetry | None = None
        self._farm_looked = False
        self._posted_at = -math.inf
        self._events_posted = 0
        self.progress = Progress()
        self.reference: list[str] | None = None

    @staticmethod
    def limits_of(settings: Settings) -> Limits | None:
        """The policy's limits (None without --sf-workers); ValueError for bad thresholds."""
        if settings.workers is None:
            return None
        return Limits(
            settings.workers,
            budget_ws=settings.budget,
            target_s=settings.target,
            scale_up=settings.scale_up,
            scale_down=settings.scale_down,
        )

    # --- workers ------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.settings.telemetry_interval > 0:
            node.workerinput[CHANNEL_KEY] = self.hub.open(node.gateway)
            node.workerinput[INTERVAL_KEY] = self.settings.telemetry_interval

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        worker = self.run.workers.get(str(node.gateway.id))
        if self.reference is None:
            self.reference = list(ids)
        elif (
            worker is not None
            and worker.late
            and list(ids) != self.reference
            and not (self.scaler is not None and self.scaler.our_scheduler())
        ):
            # xdist's load would feed it indices into the wrong collection (tests would
            # run twice and never); our scheduler rejects such a worker itself.
            node.shutdown()
            self.run.workers.drain(worker.id, reason="collected different tests")
            self.run.warn(f"swarm: {worker.id} collected different tests; drained, never fed")

    def spent_ws(self, now: float) -> float:
        """Worker-seconds so far: every worker from being asked for to release (or now)."""
        return worker_seconds(list(self.run.workers), now)

    # --- tests --------------------------------------------------------------------------

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.progress.start(nodeid, self.run.now())

    @pytest.hookimpl(trylast=True)  # after the session writer put the usage on the trace
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        run = self.run
        if not run.xdist:
            return  # one process (-n 0, --collect-only): no workers, no telemetry
        self.hub.drain()
        if self.scaler is None:  # no ticks: the reports pace the farm posts
            self.post_to_farm()
        usage = getattr(report, USAGE_ATTR, None)
        wait = usage.get("cpu_wait_s") if isinstance(usage, dict) else None
        if isinstance(wait, float) and wait >= 0:
            self.progress.waited(report.nodeid, wait)
        if report.when in ("setup", "call"):
            return
        self.progress.finish(
            run.recorder.traces.get(report.nodeid),
            report.nodeid,
            known=report.nodeid in run.plan.known_etc,
        )

    def cpu_fraction(self) -> float | None:
        """CPU demand / wall of the recently finished tests; before three have reported,
        the workers' CPU demand in the samples taken while tests ran (None: neither yet)."""
        fraction = self.progress.cpu_fraction()
        return fraction if fraction is not None else self.hub.test_cpu_fraction()

    # --- scaling: start and stop --------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        limits = self.limits
        if limits is None:
            return
        ds = dsession(self.config)
        problem = self._why_not_scaling(ds)
        if problem:
            self.run.warn(f"--sf-workers {limits.workers}: {problem}; the swarm stays fixed")
            return
        self.scaler = Scaler(
            self.run,
            ds,
            limits,
            self.source,
            hub=self.hub,
            progress=self.progress,
            dist=str(self.config.getoption("dist", "load")),
            argv=tuple(self.config.invocation_params.args),
            post=self.post_to_farm,
            node_down=self.config.hook.pytest_testnodedown,
        )
        self.scaler.load_prior()
        self.scaler.install()
        self.ticker = _Ticker(ds.queue.put, TICK_S)
        self.ticker.start()

    def _why_not_scaling(self, ds: Any) -> str | None:
        if ds is None:
            return "needs pytest-xdist running (not -n 0 or -p no:xdist)"
        check = check_internals()
        if not check.ok:
            return check.reason
        can_start = getattr(self.source, "can_start", None)
        if can_start is not None and not can_start(ds.nodemanager.specs):
            return "only local popen workers can be added (the run has --tx specs only)"
        return None

    @pytest.hookimpl(tryfirst=True)  # before the core writes the run report
    def pytest_sessionfinish(self) -> None:
        if self.ticker is not None:
            self.ticker.stopped.set()
            self.ticker.join(timeout=1.0)
        self.hub.drain()
        now = self.run.now()
        self.run.report_extras["swarm"] = self._report(now)
        self.post_to_farm(final=True)
        if self.farm is not None:
            self.farm.close(timeout=3.0)

    def _report(self, now: float) -> dict[str, Any]:
        limits = self.limits
        return {
            "workers": str(limits.workers) if limits else None,
            "scaled": self.scaler is not None and self.scaler.active,
            "budget_ws": limits.budget_ws if limits else None,
            "target_s": limits.target_s if limits else None,
            "worker_seconds": round(self.spent_ws(now), 6),
            "peak_workers": self.run.workers.peak,
            "cpu_fraction": self.cpu_fraction(),
            "telemetry": {
                state.worker: {
                    "samples": state.samples,
                    "peak_rss_kb": state.peak_rss_kb,
                    "cpu_s": round(state.cpu_s, 6),
                }
                for state in self.hub.workers.values()
                if state.samples
            },
        }

    # --- the farm -----------------------------------------------------------------------

    def post_to_farm(self, *, final: bool = False) -> None:
        """Hand the farm a snapshot, at most every POST_EVERY_S (main thread; never blocks)."""
        now = self.run.now()
        if not final and now - self._posted_at < POST_EVERY_S:
            return
        self._posted_at = now
        link = self._farm_link()
        if link is None:
            return
        limits = self.limits
        events = self.run.events.since(self._events_posted)
        self._events_posted = len(self.run.events)
        run = {
            "pid": os.getpid(),
            "rootdir": str(self.config.rootpath),
            "workers": len(self.run.workers.working()),
            "peak_workers": self.run.workers.peak,
            "worker_seconds": round(self.spent_ws(now), 3),
            "range": str(limits.workers) if limits else None,
            "budget_ws": limits.budget_ws if limits else None,
            "target_s": limits.target_s if limits else None,
            "finished": final,
        }
        workers = [
            {
                "worker": s.worker,
                "warm": bool(w.warm) if (w := self.run.workers.get(s.worker)) else False,
                "cpu_pct": s.cpu_pct,
                "rss_kb": s.rss_kb,
                "peak_rss_kb": s.peak_rss_kb,
                "nodeid": s.nodeid,
                "phase": s.phase,
            }
            for s in self.hub.live()
            if s.samples
        ]
        link.offer(run_snapshot(t=now, run=run, workers=workers, events=events))

    def _farm_link(self) -> FarmTelemetry | None:
        if not self._farm_looked:
            self._farm_looked = True
            farm = self.farm_session
            client = farm.client if farm is not None else None
            if farm is not None and client is not None:
                self.farm = FarmTelemetry(
                    client_poster(client),
                    claim_id=getattr(farm.claim, "claim_id", None),
                    warn=self.run.warn,
                )
        return self.farm

    # --- summary ------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)  # inside the "shadowfarm" section the core opened
    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        run = self.run
        if not len(run.workers):
            return
        wall = run.elapsed()
        scaled = self.scaler is not None and self.limits is not None
        lines = summary_lines(
            events=run.events.entries,
            workers=list(run.workers),
            wall_s=wall,
            max_workers=self.limits.workers.high if scaled and self.limits else None,
            telemetry=list(self.hub.workers.values()),
            cpu_fraction=self.cpu_fraction(),
            auto_workers=auto_workers(),
        )
        for line in lines:
            terminalreporter.write_line(line)
