"""The health watch over a real Run, registry and HealthMonitor; only xdist is faked."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pytest_shadowfarm.run import Run
from pytest_shadowfarm.settings import Settings
from pytest_shadowfarm.usage import USAGE_ATTR
from pytest_shadowfarm.workers.ceiling import Ceiling
from pytest_shadowfarm.workers.health import HealthMonitor
from pytest_shadowfarm.workers.watch import ACT_EVERY_S, HealthWatch
from shadowfarm_wire.endings import MaxAge

MIB = 1 << 20
CEILING = 600 * MIB


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeNode:
    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name, exited=False)
        self.gateway.exit = lambda: setattr(self.gateway, "exited", True)
        self.shut = False

    def shutdown(self) -> None:
        self.shut = True


class FakeSched:
    def __init__(self) -> None:
        self.taken_back: list[str] = []
        self.expected = 0

    def take_back(self, node: FakeNode) -> int:
        self.taken_back.append(node.gateway.id)
        return 0

    def expect_worker(self) -> None:
        self.expected += 1


class FakeSource:
    """Starts a worker the way xdist's setup_node does: the registry hears of it at once."""

    name = "local"

    def __init__(self, run: Run) -> None:
        self.run = run
        self.count = 2
        self.fail = False
        self.age = MaxAge()

    def max_age(self) -> MaxAge:
        return self.age

    def start(self, nodemanager: Any, putevent: Any) -> FakeNode:
        if self.fail:
            raise OSError("no room for a new process")
        node = FakeNode(f"gw{self.count}")
        self.count += 1
        self.run.workers.asked(node.gateway.id, node=node)
        return node


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        settings = Settings(rootdir=tmp_path, history=tmp_path / "h.sqlite")
        self.warned: list[str] = []
        self.run = Run(settings, clock=self.clock, warn=self.warned.append)
        self.run.workers_at_start = 2
        self.run.plan.etc = {f"t.py::test_{i}": 0.1 for i in range(200)}
        self.sched = FakeSched()
        self.session = SimpleNamespace(
            shuttingdown=False,
            sched=self.sched,
            nodemanager=None,
            queue=SimpleNamespace(put=lambda event: None),
            _active_nodes=set(),
        )
        config = SimpleNamespace(
            pluginmanager=SimpleNamespace(getplugin=lambda name: self.session),
            option=SimpleNamespace(verbose=0),
        )
        self.source = FakeSource(self.run)
        ceiling = Ceiling(CEILING, "override", "--sf-memory-limit 600.0 MiB")
        self.watch = HealthWatch(
            config,  # type: ignore[arg-type]
            self.run,
            self.source,
            HealthMonitor(CEILING, startup_s=0.5),
            ceiling,
        )
        self.watch._outside = lambda: 60 * MIB  # type: ignore[method-assign]
        self.nodes = {}
        for name in ("gw0", "gw1"):
            node = FakeNode(name)
            self.nodes[name] = node
            self.run.workers.asked(name, node=node)
            self.run.workers.ready(name)
            self.run.workers.collected(name)
        self.started = 0

    def test_done(self, worker: str, rss_mib: float, seconds: float = 0.1) -> None:
        """One more test finished on ``worker``, which holds ``rss_mib`` after it."""
        self.clock.now += seconds
        self.run.recorder.started(f"t.py::test_{self.started}", self.clock.now)
        self.started += 1
        report = SimpleNamespace(when="teardown", failed=False, worker_id=worker)
        setattr(report, USAGE_ATTR, {"rss_kb": int(rss_mib * 1024), "peak_rss_kb": None})
        self.watch.pytest_runtest_logreport(report)  # type: ignore[arg-type]


