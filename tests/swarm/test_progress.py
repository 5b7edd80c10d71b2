"""Progress: tests started and finished, first-run durations, CPU demand share."""

from __future__ import annotations

from pytest_shadowfarm.recorder import TestTrace
from pytest_shadowfarm.swarm.progress import Progress


def trace(nodeid: str, wall: float, cpu: float | None) -> TestTrace:
    t = TestTrace(nodeid, 0, 0.0)
    t.seconds["call"] = wall
    t.cpu_s = cpu
    return t


class TestProgress:
    def test_running_tests_are_those_started_and_not_finished(self):
        """A test starts once (the first start time stays) and stops running when finished."""
        progress = Progress()
        progress.start("a", 1.0)
        progress.start("a", 2.0)
        progress.start("b", 3.0)
        progress.finish(None, "b", known=True)
        assert progress.running() == [("a", 1.0)]

    def test_unknown_tests_record_their_duration(self):
        """Only tests without a history add to the first run's durations."""
        progress = Progress()
        progress.finish(trace("a", 2.0, None), "a", known=False)
        progress.finish(trace("b", 5.0, None), "b", known=True)
        assert progress.unknown_durations == [2.0]

    def test_the_cpu_fraction_counts_the_time_spent_waiting_for_a_cpu(self):
        """CPU demand = (cpu + wait) / wall over three or more tests, capped at 1."""
        progress = Progress()
        for name in ("a", "b"):
            progress.finish(trace(name, 1.0, 0.1), name, known=True)
        assert progress.cpu_fraction() is None  # two are too few
        progress.waited("c", 0.5)
        progress.finish(trace("c", 1.0, 0.1), "c", known=True)
        assert round(progress.cpu_fraction(), 6) == round(0.8 / 3.0, 6)
        for name in ("d", "e", "f"):
            progress.waited(name, 5.0)
            progress.finish(trace(name, 1.0, 1.0), name, known=True)
        assert progress.cpu_fraction() == 1.0
