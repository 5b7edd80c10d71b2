"""The swarm on the controller: telemetry channels in every xdist run, scaling with --sf-workers.

:class:`SwarmPlugin` is registered in the controller of every xdist run with the plugin
enabled. It opens each worker's telemetry channel (``pytest_configure_node``) and keeps
what the workers cost (``workers[].joined_s`` is when the controller asked for the
worker). With ``--sf-workers MIN:MAX`` it also scales the swarm:

* a timer thread only puts a tick event on ``dsession.queue`` (never touch xdist from
  another thread); DSession dispatches queue events to ``worker_<name>`` attributes, so
  the handler is set on the dsession instance and runs on the main thread between two
  worker events (research/exp2);
* the tick builds a :class:`~pytest_shadowfarm.swarm.policy.SwarmState` and applies the
  policy's decision: a new worker comes from the :class:`~.source.WorkerSource` (xdist's
  ``setup_node``, warm when the farm hands one out) and joins ``_active_nodes``; a worker
  is removed only by ``node.shutdown()``, a graceful drain of what it holds: never a
  kill (xdist reads it as a crash and clones the node) and never ``remove_node`` on a
  live worker (its items would be queued again and run twice);
* a worker added here that dies before it is ready is taken out quietly instead of going
  through xdist's crash path, which would clone it up to ``--max-worker-restart`` times
  and then stop the run with tests never run.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from pytest_shadowfarm.compat import check_internals
from pytest_shadowfarm.estimate import DEFAULT_ETC_S
from pytest_shadowfarm.report.runreport import WorkerSpan
from pytest_shadowfarm.swarm.channel import TelemetryHub
from pytest_shadowfarm.swarm.policy import (
    DEFAULT_STARTUP_S,
    Decision,
    Limits,
    SwarmState,
    decide,
)
from pytest_shadowfarm.swarm.prior import Prior, find_prior
from pytest_shadowfarm.swarm.source import PopenSource, WorkerSource, popen_template
from pytest_shadowfarm.swarm.summary import summary_lines
from pytest_shadowfarm.swarm.telemetry import CHANNEL_KEY, INTERVAL_KEY

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from pytest_shadowfarm.controller import ShadowFarmPlugin
    from pytest_shadowfarm.settings import Settings

__all__ = ["TICK_EVENT", "SwarmPlugin", "apply_worker_range"]

#: the fake worker event our ticks put on dsession.queue (dispatched to worker_<name>)
TICK_EVENT = "shadowfarm_swarm_tick"
TICK_S = 0.25
#: after this many workers failed to start, the swarm stops growing for the run
MAX_START_FAILURES = 2
#: xdist --dist modes whose schedulers take a worker added mid-run
SCALABLE_DISTS = frozenset({"load", "worksteal"})
#: finished tests whose cpu/wall make the I/O-boundness estimate
RECENT_TESTS = 50


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


class _Ticker(threading.Thread):
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

    def __init__(self, config: pytest.Config, settings: Settings, core: ShadowFarmPlugin) -> None:
        self.config = config
        self.settings = settings
        self.core = core
        self.hub = TelemetryHub(core.now)
        self.limits = (
            Limits(
                settings.workers,
                budget_ws=settings.budget,
                target_s=settings.target,
                scale_up=settings.scale_up,
                scale_down=settings.scale_down,
            )
            if settings.workers is not None
            else None
        )
        #: where new workers come from; None: like the run's first popen worker
        self.source: WorkerSource | None = None
        self.scaling = False
        self.ds: Any = None
        self.ticker: _Ticker | None = None
        # workers, by gateway id
        self.live: dict[str, Any] = {}
        self.asked_at: dict[str, float] = {}
        self.ready: set[str] = set()
        self.collected: set[str] = set()
        self.late: set[str] = set()
        self.draining: set[str] = set()
        self.startups: list[float] = []
        self.start_failures = 0
        self.peak_workers = 0
        self._asking_at: float | None = None
        # tests
        self.reference: list[str] | None = None
        self.started: dict[str, float] = {}
        self.finished: set[str] = set()
        self.recent: deque[tuple[float, float]] = deque(maxlen=RECENT_TESTS)
        self.unknown_durations: list[float] = []
        self.prior: Prior | None = None
        self.ticks = 0
        self.last_change_s: float | None = None
        self.decisions: list[Decision] = []
        self._host_cpu_primed = False

    # --- workers: telemetry channel and cost -----------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        worker = str(node.gateway.id)
        asked = self._asking_at if self._asking_at is not None else self.core.now()
        self.core.workers.setdefault(worker, WorkerSpan(worker, joined_s=asked))
        self.asked_at.setdefault(worker, asked)
        self.live[worker] = node
        self.peak_workers = max(self.peak_workers, len(self.live))
        if self.settings.telemetry_interval > 0:
            node.workerinput[CHANNEL_KEY] = self.hub.open(node.gateway)
            node.workerinput[INTERVAL_KEY] = self.settings.telemetry_interval

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        self.ready.add(str(node.gateway.id))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        worker = str(node.gateway.id)
        self.collected.add(worker)
        if worker in self.asked_at:
            self.startups.append(self.core.now() - self.asked_at[worker])
        if self.reference is None:
            self.reference = list(ids)
        elif worker in self.late and list(ids) != self.reference and not self._our_scheduler():
            # xdist's load would feed it indices into the wrong collection (research/exp2:
            # tests run twice and never); our scheduler rejects such a worker itself.
            node.shutdown()
            self.draining.add(worker)
            self.core.warn(f"swarm: {worker} collected different tests; drained, never fed")

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        worker = str(node.gateway.id)
        self.live.pop(worker, None)
        self.draining.discard(worker)

    # --- tests --------------------------------------------------------------------------

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.started.setdefault(nodeid, self.core.now())

    @pytest.hookimpl(trylast=True)  # after ShadowFarmPlugin put the usage on the trace
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.hub.drain()
        if report.when in ("setup", "call"):
            return
        self.finished.add(report.nodeid)
        trace = self.core.recorder.traces.get(report.nodeid)
        if trace is None:
            return
        wall = trace.duration_s
        if trace.cpu_s is not None and wall > 0:
            self.recent.append((trace.cpu_s, wall))
        if report.nodeid not in self.core.known_etc:
            self.unknown_durations.append(wall)

    # --- scaling: start and stop ----------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if self.limits is None:
            return
        ds = self.config.pluginmanager.getplugin("dsession")
        problem = self._why_not_scaling(ds)
        if problem:
            self.core.warn(f"--sf-workers {self.limits.workers}: {problem}; the swarm stays fixed")
            return
        if self.source is None:
            self.source = PopenSource(popen_template(ds.nodemanager.specs) or "popen")
        self.ds = ds
        self.scaling = True
        self._load_prior()
        setattr(ds, "worker_" + TICK_EVENT, self._on_tick)
        previous = ds.worker_errordown
        ds.worker_errordown = lambda node, error: self._on_errordown(node, error, previous)
        psutil.cpu_percent(interval=None)  # baseline for the first tick's host load
        ds.queue.put((TICK_EVENT, {}))  # decide at once (on the prior, if any)
        self.ticker = _Ticker(ds.queue.put, TICK_S)
        self.ticker.start()

    def _why_not_scaling(self, ds: Any) -> str | None:
        if ds is None:
            return "needs pytest-xdist running (not -n 0 or -p no:xdist)"
        check = check_internals()
        if not check.ok:
            return check.reason
        if self.source is None and popen_template(ds.nodemanager.specs) is None:
            return "only local popen workers can be added (the run has --tx specs only)"
        return None

    def _scheduler_problem(self) -> str | None:
        """Whether the run's scheduler takes workers added mid-run (known once it exists)."""
        if self._our_scheduler():
            return None  # pytest_shadowfarm.sched: add_node works at any time
        dist = self.config.getoption("dist", "load")
        if dist in SCALABLE_DISTS:
            return None
        return f"--dist {dist} with {type(self.ds.sched).__name__} does not take late workers"

    def _our_scheduler(self) -> bool:
        sched = getattr(self.ds, "sched", None)
        return type(sched).__module__.startswith("pytest_shadowfarm")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        if self.ticker is not None:
            self.ticker.stopped.set()
            self.ticker.join(timeout=1.0)
        self.hub.drain()

    # --- scaling: one tick on the main thread ---------------------------------------------

    def _on_tick(self) -> None:
        ds = self.ds
        self.ticks += 1
        if ds.shuttingdown or ds.sched is None or not self.scaling:
            return
        if self.ticks == 1:
            problem = self._scheduler_problem()
            if problem:
                self.scaling = False
                self.core.warn(f"--sf-workers: {problem}; the swarm stays fixed")
                return
        self.hub.drain()
        state = self._state()
        if state is None:
            return
        assert self.limits is not None
        decision = decide(state, self.limits)
        if decision.change > 0 and self.start_failures >= MAX_START_FAILURES:
            return
        if decision.change > 0 and not ds.sched.tests_finished:
            self._grow(decision, state.now_s)
        elif decision.change < 0:
            self._shrink(decision, state.now_s)

    def _grow(self, decision: Decision, now: float) -> None:
        added: list[str] = []
        for _ in range(decision.change):
            self._asking_at = self.core.now()
            assert self.source is not None
            try:
                node = self.source.start(self.ds.nodemanager, self.ds.queue.put)
            except Exception as exc:
                self._start_failed(None, exc)
                break
            finally:
                self._asking_at = None
            worker = str(node.gateway.id)
            self.ds._active_nodes.add(node)  # required, else KeyError at workerfinished
            self.late.add(worker)
            added.append(worker)
        if added:
            self._record(decision, now, len(added), added)

    def _shrink(self, decision: Decision, now: float) -> None:
        # Idle workers first (pure cost), then those still starting (no work yet), then
        # the ones holding the least; among equals the newest (LIFO).
        def rank(worker: str) -> tuple[int, int, float]:
            held = self._held(worker) if worker in self.collected else 0
            tier = 0 if worker in self.collected and held == 0 else 1 if held == 0 else 2
            return (tier, held, -self.asked_at.get(worker, 0.0))

        candidates = sorted((w for w in self.live if w not in self.draining), key=rank)
        chosen = candidates[: -decision.change]
        for worker in chosen:
            self.live[worker].shutdown()
            self.draining.add(worker)
        if chosen:
            self._record(decision, now, -len(chosen), chosen)

    def _record(self, decision: Decision, now: float, change: int, workers: list[str]) -> None:
        self.last_change_s = self.core.now()  # the cool-down runs from the change done
        self.decisions.append(decision)
        self.core.events.append(
            {
                "t": round(now, 3),
                "kind": "scale",
                "from": decision.current,
                "to": decision.current + change,
                "reason": decision.reason,
                "workers": workers,
            }
        )

    def _start_failed(self, worker: str | None, error: object) -> None:
        self.start_failures += 1
        now = self.core.now()
        self.last_change_s = now
        text = str(error).strip().splitlines()[-1:] or [type(error).__name__]
        event = {"t": round(now, 3), "kind": "scale_failed", "worker": worker, "error": text[0]}
        self.core.events.append(event)
        stop = " (no more growth in this run)" if self.start_failures >= MAX_START_FAILURES else ""
        self.core.warn(f"swarm: a new worker failed to start: {text[0]}{stop}")

    def _on_errordown(self, node: Any, error: object, previous: Any) -> None:
        worker = str(node.gateway.id)
        if worker in self.late and worker not in self.ready:
            self.config.hook.pytest_testnodedown(node=node, error=error)
            self.ds._active_nodes.discard(node)
            self._start_failed(worker, error)
            return
        previous(node=node, error=error)

    # --- the state the policy sees ----------------------------------------------------------

    def _held(self, worker: str) -> int:
        """Tests ``worker`` holds (running or committed), from the scheduler if it says."""
        node = self.live.get(worker)
        sched = getattr(self.ds, "sched", None)
        per_node = getattr(sched, "node2pending", None)  # xdist's load / worksteal
        if isinstance(per_node, dict) and node in per_node:
            return len(per_node[node])
        state = getattr(sched, "_state", {}).get(node)  # pytest_shadowfarm.sched
        count = getattr(state, "count", None)
        if isinstance(count, int):
            return count
        telemetry = self.hub.workers.get(worker)  # any other scheduler: what it runs now
        return int(telemetry is not None and telemetry.nodeid is not None)

    def _etc(self, nodeid: str) -> float:
        if nodeid in self.core.known_etc or len(self.unknown_durations) < 3:
            return self.core.etc.get(nodeid, DEFAULT_ETC_S)
        return statistics.fmean(self.unknown_durations[-RECENT_TESTS:])

    def _state(self) -> SwarmState | None:
        now = self.core.now()
        if self.core.etc:
            pending = [n for n in self.core.etc if n not in self.started]
            etcs = [self._etc(n) for n in pending]
            pending_s = math.fsum(etcs)
            running = [
                self._remaining(nodeid, now - start)
                for nodeid, start in self.started.items()
                if nodeid not in self.finished
            ]
        elif self.prior is not None and self.ticks == 1:
            pending = list(self.prior.nodeids)
            etcs = [self.core.estimator.etc(n) for n in pending]
            pending_s = math.fsum(etcs)
            running = []
        else:
            return None  # nothing known until the first worker has collected
        workers = [w for w in self.live if w not in self.draining]
        starting = sum(1 for w in workers if w not in self.collected)
        busy = starting + sum(1 for w in workers if w in self.collected and self._held(w) > 0)
        return SwarmState(
            now_s=now,
            workers=len(workers),
            busy=busy,
            pending_count=len(pending),
            pending_s=pending_s,
            running_s=tuple(running),
            spent_ws=self.spent_ws(now),
            startup_s=statistics.median(self.startups) if self.startups else DEFAULT_STARTUP_S,
            test_s=statistics.fmean(etcs) if etcs else 0.0,
            longest_pending_s=max(etcs, default=0.0),
            cpu_fraction=self._cpu_fraction(),
            cores_available=self._cores_available(),
            last_change_s=self.last_change_s,
            starting=starting,
        )

    def _remaining(self, nodeid: str, elapsed: float) -> float:
        if nodeid in self.core.known_etc:
            return self.core.estimator.remaining(nodeid, elapsed)
        return max(self._etc(nodeid) - elapsed, 1e-3)

    def spent_ws(self, now: float) -> float:
        return math.fsum(
            max(0.0, (span.left_s if span.left_s is not None else now) - span.joined_s)
            for span in self.core.workers.values()
        )

    def _cpu_fraction(self) -> float | None:
        cpu = math.fsum(c for c, _ in self.recent)
        wall = math.fsum(w for _, w in self.recent)
        if len(self.recent) >= 3 and wall > 0.05:
            return min(1.0, cpu / wall)
        return self.prior.cpu_fraction if self.prior is not None else None

    def _cores_available(self) -> float:
        cores = float(psutil.cpu_count() or 1)
        host_busy = psutil.cpu_percent(interval=None) / 100.0 * cores
        others = max(0.0, host_busy - self.hub.busy_cores())
        return max(0.0, cores - others)

    def _load_prior(self) -> None:
        store = self.core.store
        if store is None:
            return
        try:
            runs = [(run_id, run.argv) for run_id, run in store.runs()]
            by_test = store.results_by_test()
            last = store.last_results()
        except Exception as exc:  # a history that cannot be read only costs the prior
            self.core.warn(f"swarm: no prior from the history: {exc}")
            return

        def usage(nodeid: str) -> tuple[float | None, float | None]:
            result = last.get(nodeid)
            return (None, None) if result is None else (result.cpu_s, result.duration_s)

        self.prior = find_prior(
            self.config.invocation_params.args,
            runs,
            {nodeid: [r.run_id for r in results] for nodeid, results in by_test.items()},
            usage,
        )

    # --- summary ----------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)  # inside the "shadowfarm" section the core opened
    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if not self.live and not self.core.workers:
            return
        wall = self.core.wall_s if self.core.wall_s is not None else self.core.now()
        lines = summary_lines(
            events=self.core.events,
            workers=list(self.core.workers.values()),
            wall_s=wall,
            max_workers=self.limits.workers.high if self.scaling and self.limits else None,
            telemetry=list(self.hub.workers.values()),
            cpu_fraction=self._cpu_fraction(),
        )
        for line in lines:
            terminalreporter.write_line(line)
