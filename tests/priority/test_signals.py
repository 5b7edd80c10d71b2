"""Tests for pytest_shadowfarm.priority.signals and .score: the signals, weights and urgency."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_shadowfarm.history.store import PastResult
from pytest_shadowfarm.priority.impact import ChangeImpact, Impact
from pytest_shadowfarm.priority.score import (
    DEFAULT_WEIGHTS,
    ETC_FLOOR_S,
    Weights,
    rank,
    score,
    urgency,
)
from pytest_shadowfarm.priority.signals import (
    FLAKY_MIN_FLIPS,
    IMPORTANCE_LEVELS,
    count_flips,
    failure_signal,
    importance_label,
    is_new,
    parse_importance,
)

A = "tests/test_a.py::test_a"
B = "tests/test_b.py::test_b"


def results(outcomes: str, commits: str | None = None) -> list[PastResult]:
    """Past results, oldest first, from e.g. "ppf" (p passed, f failed, e error, s skipped)."""
    names = {"p": "passed", "f": "failed", "e": "error", "s": "skipped", "x": "xfailed"}
    return [
        PastResult(i + 1, names[o], 0.1, None if commits is None else commits[i])
        for i, o in enumerate(outcomes)
    ]


class TestParseImportance:
    @pytest.mark.parametrize(("raw", "expected"), sorted(IMPORTANCE_LEVELS.items()))
    def test_named_levels_map_to_their_numbers(self, raw, expected):
        """critical, high, normal and low each map to their documented number."""
        assert parse_importance(raw) == expected

    def test_level_names_ignore_case_and_blanks(self):
        """ " Critical " is the critical level."""
        assert parse_importance(" Critical ") == IMPORTANCE_LEVELS["critical"]

    @pytest.mark.parametrize("raw", [0.25, -1, 1, "0.75", 0])
    def test_numbers_in_range_are_taken_as_they_are(self, raw):
        """A number (or numeric string) from -1 to 1 is the importance itself."""
        assert parse_importance(raw) == float(raw)

    @pytest.mark.parametrize("raw", ["urgent", 1.5, -2, "nan", math.inf, True, None, [1]])
    def test_anything_else_names_the_allowed_values(self, raw):
        """Unknown names, out-of-range numbers, booleans and None are rejected with the choices."""
        with pytest.raises(ValueError, match="critical, high, normal, low or a number"):
            parse_importance(raw)

    def test_labels_name_levels_and_print_other_numbers(self):
        """importance_label gives the level name when there is one, else the number."""
        assert importance_label(1.0) == "critical"
        assert importance_label(0.3) == "0.3"


class TestFailureSignal:
    def test_no_history_means_no_signal(self):
        """A test without counted results has rate 0 and is not flaky."""
        signal = failure_signal([])
        assert (signal.rate, signal.value, signal.flaky, signal.samples) == (0.0, 0.0, False, 0)

    def test_a_failure_in_the_last_run_gives_the_full_signal(self):
        """However many passes came before, a last-run failure is worth 1.0."""
        signal = failure_signal(results("p" * 30 + "f"))
        assert signal.last_failed
        assert signal.value == 1.0
        assert signal.likely_failure

    def test_recent_failures_weigh_more_than_old_ones(self):
        """The same number of failures counts more when it is recent."""
        old = failure_signal(results("ff" + "p" * 8), half_life=3)
        recent = failure_signal(results("p" * 7 + "ffp"), half_life=3)
        assert recent.rate > old.rate > 0

    def test_half_life_halves_the_weight(self):
        """With one pass and one older failure half_life runs apart, the rate is 1/3."""
        signal = failure_signal(results("fp"), half_life=1.0)
        assert signal.rate == pytest.approx(0.5 / 1.5)

    def test_skips_and_xfails_say_nothing(self):
        """Skipped and xfailed results are not counted; errors count as failures."""
        signal = failure_signal(results("psxs"))
        assert (signal.samples, signal.rate) == (1, 0.0)
        assert failure_signal(results("pe")).last_failed

    def test_only_skips_is_no_signal(self):
        """A test that was only ever skipped has no failure signal at all."""
        assert failure_signal(results("ss")).samples == 0

    def test_half_life_must_be_positive(self):
        """A zero half-life is a programming error, reported as ValueError."""
        with pytest.raises(ValueError, match="half_life"):
            failure_signal(results("p"), half_life=0)

    @given(st.text(alphabet="pfesx", max_size=40), st.floats(0.1, 100))
    def test_rate_and_value_stay_between_zero_and_one(self, outcomes, half_life):
        """Whatever the history, the rate and the signal are within 0..1."""
        signal = failure_signal(results(outcomes), half_life=half_life)
        assert 0.0 <= signal.rate <= 1.0
        assert 0.0 <= signal.value <= 1.0


class TestFlaky:
    def test_flips_at_one_commit_are_counted(self):
        """pass, fail, pass at one commit is two flips."""
        assert count_flips(results("pfp", "aaa")) == 2

    def test_flips_across_commits_are_code_changes(self):
        """A fail after a pass at another commit is not a flip."""
        assert count_flips(results("pfp", "abc")) == 0

    def test_results_without_commit_never_flip(self):
        """Outside git nothing is known about code changes, so nothing is flaky."""
        assert count_flips(results("pfpfpf")) == 0

    def test_runs_of_one_commit_are_compared_even_when_interleaved(self):
        """Results at commit a are compared with each other across a run at commit b."""
        assert count_flips(results("pff", "aba")) == 1

    def test_a_test_just_broken_in_the_working_tree_is_not_flaky(self):
        """One flip at a commit (a local edit broke it) keeps the last-failure boost."""
        assert FLAKY_MIN_FLIPS > 1
        signal = failure_signal(results("ppf", "aaa"))
        assert not signal.flaky
        assert signal.value == 1.0

    def test_a_flaky_test_keeps_its_rate_but_not_the_last_failure_boost(self):
        """A flaky test failing last is ranked by its rate and not as a likely failure."""
        signal = failure_signal(results("pfpf", "aaaa"))
        assert signal.flaky
        assert signal.last_failed
        assert signal.value == signal.rate < 1.0
        assert not signal.likely_failure


class TestIsNew:
    def test_a_test_missing_from_a_known_history_is_new(self):
        """A history that knows other tests makes an unknown test new."""
        assert is_new(B, {A: results("p")})
        assert not is_new(A, {A: results("p")})

    def test_an_empty_history_knows_nothing_is_new(self):
        """Before the first recorded run no test is called new."""
        assert not is_new(A, {})


class TestScore:
    def test_a_test_without_signals_gets_the_base_prior(self):
        """With no signal the score is the base weight alone."""
        prio = score()
        assert prio.score == DEFAULT_WEIGHTS.base
        assert prio.reasons == ()

    def test_components_are_the_weighted_signals(self):
        """Each component is its weight times its signal and the score is their sum."""
        weights = Weights(base=0.1, marker=2.0, failure=3.0, change=4.0, new=5.0)
        prio = score(
            importance=0.5,
            failure=failure_signal(results("pf")),
            change=Impact(1, "src/m.py"),
            new=False,
            weights=weights,
        )
        assert prio.components == {
            "base": 0.1,
            "marker": 1.0,
            "failure": 3.0,
            "change": pytest.approx(4.0 * 0.6),
        }
        assert prio.score == pytest.approx(0.1 + 1.0 + 3.0 + 2.4)
        assert prio.reasons[0] == "failed last time"

    def test_reasons_are_sorted_strongest_first(self):
        """The reason with the largest contribution comes first."""
        prio = score(importance=1.0, new=True, weights=Weights(marker=0.1, new=0.9))
        assert prio.reasons == ("new test", "marked critical")

    def test_low_importance_can_bring_the_score_to_zero_not_below(self):
        """A low-marked test with nothing else scores 0, never negative."""
        assert score(importance=-1.0).score == 0.0

    def test_a_zero_weight_switches_its_signal_off(self):
        """With weight 0 a signal adds nothing."""
        prio = score(new=True, weights=Weights(new=0.0))
        assert prio.score == DEFAULT_WEIGHTS.base

    @pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
    def test_weights_must_be_finite_and_not_negative(self, bad):
        """A negative or non-finite weight is rejected with its name."""
        with pytest.raises(ValueError, match="'change'"):
            Weights(change=bad)


class TestUrgency:
    def test_urgency_is_priority_over_etc(self):
        """Twice the ETC halves the urgency."""
        assert urgency(1.0, 2.0) == 0.5
        assert urgency(1.0, 4.0) == 0.25

    def test_short_tests_count_as_the_floor(self):
        """Below the floor (and for NaN or negative ETCs) the floor is used."""
        for etc in (0.0, 1e-6, -1.0, math.nan):
            assert urgency(1.0, etc) == 1.0 / ETC_FLOOR_S


class TestRank:
    def test_rank_combines_every_input(self):
        """rank fills priority, components, ETC, urgency and the flags for each nodeid."""
        history = {A: results("ppf", "abc"), "tests/test_c.py::test_c": results("p")}
        changed = ChangeImpact(base="main", changed=1, by_file={"tests/test_b.py": Impact(0, "x")})
        ranked = rank(
            [A, B],
            etc={A: 2.0, B: 0.5},
            marker_priority={B: 1.0},
            history=history,
            changed=changed,
        )
        a, b = ranked[A], ranked[B]
        assert a.likely_failure
        assert not a.flaky
        assert a.components["failure"] == 1.0
        assert a.urgency == pytest.approx(a.priority / 2.0)
        assert set(b.components) == {"base", "marker", "change", "new"}
        assert b.reasons == ("test file changed", "new test", "marked critical")
        assert b.etc == 0.5

    def test_rank_keeps_the_input_order_and_drops_duplicates(self):
        """The result is keyed in input order, once per nodeid."""
        ranked = rank([B, A, B], etc={}, marker_priority={}, history={}, changed=None)
        assert list(ranked) == [B, A]

    def test_rank_is_deterministic(self):
        """The same inputs give equal records."""
        args = {
            "etc": {A: 1.0},
            "marker_priority": {},
            "history": {A: results("pf", "aa")},
            "changed": None,
        }
        assert rank([A, B], **args) == rank([A, B], **args)

    def test_half_life_is_passed_to_the_failure_signal(self):
        """A shorter half-life forgets an old failure faster."""
        history = {A: results("fppp")}
        slow = rank([A], etc={}, marker_priority={}, history=history, changed=None, half_life=50)
        fast = rank([A], etc={}, marker_priority={}, history=history, changed=None, half_life=0.5)
        assert slow[A].priority > fast[A].priority
