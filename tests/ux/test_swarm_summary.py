"""The elastic swarm's summary compares itself with what the user would have run."""

from __future__ import annotations

from pytest_shadowfarm.registry import WorkerRecord
from pytest_shadowfarm.swarm.summary import summary_lines

WORKERS = [WorkerRecord("gw0", joined_s=0.0, left_s=10.0), WorkerRecord("gw1", joined_s=5.0)]


class TestBaseline:
    def test_the_baseline_is_n_auto_on_this_machine(self) -> None:
        """On a 2-core machine the swarm (MAX 4) is compared with -n auto = 2 workers."""
        lines = summary_lines(
            events=[], workers=WORKERS, wall_s=10.0, max_workers=4, auto_workers=2
        )
        assert lines == [
            "swarm: 15.0 worker-s over 10.0 s wall, 2 workers; baseline static -n auto "
            "(2 workers here): 20.0 worker-s (2 x 10.0 s; 25% less spent)"
        ]

    def test_without_a_core_count_the_line_names_its_baseline(self) -> None:
        """No -n auto count known: the baseline is -n MAX, and the line says so."""
        lines = summary_lines(events=[], workers=WORKERS, wall_s=10.0, max_workers=4)
        assert "baseline static -n 4: 40.0 worker-s" in lines[0]
