"""The run model: its clock, its one event schema, and what it holds at the start."""

from __future__ import annotations

from pathlib import Path

from pytest_shadowfarm.run import EventLog, Run
from pytest_shadowfarm.settings import Settings


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_run(tmp_path: Path, clock: FakeClock) -> tuple[Run, list[str]]:
    warned: list[str] = []
    settings = Settings(rootdir=tmp_path, history=tmp_path / "history.sqlite")
    run = Run(settings, clock=clock, wallclock=lambda: 1_700_000_000.0, warn=warned.append)
    return run, warned


class TestRun:
    def test_times_are_seconds_since_the_session_start(self, tmp_path):
        """now() counts from start(), not from when the run object was made."""
        clock = FakeClock(100.0)
        run, _ = make_run(tmp_path, clock)
        clock.now = 105.0
        run.start()
        clock.now = 107.5
        assert run.now() == 2.5
        assert run.started_at == 1_700_000_000.0

    def test_elapsed_is_the_final_wall_once_the_session_ended(self, tmp_path):
        """Before the end elapsed() is now(); after it, the wall the session ended with."""
        clock = FakeClock()
        run, _ = make_run(tmp_path, clock)
        clock.now += 3.0
        assert run.elapsed() == 3.0
        run.wall_s = 3.0
        clock.now += 10.0
        assert run.elapsed() == 3.0

    def test_warnings_go_to_the_callable_given(self, tmp_path):
        """warn() hands the message on (the plugin shows it in pytest's summary)."""
        run, warned = make_run(tmp_path, FakeClock())
        run.warn("history disabled")
        assert warned == ["history disabled"]

    def test_a_run_without_history_estimates_from_nothing(self, tmp_path):
        """Before the history is read, the plan is empty and the estimator knows no test."""
        run, _ = make_run(tmp_path, FakeClock())
        assert run.plan.etc == {}
        assert run.estimator.estimate("tests/test_a.py::test_x").source != "history"
        assert len(run.workers) == 0
        assert run.events.entries == []


class TestEventLog:
    def test_every_event_has_one_schema(self):
        """Each entry is {"event": kind, "t": seconds, ...fields}, in order."""
        clock = FakeClock(1.25)
        log = EventLog(clock)
        log.emit("scale", to=3)
        clock.now = 2.0
        log.emit("crash_rerun", nodeid="t::x")
        assert log.entries == [
            {"event": "scale", "t": 1.25, "to": 3},
            {"event": "crash_rerun", "t": 2.0, "nodeid": "t::x"},
        ]
        assert [e["event"] for e in log.of("scale")] == ["scale"]
        assert log.since(1) == [log.entries[1]]
        assert len(log) == 2

    def test_subscribers_see_each_event_as_it_happens(self):
        """A subscriber is called with every new entry (the farm link, the health monitor)."""
        log = EventLog(FakeClock())
        seen: list[str] = []
        log.subscribe(lambda entry: seen.append(entry["event"]))
        log.emit("a")
        log.emit("b")
        assert seen == ["a", "b"]
