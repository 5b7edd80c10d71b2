"""The Scaler over a real Run, registry, progress and telemetry hub; only xdist is faked."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_shadowfarm.run import Run
from pytest_shadowfarm.settings import Settings
from pytest_shadowfarm.swarm.channel import TelemetryHub
from pytest_shadowfarm.swarm.policy import DEFAULT_STARTUP_S, Decision, Limits
from pytest_shadowfarm.swarm.prior import Prior
from pytest_shadowfarm.swarm.progress import Progress
from pytest_shadowfarm.swarm.scaler import MAX_START_FAILURES, TICK_EVENT, Scaler, held_by
from pytest_shadowfarm.values import WorkerRange
from tests.apptools import Clock


@dataclass(eq=False)
class FakeGateway:
    id: str


@dataclass(eq=False)
class FakeNode:
    """xdist's WorkerController, as far as the scaler touches it."""

    gateway: FakeGateway
    shutdowns: int = 0

    def shutdown(self) -> None:
        self.shutdowns += 1


@dataclass
class FakeSched:
    """An xdist load scheduler: what each node holds, and whether the tests are done."""

    node2pending: dict[Any, list[int]] = field(default_factory=dict)
    tests_finished: bool = False


@dataclass
class FakeQueue:
    items: list[Any] = field(default_factory=list)

    def put(self, item: Any) -> None:
        self.items.append(item)


@dataclass
class FakeDSession:
    sched: Any = field(default_factory=FakeSched)
    queue: FakeQueue = field(default_factory=FakeQueue)
    nodemanager: Any = "the nodemanager"
    shuttingdown: bool = False
    _active_nodes: set[Any] = field(default_factory=set)
    errordowns: list[tuple[Any, object]] = field(default_factory=list)

    def worker_errordown(self, node: Any, error: object) -> None:
        self.errordowns.append((node, error))


class FakeSource:
    """Starts a fake node as xdist would: the session writer registers it in the run."""

    name = "local"

    def __init__(self, run: Run, *, fail: str | None = None, registers_on_fail: bool = False):
        self.run = run
        self.fail = fail
        self.registers_on_fail = registers_on_fail
        self.ids = (f"gw{i}" for i in itertools.count(10))
        self.started: list[Any] = []
        self.calls = 0

    def start(self, nodemanager: Any, putevent: Any) -> FakeNode:
        assert nodemanager == "the nodemanager"
        self.calls += 1
        worker = next(self.ids)
        if self.fail is not None:
            if self.registers_on_fail:  # setup_node got as far as pytest_configure_node
                self.run.workers.asked(worker)
            raise OSError(self.fail)
        node = FakeNode(FakeGateway(worker))
        self.run.workers.asked(worker, node=node)
        self.started.append(node)
        return node


@pytest.fixture
def clock() -> Clock:
    return Clock(100.0)


@pytest.fixture
def warnings_seen() -> list[str]:
    return []


@pytest.fixture
def run(tmp_path: Path, clock: Clock, warnings_seen: list[str]) -> Run:
    run = Run(
        Settings(rootdir=tmp_path, history=tmp_path / "history.db"),
        clock=clock,
        wallclock=clock,
        warn=warnings_seen.append,
    )
    run.start()
    return run


@pytest.fixture
def ds() -> FakeDSession:
    return FakeDSession()


@pytest.fixture
def make_scaler(run: Run, ds: FakeDSession, clock: Clock):
    def make(low: int, high: int, source: Any = None, dist: str = "load") -> Scaler:
        scaler = Scaler(
            run,
            ds,
            Limits(WorkerRange(low, high)),
            source or FakeSource(run),
            hub=TelemetryHub(clock),
            progress=Progress(),
            dist=dist,
            argv=["tests", "-n", "1"],
            post=lambda: None,
            node_down=lambda node, error: downs.append((node, error)),
        )
        scaler.node_downs = downs  # type: ignore[attr-defined]
        return scaler

    downs: list[tuple[Any, object]] = []
    return make


def add_worker(run: Run, ds: FakeDSession, worker: str, *, held: int | None, clock: Clock):
    """A worker of the run: asked for now; collected (holding ``held`` tests) unless None."""
    node = FakeNode(FakeGateway(worker))
    run.workers.asked(worker, node=node)
    ds._active_nodes.add(node)
    if held is not None:
        run.workers.ready(worker)
        run.workers.collected(worker)
        ds.sched.node2pending[node] = list(range(held))
    clock.now += 1
    return node


