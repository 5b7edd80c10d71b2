"""The prior: the last run of the same command stands in before the first collection."""

from __future__ import annotations

import pytest

from pytest_shadowfarm.swarm.prior import Newest, PastRun, Prior, comparable_argv, find_prior


class TestComparableArgv:
    @pytest.mark.parametrize(
        "argv",
        [
            ["-p", "shadowfarm", "tests", "-n", "4"],
            ["-p", "shadowfarm", "-n4", "tests"],
            ["-p", "shadowfarm", "tests", "--numprocesses=auto", "--dist", "load"],
            ["-p", "shadowfarm", "--sf-workers", "1:4", "tests", "--sf-report-json=r.json"],
            ["-p", "shadowfarm", "tests", "--tx", "popen", "--max-worker-restart", "2"],
        ],
    )
    def test_worker_counts_and_sf_options_do_not_matter(self, argv: list[str]) -> None:
        """How the run is spread and where reports go are dropped; the selection stays."""
        assert comparable_argv(argv) == ("-p", "shadowfarm", "tests")

    def test_the_selection_matters(self) -> None:
        """-k, paths and other options are kept."""
        assert comparable_argv(["tests/a.py", "-k", "fast", "-n", "2"]) == (
            "tests/a.py",
            "-k",
            "fast",
        )


RUNS = [
    PastRun(1, ["tests", "-n", "2"], workers=2),
    PastRun(2, ["tests/other.py"], workers=0),
    PastRun(3, ["tests", "--sf-workers", "1:4"], workers=3),
]
BY_TEST = {"a": [1, 3], "b": [1, 3], "c": [1], "d": [2]}
NEWEST = {
    "a": Newest(3, cpu_s=0.1, duration_s=1.0, start_s=2.5),
    "b": Newest(3, cpu_s=0.3, duration_s=1.0, start_s=2.0),
    "c": Newest(1, cpu_s=5.0, duration_s=5.0, start_s=9.0),
    "d": Newest(2, cpu_s=1.0, duration_s=1.0, start_s=0.1),
}


class TestFindPrior:
    def test_the_newest_comparable_run_gives_its_tests_usage_and_start_up(self) -> None:
        """Run 3 matches `tests -n 8`: its tests, their cpu share, its first test's start."""
        prior = find_prior(["tests", "-n", "8"], RUNS, BY_TEST, NEWEST)
        assert prior is not None
        assert prior.nodeids == ("a", "b")
        assert prior.cpu_fraction == pytest.approx(0.2)
        assert prior.startup_s == 2.0

    def test_an_in_process_run_says_nothing_about_worker_start_up(self) -> None:
        """A run without xdist workers: its first test's start is not a worker's start-up."""
        prior = find_prior(["tests/other.py"], RUNS, BY_TEST, NEWEST)
        assert prior is not None
        assert prior.nodeids == ("d",)
        assert prior.startup_s is None

    def test_no_comparable_run_no_prior(self) -> None:
        """A new command line has no prior."""
        assert find_prior(["tests", "-k", "x"], RUNS, BY_TEST, NEWEST) is None

    def test_usage_unknown_is_none_not_zero(self) -> None:
        """Results without CPU time give no cpu share."""
        newest = {k: Newest(v.run_id, None, v.duration_s, v.start_s) for k, v in NEWEST.items()}
        prior = find_prior(["tests"], RUNS, BY_TEST, newest)
        assert prior is not None
        assert prior.cpu_fraction is None


class TestIoBoundFraction:
    @pytest.mark.parametrize(
        ("cpu_fraction", "expected"), [(0.02, 0.02), (0.1, 0.1), (0.2, None), (None, None)]
    )
    def test_only_a_clearly_waiting_run_is_trusted_before_live_data(
        self, cpu_fraction: float | None, expected: float | None
    ) -> None:
        """A partly busy past run may have waited for a CPU, not on I/O: no hint from it."""
        assert Prior(("a",), cpu_fraction=cpu_fraction).io_bound_fraction == expected
