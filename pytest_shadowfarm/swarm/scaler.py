"""The swarm's hands on xdist: one tick on the controller's main thread, growing, draining.

Everything here runs on the main thread, inside DSession's event loop: the
:class:`~pytest_shadowfarm.swarm.controller.SwarmPlugin` timer only puts a tick event
on ``dsession.queue``, and DSession dispatches queue events to ``worker_<name>``
attributes, so :meth:`Scaler.install` sets such an attribute on the dsession instance.
Never call xdist from another thread.

* growing: the :class:`~.source.WorkerSource` starts the worker (xdist's ``setup_node``);
  the node must join ``dsession._active_nodes``, or DSession raises KeyError when it
  finishes;
* draining: ``node.shutdown()`` only. The worker runs what it holds, then leaves. Never a
  kill (xdist reads it as a crash and clones the node) and never ``remove_node`` on a live
  worker (its items would be queued again and run twice);
* a worker added here that dies before it is ready is taken out quietly: xdist's crash
  path would clone it up to ``--max-worker-restart`` times and then stop the run with
  tests never run.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from pytest_shadowfarm.estimate import DEFAULT_ETC_S
from pytest_shadowfarm.registry import WorkerRecord
from pytest_shadowfarm.swarm.policy import DEFAULT_STARTUP_S, Decision, Limits, SwarmState, decide
from pytest_shadowfarm.swarm.prior import Newest, PastRun, Prior, find_prior
from pytest_shadowfarm.swarm.summary import worker_seconds

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.swarm.channel import TelemetryHub
    from pytest_shadowfarm.swarm.progress import Progress
    from pytest_shadowfarm.workers.source import WorkerSource

__all__ = ["MAX_START_FAILURES", "SCALABLE_DISTS", "TICK_EVENT", "Scaler", "held_by"]

#: the fake worker event our ticks put on dsession.queue (dispatched to worker_<name>)
TICK_EVENT = "shadowfarm_swarm_tick"
#: after this many workers failed to start, the swarm stops growing for the run; a
#: start still in flight counts against it, so no more than this many ever fail
MAX_START_FAILURES = 2
#: xdist --dist modes whose own schedulers take a worker added mid-run
SCALABLE_DISTS = frozenset({"load", "worksteal"})


def held_by(sched: Any, node: Any) -> int | None:
    """How many tests ``node`` holds (running or committed), if the scheduler says.

    xdist's load/worksteal keep ``node2pending``; pytest_shadowfarm.sched keeps a
    per-node count. Neither is public API (a public ``held(node)`` would be welcome).
    """
    per_node = getattr(sched, "node2pending", None)
    if isinstance(per_node, dict) and node in per_node:
        return len(per_node[node])
    count = getattr(getattr(sched, "_state", {}).get(node), "count", None)
    return count if isinstance(count, int) else None


class Scaler:
    """Applies the policy's decisions to one DSession."""

    def __init__(
        self,
        run: Run,
        dsession: Any,
        limits: Limits,
        source: WorkerSource,
        *,
        hub: TelemetryHub,
        progress: Progress,
        dist: str,
        argv: Sequence[str],
        post: Callable[[], None],
        node_down: Callable[..., Any],
    ) -> None:
        self.run = run
        self.ds = dsession
        self.limits = limits
        self.source = source
        self.hub = hub
        self.progress = progress
        self.dist = dist
        self.argv = tuple(argv)
        #: hands the farm a snapshot of the run (at most every couple of seconds)
        self.post = post
        #: pytest's ``pytest_testnodedown`` hook, for a late worker that never got ready
        self.node_down = node_down
        self.active = True
        self.ticks = 0
        self.last_change_s: float | None = None
        self.start_failures = 0
        self.prior: Prior | None = None

    def install(self) -> None:
        """Hook into the dsession: the tick handler and the late-worker crash path."""
        setattr(self.ds, "worker_" + TICK_EVENT, self.on_tick)
        previous = self.ds.worker_errordown
        self.ds.worker_errordown = lambda node, error: self._on_errordown(node, error, previous)
        import psutil  # here: only a run that scales reads the host's load

        psutil.cpu_percent(interval=None)  # baseline for the first tick's host load
        self.ds.queue.put((TICK_EVENT, {}))  # decide at once (on the prior, if any)

    def our_scheduler(self) -> bool:
        return type(getattr(self.ds, "sched", None)).__module__.startswith("pytest_shadowfarm")

    def _scheduler_problem(self) -> str | None:
        """Whether the run's scheduler takes workers added mid-run (known once it exists)."""
        if self.our_scheduler():
            return None  # pytest_shadowfarm.sched: add_node works at any time
        if self.dist in SCALABLE_DISTS:
            return None
        return f"--dist {self.dist} with {type(self.ds.sched).__name__} does not take late workers"

    # --- one tick -----------------------------------------------------------------------

    def on_tick(self) -> None:
        self.ticks += 1
        if self.ds.shuttingdown or self.ds.sched is None or not self.active:
            return
        if self.ticks == 1:
            problem = self._scheduler_problem()
            if problem:
                self.active = False
                self.run.warn(f"--sf-workers: {problem}; the swarm stays fixed")
                return
        self.hub.drain()
        self.post()
        state = self.state()
        if state is None:
            return
        decision = decide(state, self.limits)
        if decision.change > 0:
            if not self.ds.sched.tests_finished:
                self._grow(decision, state.now_s)
        elif decision.change < 0:
            self._shrink(decision, state.now_s)

    def _start_room(self) -> int:
        """Starts the failure budget still allows: a late worker not ready yet may fail."""
        in_flight = sum(1 for w in self.run.workers.live() if w.late and w.ready_s is None)
        return MAX_START_FAILURES - self.start_failures - in_flight

    def _grow(self, decision: Decision, now: float) -> None:
        workers = self.run.workers
        added: list[str] = []
        for _ in range(min(decision.change, self._start_room())):
            workers.expect(self.run.now(), late=True)
            before = {w.id for w in workers.live()}
            try:
                node = self.source.start(self.ds.nodemanager, self.ds.queue.put)
            except Exception as exc:
                # setup_node may have got as far as pytest_configure_node: that worker
                # will never be ready nor go down through xdist; its cost ends now.
                for record in workers.live():
                    if record.id not in before:
                        workers.down(record.id, crashed=True, reason="could not start")
                self._start_failed(None, exc)
                break
            finally:
                workers.expect(None)
            worker = str(node.gateway.id)
            self.ds._active_nodes.add(node)
            expect = getattr(self.ds.sched, "expect_worker", None)
            if expect is not None:  # our scheduler keeps tail work for it (xdist's cannot)
                expect()
            added.append(worker)
        if added:
            self._record(decision, now, len(added), added)

    def _shrink(self, decision: Decision, now: float) -> None:
        workers = self.run.workers

        # Idle workers first (pure cost), then those still starting (no work yet), then
        # the ones holding the least; among equals the newest (LIFO).
        def rank(worker: WorkerRecord) -> tuple[int, int, float]:
            collected = worker.collected_s is not None
            held = self.held(worker.id) if collected else 0
            tier = 0 if collected and held == 0 else 1 if held == 0 else 2
            return (tier, held, -worker.joined_s)

        candidates = [w.id for w in sorted(workers.working(), key=rank)]
        chosen = candidates[: -decision.change]
        # What each still holds: all it will run from now on (the scheduler sends a
        # shutting-down worker nothing more).
        held = {worker: self.held(worker) for worker in chosen}
        for worker in chosen:
            record = workers.get(worker)
            assert record is not None
            record.node.shutdown()
            workers.drain(worker, ended="drained", reason=decision.reason)
        if chosen:
            self._record(decision, now, -len(chosen), chosen, held=held)

    def _record(
        self,
        decision: Decision,
        now: float,
        change: int,
        workers: list[str],
        *,
        held: dict[str, int] | None = None,
    ) -> None:
        self.last_change_s = self.run.now()  # the cool-down runs from the change done
        fields: dict[str, Any] = {
            "from": decision.current,
            "to": decision.current + change,
            "reason": decision.reason,
            "workers": workers,
            "decided_s": round(now, 6),
        }
        if held is not None:
            fields["held"] = held
        self.run.events.emit("scale", **fields)

    def _start_failed(self, worker: str | None, error: object) -> None:
        self.start_failures += 1
        self.last_change_s = self.run.now()
        text = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        self.run.events.emit("scale_failed", worker=worker, error=text)
        stop = " (no more growth in this run)" if self.start_failures >= MAX_START_FAILURES else ""
        self.run.warn(f"swarm: a new worker failed to start: {text}{stop}")

    def _on_errordown(self, node: Any, error: object, previous: Any) -> None:
        worker = str(node.gateway.id)
        record = self.run.workers.get(worker)
        if record is not None and record.late and record.ready_s is None:
            self.node_down(node=node, error=error)
            self.ds._active_nodes.discard(node)
            self._start_failed(worker, error)
            return
        previous(node=node, error=error)

    # --- the state the policy sees ------------------------------------------------------

    def held(self, worker: str) -> int:
        """Tests ``worker`` holds: from the scheduler, else what telemetry says it runs."""
        record = self.run.workers.get(worker)
        node = record.node if record is not None and record.live else None
        count = held_by(getattr(self.ds, "sched", None), node)
        if count is not None:
            return count
        telemetry = self.hub.workers.get(worker)
        return int(telemetry is not None and telemetry.nodeid is not None)

    def _etc(self, nodeid: str) -> float:
        unknown = self.progress.unknown_durations
        plan = self.run.plan
        if nodeid in plan.known_etc or len(unknown) < 3:
            return plan.etc.get(nodeid, DEFAULT_ETC_S)
        return statistics.fmean(unknown[-50:])  # a first run: what its tests took so far

    def _remaining(self, nodeid: str, elapsed: float) -> float:
        if nodeid in self.run.plan.known_etc:
            return self.run.estimator.remaining(nodeid, elapsed)
        return max(self._etc(nodeid) - elapsed, 1e-3)

    def state(self) -> SwarmState | None:
        run, progress, now = self.run, self.progress, self.run.now()
        if run.plan.etc:
            pending = [n for n in run.plan.etc if n not in progress.started]
            etcs = [self._etc(n) for n in pending]
            running = [self._remaining(nodeid, now - start) for nodeid, start in progress.running()]
        elif self.prior is not None and self.ticks == 1:
            pending = list(self.prior.nodeids)
            etcs = [run.estimator.etc(n) for n in pending]
            running = []
        else:
            return None  # nothing known until the first worker has collected
        workers = run.workers.working()
        starting = sum(1 for w in workers if w.collected_s is None)
        busy = starting + sum(
            1 for w in workers if w.collected_s is not None and self.held(w.id) > 0
        )
        cpu_fraction = progress.cpu_fraction()
        if cpu_fraction is None:
            cpu_fraction = self.hub.test_cpu_fraction()
        if cpu_fraction is None and self.prior is not None:
            cpu_fraction = self.prior.io_bound_fraction
        return SwarmState(
            now_s=now,
            workers=len(workers),
            busy=busy,
            pending_count=len(pending),
            pending_s=math.fsum(etcs),
            running_s=tuple(running),
            spent_ws=worker_seconds(list(run.workers), now),
            startup_s=self._startup_s(),
            test_s=statistics.fmean(etcs) if etcs else 0.0,
            longest_pending_s=max(etcs, default=0.0),
            cpu_fraction=cpu_fraction,
            cores_available=self._cores_available(),
            last_change_s=self.last_change_s,
            starting=starting,
        )

    def _startup_s(self) -> float:
        """A new worker's start-up: as measured in this run, else as the prior run's was."""
        startups = self.run.workers.startups()
        if startups:
            return statistics.median(startups)
        if self.prior is not None and self.prior.startup_s is not None:
            return self.prior.startup_s
        return DEFAULT_STARTUP_S

    def _cores_available(self) -> float:
        """Host cores not busy with other processes than this run's workers."""
        import psutil

        cores = float(psutil.cpu_count() or 1)
        host_busy = psutil.cpu_percent(interval=None) / 100.0 * cores
        others = max(0.0, host_busy - self.hub.busy_cores())
        return max(0.0, cores - others)

    def load_prior(self) -> None:
        """The last run of the same command, from the history (see :mod:`.prior`)."""
        store = self.run.store
        if store is None:
            return
        try:
            runs = [PastRun(run_id, run.argv, run.workers) for run_id, run in store.runs()]
            run_of_results = self.run.recent.runs  # the newest ones, read at the start
            last = store.last_results()
        except Exception as exc:  # a history that cannot be read only costs the prior
            self.run.warn(f"swarm: no prior from the history: {exc}")
            return
        newest = {
            nodeid: Newest(run_ids[-1], last[nodeid].cpu_s, r.duration_s, r.start_s)
            for nodeid, run_ids in run_of_results.items()
            if run_ids and (r := last.get(nodeid)) is not None
        }
        self.prior = find_prior(self.argv, runs, run_of_results, newest)