def plan(run: Run, **etc: float) -> None:
    run.plan.etc.update({f"t.py::{name}": seconds for name, seconds in etc.items()})


class TestGrowing:
    def test_below_the_minimum_the_source_starts_workers_that_join_the_session(
        self, run, ds, clock, make_scaler
    ):
        """Each new worker is registered as late at the time it was asked for and joins
        the dsession's active nodes; one scale event records the change."""
        add_worker(run, ds, "gw0", held=2, clock=clock)
        plan(run, a=1.0, b=1.0)
        scaler = make_scaler(3, 4)
        asked_at = run.now()
        scaler.on_tick()
        assert [n.gateway.id for n in scaler.source.started] == ["gw10", "gw11"]
        assert set(scaler.source.started) <= ds._active_nodes
        records = [run.workers.get("gw10"), run.workers.get("gw11")]
        assert [(r.late, r.joined_s) for r in records] == [(True, asked_at), (True, asked_at)]
        [event] = run.events.of("scale")
        assert (event["from"], event["to"], event["workers"]) == (1, 3, ["gw10", "gw11"])
        assert event["reason"] == "below the minimum of 3"
        assert scaler.last_change_s == asked_at

    def test_a_scheduler_that_expects_workers_is_told(self, run, ds, clock, make_scaler):
        """A scheduler with expect_worker() hears of each worker the swarm adds."""
        expected: list[int] = []
        ds.sched.expect_worker = lambda: expected.append(1)
        add_worker(run, ds, "gw0", held=1, clock=clock)
        plan(run, a=1.0)
        make_scaler(2, 2).on_tick()
        assert expected == [1]

    def test_no_growth_once_the_tests_are_finished(self, run, ds, clock, make_scaler):
        """When the scheduler has handed out every test, nothing is started."""
        add_worker(run, ds, "gw0", held=0, clock=clock)
        plan(run, a=1.0)
        ds.sched.tests_finished = True
        scaler = make_scaler(3, 4)
        scaler.on_tick()
        assert scaler.source.calls == 0

    def test_nothing_is_decided_before_the_plan_is_known(self, run, ds, clock, make_scaler):
        """No ETC yet and no prior: the tick decides nothing."""
        add_worker(run, ds, "gw0", held=None, clock=clock)
        scaler = make_scaler(3, 4)
        scaler.on_tick()
        assert (scaler.source.calls, run.events.of("scale")) == (0, [])


