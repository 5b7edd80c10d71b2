"""The swarm's terminal summary lines, from plain values."""

from __future__ import annotations

from pytest_shadowfarm.registry import WorkerRecord
from pytest_shadowfarm.swarm.channel import WorkerTelemetryState
from pytest_shadowfarm.swarm.summary import summary_lines, worker_seconds

WORKERS = [WorkerRecord("gw0", joined_s=0.0), WorkerRecord("gw1", joined_s=2.0, left_s=6.0)]


class TestWorkerSeconds:
    def test_each_worker_costs_from_ask_to_release_or_the_end(self):
        """gw0 runs to the end (10 s), gw1 from 2 to 6 s: 14 worker-seconds."""
        assert worker_seconds(WORKERS, 10.0) == 14.0


class TestSummaryLines:
    def test_scaling_events_and_the_cost_against_a_static_swarm(self):
        """One line per scale/scale_failed event, other events skipped, then the cost."""
        events = [
            {"event": "scale", "t": 1.0, "from": 1, "to": 2, "reason": "demand"},
            {"event": "farm_claim", "t": 1.5},
            {"event": "scale_failed", "t": 2.0, "worker": None, "error": "boom"},
        ]
        lines = summary_lines(events=events, workers=WORKERS, wall_s=10.0, max_workers=4)
        assert lines == [
            "swarm     1.0s  1 -> 2: demand",
            "swarm     2.0s  a new worker failed to start: boom",
            "swarm: 14.0 worker-s over 10.0 s wall, 2 workers; baseline static -n 4: "
            "40.0 worker-s (4 x 10.0 s; 65% less spent)",
        ]

    def test_a_fixed_swarm_shows_only_its_cost(self):
        """Without a maximum, no comparison; without workers, no cost line."""
        assert summary_lines(events=[], workers=WORKERS, wall_s=10.0, max_workers=None) == [
            "swarm: 14.0 worker-s over 10.0 s wall, 2 workers"
        ]
        assert summary_lines(events=[], workers=[], wall_s=1.0, max_workers=2) == []

    def test_telemetry_names_the_peak_worker_and_the_kind_of_suite(self):
        """Samples from sampled workers only; the peak RSS worker; I/O- or CPU-bound."""
        quiet = WorkerTelemetryState("gw0")
        big = WorkerTelemetryState("gw1", samples=5, peak_rss_kb=204800)
        small = WorkerTelemetryState("gw2", samples=3, peak_rss_kb=1024)
        lines = summary_lines(
            events=[],
            workers=[],
            wall_s=1.0,
            max_workers=None,
            telemetry=[quiet, big, small],
            cpu_fraction=0.2,
        )
        assert lines == [
            "telemetry: 8 samples from 2 workers; peak RSS 200 MB (gw1); "
            "tests' CPU demand 0.20 of their wall time (I/O-bound)"
        ]
        cpu = summary_lines(
            events=[], workers=[], wall_s=1.0, max_workers=None, telemetry=[big], cpu_fraction=0.9
        )
        assert cpu[0].endswith("(CPU-bound)")
