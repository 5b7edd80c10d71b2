"""The run's worker registry: states, endings, peak, start-ups, expect()."""

from __future__ import annotations

import pytest

from pytest_shadowfarm.registry import WorkerRecord, WorkerRegistry
from tests.apptools import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(0.0)


@pytest.fixture
def registry(clock: Clock) -> WorkerRegistry:
    return WorkerRegistry(clock)


class TestWorkerRegistry:
    def test_a_worker_goes_from_starting_to_collected(self, registry, clock):
        """asked -> ready -> collected, with the times of each step and its start-up."""
        registry.asked("gw0", node="node0")
        clock.now = 1.5
        registry.ready("gw0", warm=True, source="farm")
        clock.now = 2.0
        record = registry.collected("gw0")
        assert (record.state, record.warm, record.source, record.node) == (
            "collected",
            True,
            "farm",
            "node0",
        )
        assert (record.ready_s, record.collected_s, record.startup_s) == (1.5, 2.0, 2.0)
        assert registry.startups() == [2.0]

    def test_a_collected_worker_keeps_its_first_collection_time(self, registry, clock):
        """A second collection report changes neither the time nor the state."""
        registry.collected("gw0")
        registry.drain("gw0")
        clock.now = 5.0
        record = registry.collected("gw0")
        assert (record.collected_s, record.state) == (0.0, "draining")

    def test_expect_gives_the_next_new_worker_its_ask_time(self, registry, clock):
        """expect(at) stamps the next unknown worker as late, asked at ``at``."""
        registry.expect(3.0, late=True)
        clock.now = 4.0
        record = registry.asked("gw5")
        assert (record.joined_s, record.late) == (3.0, True)
        registry.expect(None)
        assert registry.asked("gw6").joined_s == 4.0

    def test_draining_then_down_ends_as_drained(self, registry, clock):
        """A drained worker is no longer working; down keeps the 'drained' ending."""
        registry.asked("gw0")
        registry.asked("gw1")
        registry.drain("gw1", reason="idle")
        assert [w.id for w in registry.working()] == ["gw0"]
        assert [w.id for w in registry.live()] == ["gw0", "gw1"]
        clock.now = 9.0
        registry.down("gw1")
        record = registry.get("gw1")
        assert (record.state, record.ended, record.reason, record.left_s) == (
            "down",
            "drained",
            "idle",
            9.0,
        )

    def test_a_crash_is_recorded_once(self, registry, clock):
        """down(crashed) says why; a later down or drain of it changes nothing."""
        registry.asked("gw0")
        registry.down("gw0", crashed=True, reason="segfault")
        clock.now = 3.0
        registry.down("gw0")
        registry.drain("gw0")
        record = registry.get("gw0")
        assert (record.ended, record.reason, record.left_s) == ("crashed", "segfault", 0.0)

    def test_unknown_workers_are_ignored_by_drain_and_down(self, registry):
        """drain/down of an id never asked for adds nothing."""
        registry.drain("gw9")
        registry.down("gw9")
        assert (len(registry), "gw9" in registry) == (0, False)

    def test_the_peak_counts_workers_live_at_once(self, registry):
        """Peak is the most live workers at one time, not the total ever asked."""
        registry.asked("gw0")
        registry.asked("gw1")
        registry.down("gw0")
        registry.asked("gw2")
        assert (registry.peak, len(registry)) == (2, 3)

    def test_close_finishes_every_worker_still_up(self, registry, clock):
        """At the session end, workers still up leave then and end 'finished'."""
        registry.asked("gw0")
        registry.asked("gw1")
        registry.down("gw1", crashed=True, reason="x")
        registry.close(12.0)
        assert [(w.left_s, w.ended) for w in registry] == [(12.0, "finished"), (0.0, "crashed")]

    def test_a_worker_hosted_elsewhere_reports_its_engine_and_host(self, registry):
        """ready() records where the worker runs; the report entry carries both."""
        registry.asked("gw0")
        registry.ready("gw0", warm=True, source="dask", engine="dask", host="node-b")
        entry = next(iter(registry)).report()
        assert (entry["source"], entry["engine"], entry["host"]) == ("dask", "dask", "node-b")


class TestWorkerRecord:
    def test_the_report_entry_rounds_times_and_adds_the_reason(self):
        """The run report's entry: rounded times, and a reason only when there is one."""
        record = WorkerRecord("gw0", joined_s=1.23456789, left_s=None, ended="finished")
        assert record.report() == {
            "id": "gw0",
            "warm": False,
            "joined_s": 1.234568,
            "left_s": None,
            "source": "local",
            "engine": "local",
            "host": None,
            "ended": "finished",
        }
        record.reason = "idle"
        assert record.report()["reason"] == "idle"
        assert record.startup_s is None