class TestStartFailures:
    def test_a_worker_that_fails_to_start_is_marked_down_and_reported(
        self, run, ds, clock, make_scaler, warnings_seen
    ):
        """A start failure: the half-started worker is down (crashed), a scale_failed event
        carries the error's last line, and a warning says it."""
        add_worker(run, ds, "gw0", held=1, clock=clock)
        plan(run, a=1.0)
        source = FakeSource(run, fail="spawn failed\nNo such file: /py", registers_on_fail=True)
        scaler = make_scaler(3, 4, source=source)
        scaler.on_tick()
        assert source.calls == 1  # the first failure stops this tick's growth
        record = run.workers.get("gw10")
        assert (record.state, record.ended, record.reason) == ("down", "crashed", "could not start")
        [event] = run.events.of("scale_failed")
        assert (event["worker"], event["error"]) == (None, "No such file: /py")
        assert warnings_seen == ["swarm: a new worker failed to start: No such file: /py"]
        assert run.events.of("scale") == []

    def test_growth_stops_after_the_maximum_of_failures(
        self, run, ds, clock, make_scaler, warnings_seen
    ):
        """After MAX_START_FAILURES failures the swarm asks for no more workers."""
        add_worker(run, ds, "gw0", held=1, clock=clock)
        plan(run, a=1.0)
        source = FakeSource(run, fail="boom")
        scaler = make_scaler(3, 4, source=source)
        for _ in range(MAX_START_FAILURES + 2):
            scaler.on_tick()
            clock.now += 10
        assert source.calls == MAX_START_FAILURES
        assert warnings_seen[-1].endswith("boom (no more growth in this run)")

    def test_starts_in_flight_count_against_the_failure_budget(self, run, ds, clock, make_scaler):
        """A late worker not ready yet may still fail: with one failure and one start in
        flight, a tick that wants more starts nothing; once it is ready, growth goes on."""
        add_worker(run, ds, "gw0", held=5, clock=clock)
        plan(run, a=1.0)
        scaler = make_scaler(1, 6)
        scaler.start_failures = MAX_START_FAILURES - 1
        scaler._grow(Decision(current=1, workers=4, reason="busy"), run.now())
        assert [n.gateway.id for n in scaler.source.started] == ["gw10"]  # room for one
        scaler._grow(Decision(current=2, workers=5, reason="busy"), run.now())
        assert scaler.source.calls == 1  # gw10 is still starting
        run.workers.ready("gw10")
        scaler._grow(Decision(current=2, workers=5, reason="busy"), run.now())
        assert [n.gateway.id for n in scaler.source.started] == ["gw10", "gw11"]

    def test_a_late_worker_that_dies_before_ready_is_taken_out_quietly(
        self, run, ds, clock, make_scaler
    ):
        """Its crash goes to pytest_testnodedown and scale_failed, not to xdist's restarts."""
        scaler = make_scaler(1, 4)
        scaler.install()
        run.workers.expect(run.now(), late=True)
        late = add_worker(run, ds, "gw7", held=None, clock=clock)
        ds.worker_errordown(late, "segfault")
        assert scaler.node_downs == [(late, "segfault")]
        assert late not in ds._active_nodes
        assert ds.errordowns == []
        assert run.events.of("scale_failed")[0]["worker"] == "gw7"

    def test_a_worker_of_the_start_crashes_through_xdist(self, run, ds, clock, make_scaler):
        """A worker the run started with goes down xdist's own crash path."""
        scaler = make_scaler(1, 4)
        scaler.install()
        first = add_worker(run, ds, "gw0", held=1, clock=clock)
        ds.worker_errordown(first, "segfault")
        assert ds.errordowns == [(first, "segfault")]
        assert scaler.node_downs == []


class TestShrinking:
    def test_idle_first_then_starting_then_least_held_newest_first(
        self, run, ds, clock, make_scaler
    ):
        """Above the maximum, the drained workers are chosen idle, starting, least held."""
        busy = add_worker(run, ds, "gw0", held=3, clock=clock)
        idle = add_worker(run, ds, "gw1", held=0, clock=clock)
        starting = add_worker(run, ds, "gw2", held=None, clock=clock)
        one_old = add_worker(run, ds, "gw3", held=1, clock=clock)
        one_new = add_worker(run, ds, "gw4", held=1, clock=clock)
        plan(run, a=1.0)
        make_scaler(1, 2).on_tick()
        assert [n.shutdowns for n in (busy, idle, starting, one_old, one_new)] == [0, 1, 1, 0, 1]
        assert [w.id for w in run.workers.working()] == ["gw0", "gw3"]
        record = run.workers.get("gw1")
        assert (record.state, record.ended, record.reason) == (
            "draining",
            "drained",
            "above the maximum of 2",
        )
        [event] = run.events.of("scale")
        assert (event["from"], event["to"]) == (5, 2)
        assert event["workers"] == ["gw1", "gw2", "gw4"]
        assert event["held"] == {"gw1": 0, "gw2": 0, "gw4": 1}


class TestTicks:
    def test_install_hooks_the_tick_and_queues_the_first_one(self, run, ds, make_scaler):
        """install() sets worker_<tick> on the dsession and queues a tick at once."""
        scaler = make_scaler(1, 2)
        scaler.install()
        assert getattr(ds, "worker_" + TICK_EVENT) == scaler.on_tick
        assert ds.queue.items == [(TICK_EVENT, {})]

    def test_a_scheduler_that_takes_no_late_workers_keeps_the_swarm_fixed(
        self, run, ds, clock, make_scaler, warnings_seen
    ):
        """--dist each (xdist's own scheduler): one warning, then the scaler stays idle."""
        add_worker(run, ds, "gw0", held=1, clock=clock)
        plan(run, a=1.0)
        scaler = make_scaler(3, 4, dist="each")
        scaler.on_tick()
        scaler.on_tick()
        assert warnings_seen == [
            "--sf-workers: --dist each with FakeSched does not take late workers; "
            "the swarm stays fixed"
        ]
        assert (scaler.active, scaler.source.calls) == (False, 0)

    def test_no_tick_acts_while_the_session_shuts_down(self, run, ds, clock, make_scaler):
        """A shutting-down dsession is left alone."""
        add_worker(run, ds, "gw0", held=1, clock=clock)
        plan(run, a=1.0)
        ds.shuttingdown = True
        scaler = make_scaler(3, 4)
        scaler.on_tick()
        assert scaler.source.calls == 0


