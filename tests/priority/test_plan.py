"""The planner: ETC once per test, then priority and urgency once, for both orderings."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytest_shadowfarm.estimate import Estimator
from pytest_shadowfarm.history.records import PastResult, RecentHistory
from pytest_shadowfarm.priority.plan import ChangeSettings, Plan, Planner
from pytest_shadowfarm.priority.weights import DEFAULT_WEIGHTS

A, B, C = "tests/test_a.py::test_1", "tests/test_a.py::test_2", "tests/test_b.py::test_3"


def empty_recent(failures: dict[str, list[PastResult]] | None = None) -> RecentHistory:
    failures = failures or {}
    runs = {nodeid: [1] for nodeid in failures}
    return RecentHistory(durations={}, call_durations={}, runs=runs, failures=failures)


def planner(tmp_path: Path, *, changes: bool = False) -> Planner:
    return Planner(
        Plan(),
        weights=DEFAULT_WEIGHTS,
        half_life=5.0,
        changes=ChangeSettings(rootdir=tmp_path, enabled=changes),
    )


class TestEstimate:
    def test_known_tests_are_predicted_and_unknown_ones_borrow(self, tmp_path):
        """ETC from the history where there is one; the total is predicted only then."""
        p = planner(tmp_path)
        p.estimate([A, B], Estimator({A: [2.0, 2.0, 2.0]}))
        assert p.plan.etc[A] == 2.0
        assert A in p.plan.known_etc
        assert B not in p.plan.known_etc
        assert p.plan.predicted_total_s == sum(p.plan.etc.values())

    def test_no_history_predicts_no_total(self, tmp_path):
        """Without a single known test, there is no predicted total to show."""
        p = planner(tmp_path)
        p.estimate([A, B], Estimator({}))
        assert p.plan.predicted_total_s is None

    def test_a_second_call_adds_tests_and_keeps_the_first_estimates(self, tmp_path):
        """Estimating more tests later (a worker's collection) keeps earlier ETCs."""
        p = planner(tmp_path)
        p.estimate([A], Estimator({A: [1.0]}))
        p.estimate([A, C], Estimator({A: [9.0], C: [3.0]}))
        assert p.plan.etc == {A: 1.0, C: 3.0}


class TestRank:
    def test_a_test_that_failed_last_time_ranks_first(self, tmp_path):
        """The failure signal raises urgency; the ranks are kept in the plan."""
        p = planner(tmp_path)
        recent = empty_recent({B: [PastResult(1, "failed", 1.0, None)]})
        ranked = p.rank([A, B, C], Estimator({A: [1.0], B: [1.0], C: [1.0]}), recent)
        assert max(ranked, key=lambda n: ranked[n].urgency) == B
        assert p.plan.ranked is ranked
        assert ranked[B].likely_failure

    def test_markers_given_once_are_kept_for_later_ranks(self, tmp_path):
        """Markers sent by the first worker stay in the plan for the scheduler's rank."""
        p = planner(tmp_path)
        p.rank([A, B], Estimator({}), empty_recent(), {A: 1.0})
        again = p.rank([A, B], Estimator({}), empty_recent())
        assert again[A].priority > again[B].priority

    def test_the_report_gets_every_ranking_field(self, tmp_path):
        """The run report's per-test extras carry priority, components, urgency, reasons."""
        p = planner(tmp_path)
        p.rank([A], Estimator({A: [1.0]}), empty_recent())
        fields = p.plan.report_extras()[A]
        assert set(fields) == {
            "priority",
            "priority_components",
            "urgency",
            "priority_reasons",
            "likely_failure",
            "flaky",
        }


class TestChangeImpact:
    def test_outside_a_git_repository_the_signal_is_off_with_a_note_once(self, tmp_path):
        """No repository: no change signal, one note saying why, and git is asked once."""
        p = planner(tmp_path, changes=True)
        assert p.change_impact([A]) is None
        note = p.plan.change_note
        assert note is not None
        assert note.startswith("shadowfarm: change impact off:")
        assert p.change_impact([A]) is None
        assert p.plan.change_note == note

    def test_a_changed_test_file_is_seen(self, tmp_path):
        """In a repository with a changed test file, the impact names it."""

        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

        git("init", "-q")
        git("config", "user.email", "t@example.invalid")
        git("config", "user.name", "t")
        (tmp_path / "tests").mkdir()
        (tmp_path / "tests" / "test_a.py").write_text("def test_1(): pass\n")
        git("add", ".")
        git("commit", "-qm", "base")
        (tmp_path / "tests" / "test_a.py").write_text("def test_1(): assert 1\n")
        p = planner(tmp_path, changes=True)
        impact = p.change_impact([A])
        assert impact is not None
        ranked = p.rank([A, C], Estimator({}), empty_recent())
        assert ranked[A].priority > ranked[C].priority

    def test_a_zero_change_weight_never_asks_git(self, tmp_path):
        """With the change signal switched off, nothing is computed and no note is made."""
        p = planner(tmp_path, changes=False)
        assert p.change_impact([A]) is None
        assert p.plan.change_note is None