class TestHealthWatch:
    def test_a_leaking_worker_is_replaced_before_its_limit_and_a_steady_one_is_not(self, tmp_path):
        """gw0 leaks 12 MiB a test, gw1 holds steady: gw0 gets a replacement, is drained
        once it is up (its unstarted tests taken back), and ends 'replaced' with a reason."""
        h = Harness(tmp_path)
        for n in range(40):
            h.test_done("gw0", 60 + 12 * n)
            h.test_done("gw1", 70)
            if h.watch.started:
                break
        assert h.watch.started == ["gw2"]
        assert h.watch.replacing == {"gw0": "gw2"}
        assert h.sched.expected == 1
        h.run.workers.ready("gw2")
        h.run.workers.collected("gw2")
        h.test_done("gw1", 70)
        record = h.run.workers.get("gw0")
        assert record is not None
        assert record.ended == "replaced"
        assert "memory would reach" in (record.reason or "")
        assert h.nodes["gw0"].shut
        assert h.sched.taken_back == ["gw0"]
        assert h.run.workers.get("gw1").ended is None  # type: ignore[union-attr]
        h.watch.pytest_testnodedown(h.nodes["gw0"], None)
        assert h.nodes["gw0"].gateway.exited  # its leaked memory goes now, not at the end

    def test_tiny_tests_are_assessed_at_most_every_act_every_s(self, tmp_path):
        """1,000 tests of 1 ms: every sample is kept, the workers assessed 20 times."""
        h = Harness(tmp_path)
        assessed = []
        assess = h.watch.monitor.assess
        h.watch.monitor.assess = lambda *a, **k: assessed.append(1) or assess(*a, **k)  # type: ignore[method-assign]
        for _ in range(500):
            h.test_done("gw0", 70, seconds=0.001)
            h.test_done("gw1", 70, seconds=0.001)
        assert h.watch.tests_done == {"gw0": 500, "gw1": 500}
        assert len(assessed) == round(1.0 / ACT_EVERY_S)

    def test_the_report_counts_replacements_and_crashes(self, tmp_path):
        """health in the run report: replacements, crashes, what was replaced and why."""
        h = Harness(tmp_path)
        for n in range(40):
            h.test_done("gw0", 60 + 12 * n)
            h.test_done("gw1", 70)
        h.run.workers.collected("gw2")
        h.test_done("gw1", 70)
        h.run.workers.down("gw1", crashed=True, reason="killed")
        h.watch.pytest_sessionfinish()
        health = h.run.report_extras["health"]
        assert health["replacements"] == 1
        assert health["crashes"] == 1
        assert health["replaced"][0]["worker"] == "gw0"
        assert health["ceiling_bytes"] == CEILING

    def test_a_replacement_that_cannot_start_leaves_the_run_going_with_a_warning(self, tmp_path):
        """A failing start is an event and one warning; the sick worker is drained at swap."""
        h = Harness(tmp_path)
        h.source.fail = True
        for n in range(60):
            h.test_done("gw0", 60 + 12 * n)
            h.test_done("gw1", 70)
        assert h.run.events.of("replacement_failed")
        assert any("could not start" in w for w in h.warned)
        assert h.run.workers.get("gw0").state == "draining"  # type: ignore[union-attr]

    def test_the_farm_s_max_age_recycles_a_steady_worker_as_a_planned_replacement(self, tmp_path):
        """With a max age from the source (the farm learned it), a worker that holds steady
        gets its replacement ahead, serves on to two tests before that age (beside the
        replacement), and is then replaced with cause "age"."""
        h = Harness(tmp_path)
        h.source.age = MaxAge(tests=20, basis="2 sick workers (memory) in 7 days")
        for _ in range(30):
            h.test_done("gw0", 70)
            h.test_done("gw1", 70)
            if h.watch.started:
                break
        assert h.watch.replacing == {"gw0": "gw2"} or h.watch.replacing == {"gw1": "gw2"}
        [sick] = h.watch.replacing
        h.run.workers.collected("gw2")
        record = h.run.workers.get(sick)
        assert record is not None
        h.test_done("gw0" if sick == "gw1" else "gw1", 70)
        assert record.ended is None  # its replacement is up, but it is not 18 tests old yet
        while h.watch.tests_done[sick] < 18:
            h.test_done(sick, 70)
        assert h.watch.tests_done[sick] == 18
        assert (record.ended, record.cause) == ("replaced", "age")
        assert "max age 20 tests (learned by the farm: 2 sick workers" in (record.reason or "")
        assert h.watch.replaced[0]["cause"] == "age"
        assert h.run.events.of("health_max_age")[0]["tests"] == 20
        assert record.report()["cause"] == "age"

    def test_no_max_age_from_the_source_leaves_a_steady_worker_alone(self, tmp_path):
        """Without a max age, steady workers are never replaced, however long they run."""
        h = Harness(tmp_path)
        for _ in range(80):
            h.test_done("gw0", 70)
            h.test_done("gw1", 70)
        assert (h.watch.started, h.watch.replaced) == ([], [])
        h.watch.pytest_sessionfinish()
        assert h.run.report_extras["health"]["max_age"] == {
            "tests": None,
            "seconds": None,
            "basis": "",
        }

    def test_reports_without_usage_are_ignored(self, tmp_path):
        """A worker without telemetry (an old one, telemetry off) is never judged."""
        h = Harness(tmp_path)
        report = SimpleNamespace(when="teardown", failed=False, worker_id="gw0")
        h.watch.pytest_runtest_logreport(report)  # type: ignore[arg-type]
        assert h.watch.tests_done == {}