class TestState:
    def test_the_state_comes_from_the_plan_progress_and_workers(self, run, ds, clock, make_scaler):
        """Pending tests and their ETC, the running test's remainder, busy and starting."""
        add_worker(run, ds, "gw0", held=1, clock=clock)  # collected 0 s after asked
        add_worker(run, ds, "gw1", held=None, clock=clock)
        plan(run, a=2.0, b=4.0, c=6.0)
        scaler = make_scaler(1, 4)
        scaler.progress.start("t.py::a", run.now() - 0.5)
        state = scaler.state()
        assert (state.workers, state.busy, state.starting) == (2, 2, 1)
        assert (state.pending_count, state.pending_s) == (2, 10.0)
        assert (state.test_s, state.longest_pending_s) == (5.0, 6.0)
        assert state.running_s == (1.5,)
        assert state.startup_s == 0.0  # gw0 collected as soon as it was asked for
        assert state.now_s == run.now()
        assert state.cpu_fraction is None

    def test_a_first_run_estimates_unknown_tests_by_those_that_ran(
        self, run, ds, clock, make_scaler
    ):
        """Without a history, pending tests take the mean of the finished unknown ones."""
        add_worker(run, ds, "gw0", held=1, clock=clock)
        plan(run, a=1.0, b=1.0)
        scaler = make_scaler(1, 4)
        scaler.progress.unknown_durations.extend([3.0, 5.0, 7.0])
        assert scaler.state().pending_s == 10.0

    def test_the_prior_run_stands_in_at_the_first_tick(self, run, ds, clock, make_scaler):
        """Before the plan exists, the first tick plans on the prior run's tests."""
        add_worker(run, ds, "gw0", held=None, clock=clock)
        scaler = make_scaler(1, 4)
        scaler.prior = Prior(("t.py::a", "t.py::b"), cpu_fraction=0.1, startup_s=1.5)
        scaler.ticks = 1
        state = scaler.state()
        assert (state.pending_count, state.running_s, state.startup_s) == (2, (), 1.5)
        assert state.cpu_fraction == 0.1
        scaler.ticks = 2
        assert scaler.state() is None

    def test_without_measure_or_prior_the_startup_is_the_default(self, run, make_scaler):
        """No worker collected yet and no prior: the default cold start-up."""
        assert make_scaler(1, 4)._startup_s() == DEFAULT_STARTUP_S

    def test_held_falls_back_to_telemetry(self, run, ds, clock, make_scaler):
        """A scheduler that does not say: a worker running a test (telemetry) holds one."""
        add_worker(run, ds, "gw0", held=None, clock=clock)
        ds.sched = object()
        scaler = make_scaler(1, 4)
        assert scaler.held("gw0") == 0
        scaler.hub.workers["gw0"] = type("T", (), {"nodeid": "t.py::a"})()
        assert scaler.held("gw0") == 1


class TestHeldBy:
    def test_xdist_node2pending_and_our_per_node_count(self):
        """node2pending's length (xdist), a per-node count (ours), else None."""
        node = object()
        assert held_by(FakeSched({node: [1, 2]}), node) == 2
        ours = type("S", (), {"_state": {node: type("N", (), {"count": 4})()}})()
        assert held_by(ours, node) == 4
        assert held_by(object(), node) is None


class TestLoadPrior:
    def test_without_a_history_store_there_is_no_prior(self, run, make_scaler):
        """A run without a history keeps prior None and warns nothing."""
        scaler = make_scaler(1, 4)
        scaler.load_prior()
        assert scaler.prior is None

    def test_a_history_that_cannot_be_read_only_costs_the_prior(
        self, run, make_scaler, warnings_seen
    ):
        """A store that fails: a warning naming the error, no prior."""

        class Broken:
            def runs(self):
                raise OSError("disk gone")

        run.store = Broken()
        scaler = make_scaler(1, 4)
        scaler.load_prior()
        assert scaler.prior is None
        assert warnings_seen == ["swarm: no prior from the history: disk gone"]
