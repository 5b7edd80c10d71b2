"""What a new user reads of the prediction: honest with no history, right for subsets and -x."""

from __future__ import annotations

import re

import pytest

from pytest_shadowfarm.estimate import Estimator
from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord
from pytest_shadowfarm.report.terminal import parse_seconds

#: four tests of known length; ``test_a`` fails when $FAILING is set
SUITE = (
    "import os, time\n"
    "def test_a():\n    time.sleep(0.3)\n    assert not os.environ.get('FAILING')\n"
    "def test_b():\n    time.sleep(0.3)\n"
    "def test_c():\n    time.sleep(0.1)\n"
    "def test_d():\n    time.sleep(0.1)\n"
)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("FAILING", raising=False)
    monkeypatch.delenv("SHADOWFARM_ORDER", raising=False)
    pytester.makepyfile(test_sleep=SUITE)
    return pytester


def seconds_after(result: pytest.RunResult, pattern: str) -> float:
    """The duration printed after ``pattern`` on the first line that has it."""
    for line in result.outlines:
        found = re.search(pattern + r" (\d+m[\d.]+s|[\d.]+s)", line)
        if found:
            return parse_seconds(found.group(1))
    raise AssertionError(f"no {pattern!r} in:\n" + "\n".join(result.outlines))


class TestFirstRun:
    def test_no_history_says_so_instead_of_a_number(self, suite: pytest.Pytester) -> None:
        """With nothing recorded the header says "no history yet" and predicts nothing."""
        result = suite.runpytest("-p", "shadowfarm")
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(["shadowfarm: 4 tests, no history yet: no prediction*"])
        result.stdout.no_fnmatch_line("*predicted total*")


class TestSubsets:
    def test_a_k_subset_predicts_its_own_wall_within_a_quarter(
        self, suite: pytest.Pytester
    ) -> None:
        """``-k`` predicts the selected tests plus collection and overhead: within 25%."""
        suite.runpytest("-p", "shadowfarm").assert_outcomes(passed=4)
        suite.runpytest("-p", "shadowfarm").assert_outcomes(passed=4)
        result = suite.runpytest("-p", "shadowfarm", "-k", "test_a or test_c")
        result.assert_outcomes(passed=2, deselected=2)
        result.stdout.fnmatch_lines(["shadowfarm: 2 tests, 2 with history; predicted total *"])
        predicted = seconds_after(result, "run ends after about")
        actual = seconds_after(result, "; wall")
        assert abs(predicted - actual) <= 0.25 * actual, (predicted, actual)
        assert predicted >= 0.4

    def test_x_compares_only_what_ran_and_says_it_stopped_early(
        self, suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A run stopped by ``-x`` compares the tests that ran, not the whole prediction."""
        suite.runpytest("-p", "shadowfarm").assert_outcomes(passed=4)
        monkeypatch.setenv("FAILING", "1")
        result = suite.runpytest("-p", "shadowfarm", "-x", "--sf-order", "none")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["stopped early after 1 of 4 tests: predicted *"])
        result.stdout.no_fnmatch_line("*-100*%*")


class TestTotals:
    def test_the_total_adds_means_not_medians(self) -> None:
        """Spiky tests: the predicted total is the weighted mean's sum, not the medians'."""
        history = {f"t{i}": [0.01] * 6 + [0.01 + 0.1 * (i % 2)] * 2 for i in range(10)}
        estimator = Estimator(history)
        medians = estimator.total(history)
        means = sum(estimator.expected(n) for n in history)
        assert medians == pytest.approx(0.1)
        assert means > medians * 1.5

    def test_overheads_read_the_time_between_and_around_tests(self, tmp_path) -> None:
        """Before the first test, between tests and after the last: each a median."""
        with HistoryStore.open(tmp_path / "h.sqlite") as store:
            for n in range(3):
                store.record_run(
                    RunRecord(started=10.0 * n, finished=10.0 * n + 5.0),
                    [
                        ResultRecord("a::x", "passed", 0.0, 1.0, 0.0, start_s=1.0),
                        ResultRecord("a::y", "passed", 0.0, 1.0, 0.0, start_s=2.5),
                    ],
                )
            found = store.overheads(workers=0)
        assert found is not None
        assert (found.before_s, found.per_test_s, found.after_s) == (1.0, 0.25, 1.5)
        assert found.wall(2.0, 2) == pytest.approx(5.0)


class TestXdistWall:
    def test_under_n_2_the_header_predicts_the_wall_too(self, suite: pytest.Pytester) -> None:
        """At -n 2 the prediction also says when the run should end (tests shared by 2)."""
        for _ in range(2):
            suite.runpytest_subprocess("-p", "shadowfarm", "-n", "2").assert_outcomes(passed=4)
        result = suite.runpytest_subprocess("-p", "shadowfarm", "-n", "2")
        result.stdout.fnmatch_lines(["shadowfarm: 4 tests, 4 with history; predicted total *"])
        predicted = seconds_after(result, "run ends after about")
        actual = seconds_after(result, "; wall")
        assert abs(predicted - actual) <= 0.5 * actual, (predicted, actual)


class TestGitHubSummaryStoppedEarly:
    def test_a_run_stopped_early_is_compared_over_what_ran(self) -> None:
        """The job summary of a -x run compares the tests that ran, and says it stopped."""
        from pytest_shadowfarm.report.github import build_summary

        report = {
            "version": 1,
            "wall_s": 1.0,
            "predicted_total_s": 40.0,
            "predicted_ran_s": 0.5,
            "selected_tests": 100,
            "actual_total_s": 0.55,
            "counts": {"failed": 1},
            "tests": [{"nodeid": "t.py::x", "outcome": "failed", "duration_s": 0.55}],
            "workers": [],
            "events": [],
        }
        text = build_summary(report, [])
        assert "Stopped early after 1 of 100 tests: predicted 0.50s for those" in text
        assert "-98" not in text
