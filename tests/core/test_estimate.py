"""Tests for pytest_shadowfarm.estimate: per-test ETCs, fallbacks and remaining time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_shadowfarm.estimate import (
    DEFAULT_ETC_S,
    MIN_ETC_S,
    MIN_REMAINING_S,
    OVERRUN_TAIL_FACTOR,
    WINDOW,
    Estimate,
    Estimator,
    function_key,
    module_key,
)

F = "tests/test_a.py::test_f"

durations = st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False)
positive_durations = st.floats(min_value=1e-3, max_value=1e4)
histories = st.lists(durations, min_size=1, max_size=3 * WINDOW)
bad_values = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9])


def estimate_of(samples: list[float]) -> Estimate:
    return Estimator({F: samples}).estimate(F)


class TestNodeidKeys:
    def test_function_key_strips_the_parametrization(self):
        """The function of a parametrized test is its id without the [...] part."""
        assert function_key("tests/test_a.py::test_f[1]") == "tests/test_a.py::test_f"

    def test_function_key_keeps_the_class(self):
        """A method's function key keeps the class between the file and the name."""
        assert (
            function_key("tests/test_a.py::TestX::test_f[x-y]") == "tests/test_a.py::TestX::test_f"
        )

    def test_function_key_of_an_unparametrized_test_is_the_id_itself(self):
        """An id without brackets is its own function key."""
        assert function_key("tests/test_a.py::TestX::test_f") == "tests/test_a.py::TestX::test_f"

    @pytest.mark.parametrize(
        "nodeid",
        [
            "tests/test_a.py::test_f[a::b]",
            "tests/test_a.py::test_f[x[1]]",
            "tests/test_a.py::test_f[]]",
            "tests/test_a.py::test_f[a::b::c[d]]",
        ],
    )
    def test_function_key_ignores_separators_inside_the_brackets(self, nodeid):
        """``::``, ``[`` and ``]`` inside the parameter id do not move the split."""
        assert function_key(nodeid) == "tests/test_a.py::test_f"

    def test_function_key_allows_brackets_in_the_path(self):
        """A ``[`` in a directory name is not taken for the parameter part."""
        nodeid = "tests/data[1]/test_a.py::test_f[2]"
        assert function_key(nodeid) == "tests/data[1]/test_a.py::test_f"

    def test_function_key_of_an_id_without_separator_is_none(self):
        """A file-level item has no function to share with siblings."""
        assert function_key("tests/test_a.txt") is None

    def test_module_key_is_the_path_before_the_first_separator(self):
        """The module is everything before the first ``::``, brackets and all."""
        assert module_key("tests/data[1]/test_a.py::TestX::test_f[a::b]") == (
            "tests/data[1]/test_a.py"
        )


class TestHistoryEstimate:
    def test_single_sample_is_the_estimate(self):
        """One sample is used as it is."""
        assert estimate_of([2.0]) == Estimate(2.0, "history", 1, 0.0)

    def test_two_samples_give_their_mean(self):
        """Two samples give their plain median, the mean of the two."""
        assert estimate_of([1.0, 3.0]).seconds == 2.0

    def test_steady_samples_give_their_value(self):
        """A test that always takes the same time is estimated at that time."""
        estimate = estimate_of([0.5] * 5)
        assert (estimate.seconds, estimate.samples, estimate.spread) == (0.5, 5, 0.0)

    def test_samples_are_capped_at_the_window(self):
        """Only the newest WINDOW samples count, and `samples` says so."""
        estimate = estimate_of([100.0] * 20 + [1.0] * WINDOW)
        assert (estimate.seconds, estimate.samples) == (1.0, WINDOW)

    def test_spread_is_mad_based(self):
        """The spread is 1.4826 times the median absolute deviation around the estimate."""
        estimate = estimate_of([0.9, 1.0, 1.1, 1.0, 1.0])
        assert estimate.seconds == 1.0
        assert estimate.spread == pytest.approx(0.0)
        assert estimate_of([1.0, 2.0, 3.0]).spread == pytest.approx(1.4826)

    def test_recorded_zero_is_floored(self):
        """A test recorded at 0.0 s is estimated at MIN_ETC_S, never as free."""
        assert estimate_of([0.0, 0.0, 0.0]).seconds == MIN_ETC_S

    def test_etc_is_the_estimate_seconds(self):
        """etc() is the shortcut for estimate().seconds."""
        estimator = Estimator({F: [1.0, 2.0, 3.0]})
        assert estimator.etc(F) == estimator.estimate(F).seconds == 2.0

    def test_total_sums_the_etcs(self):
        """total() adds up the ETCs, fallbacks included."""
        estimator = Estimator({"a.py::t1": [1.0], "a.py::t2": [2.0]})
        assert estimator.total(["a.py::t1", "a.py::t2", "a.py::t3"]) == 4.5


class TestOutlierRobustness:
    normal = (1.00, 1.02, 0.98, 1.01, 0.99)

    @pytest.mark.parametrize("position", range(6))
    def test_a_single_10x_run_moves_the_estimate_less_than_10_percent(self, position):
        """One 10x run anywhere among five normal runs barely moves the estimate."""
        samples = list(self.normal)
        baseline = estimate_of(samples).seconds
        samples.insert(position, 10.0)
        assert estimate_of(samples).seconds == pytest.approx(baseline, rel=0.1)

    def test_a_single_fast_run_is_ignored_too(self):
        """A run 10x faster than usual (a skip, a cache hit) is noise as well."""
        assert estimate_of([*self.normal, 0.1]).seconds == pytest.approx(1.0, rel=0.05)

    def test_two_slow_runs_against_a_full_window_are_still_noise(self):
        """Two slow newest runs do not yet move a full window's estimate."""
        assert estimate_of([1.0] * WINDOW + [5.0, 5.0]).seconds == 1.0


class TestSustainedChange:
    def test_three_slower_runs_move_the_estimate_to_the_new_level(self):
        """After three runs at a new, slower level the estimate is at that level."""
        assert estimate_of([1.0] * WINDOW + [2.0, 2.0, 2.0]).seconds == 2.0

    def test_three_faster_runs_move_the_estimate_to_the_new_level(self):
        """A test that became faster is followed just as quickly."""
        assert estimate_of([1.0] * WINDOW + [0.2, 0.21, 0.19]).seconds == pytest.approx(
            0.2, rel=0.06
        )

    def test_a_short_history_follows_a_change_of_half_its_runs(self):
        """With four runs, two at the new level are enough."""
        assert estimate_of([1.0, 1.0, 3.0, 3.0]).seconds == 3.0


class TestFallbacks:
    history = {
        "tests/test_a.py::test_f[1]": [1.0],
        "tests/test_a.py::test_f[2]": [3.0],
        "tests/test_a.py::TestX::test_g[a::b]": [10.0],
        "tests/test_a.py::test_h": [0.5],
        "tests/test_b.py::test_k": [7.0],
    }

    def test_known_test_comes_from_its_history(self):
        """A test with samples uses them, with source "history"."""
        assert Estimator(self.history).estimate("tests/test_a.py::test_f[1]").source == "history"

    def test_unseen_parametrization_uses_its_siblings(self):
        """A new parameter of a known function gets the median of the other parameters."""
        estimate = Estimator(self.history).estimate("tests/test_a.py::test_f[3]")
        assert (estimate.seconds, estimate.source, estimate.samples) == (2.0, "sibling", 0)

    def test_sibling_lookup_handles_classes_and_separators_in_ids(self):
        """A method's new parameter id with ``::`` and ``[`` finds its siblings."""
        estimate = Estimator(self.history).estimate("tests/test_a.py::TestX::test_g[c::d[e]]")
        assert (estimate.seconds, estimate.source) == (10.0, "sibling")

    def test_unparametrized_history_counts_as_a_sibling(self):
        """A function that was not parametrized before lends its time to its new parameters."""
        estimate = Estimator(self.history).estimate("tests/test_a.py::test_h[new]")
        assert (estimate.seconds, estimate.source) == (0.5, "sibling")

    def test_unseen_function_uses_its_module(self):
        """A new function gets the median estimate of its file's known tests."""
        estimate = Estimator(self.history).estimate("tests/test_a.py::test_new")
        assert (estimate.seconds, estimate.source) == (2.0, "module")

    def test_unseen_module_uses_the_suite(self):
        """A test in a new file gets the median of every known test."""
        estimate = Estimator(self.history).estimate("tests/test_c.py::test_new[1]")
        assert (estimate.seconds, estimate.source) == (3.0, "suite")

    def test_empty_history_uses_the_default(self):
        """With no history at all the default is used, with no spread."""
        assert Estimator({}).estimate(F) == Estimate(DEFAULT_ETC_S, "default", 0, 0.0)

    def test_default_can_be_chosen(self):
        """The default is configurable."""
        assert Estimator({}, default=2.5).etc(F) == 2.5

    @pytest.mark.parametrize("default", [0.0, -1.0, math.nan, math.inf])
    def test_unusable_default_is_refused_with_its_value(self, default):
        """A default that is not a finite positive number is refused, quoting it."""
        with pytest.raises(ValueError, match=r"default must be .* got"):
            Estimator({}, default=default)

    def test_fallback_spread_is_the_spread_of_the_pooled_estimates(self):
        """A fallback's spread measures how much the tests it pools differ."""
        estimate = Estimator(self.history).estimate("tests/test_c.py::test_new")
        assert estimate.spread == pytest.approx(1.4826 * 2.5)

    def test_answers_are_stable_across_calls(self):
        """Memoised answers are the same object as the first one."""
        estimator = Estimator(self.history)
        assert estimator.estimate("x.py::t") is estimator.estimate("x.py::t")


class TestBadValues:
    def test_negative_nan_and_infinite_durations_are_ignored(self):
        """Unusable durations are skipped; the rest still make the estimate."""
        estimate = estimate_of([math.nan, 1.0, -3.0, math.inf, 2.0, -math.inf, 3.0])
        assert (estimate.seconds, estimate.samples) == (2.0, 3)

    def test_non_numeric_durations_are_ignored(self):
        """Strings and None from a broken import are skipped, not raised on."""
        assert estimate_of(["x", None, 4.0]).seconds == 4.0  # type: ignore[list-item]

    def test_test_with_only_bad_values_is_unknown(self):
        """A test whose samples are all unusable falls back as if unseen."""
        estimator = Estimator({F: [math.nan, -1.0], "tests/test_a.py::test_g": [2.0]})
        assert (estimator.known_tests, estimator.estimate(F).source) == (1, "module")

    def test_empty_list_is_unknown(self):
        """A test with an empty list of durations does not count as known."""
        assert Estimator({F: []}).known_tests == 0


class TestRemaining:
    estimator = Estimator({F: [10.0, 10.0, 10.0], "tests/test_a.py::test_j": [8.0, 10.0, 12.0]})

    def test_below_the_estimate_it_is_the_difference(self):
        """A test 4 s into a 10 s estimate has 6 s to go."""
        assert self.estimator.remaining(F, 4.0) == 6.0

    def test_not_yet_started_is_the_whole_estimate(self):
        """At 0 s elapsed the whole estimate remains."""
        assert self.estimator.remaining(F, 0.0) == 10.0

    def test_just_before_the_estimate_it_is_floored(self):
        """Right before the estimate the remaining time never drops below MIN_REMAINING_S."""
        assert self.estimator.remaining(F, 10.0 - 1e-6) == MIN_REMAINING_S

    def test_overrun_without_spread_is_as_long_as_the_overrun(self):
        """A steady test 3 s over its estimate is expected to need 3 s more."""
        assert self.estimator.remaining(F, 13.0) == 3.0

    def test_overrun_adds_the_usual_jitter(self):
        """A jittery test past its estimate is expected to need its spread plus the overrun."""
        spread = self.estimator.estimate("tests/test_a.py::test_j").spread
        assert self.estimator.remaining("tests/test_a.py::test_j", 11.0) == pytest.approx(
            spread + 1.0
        )

    def test_far_overrun_follows_the_heavy_tail(self):
        """Far past its estimate a test is expected to run half as long again."""
        assert self.estimator.remaining(F, 100.0) == OVERRUN_TAIL_FACTOR * 100.0

    @pytest.mark.parametrize("elapsed", [-5.0, math.nan])
    def test_bad_elapsed_reads_as_just_started(self, elapsed):
        """A negative or NaN elapsed time (a clock glitch) counts as 0 s."""
        assert self.estimator.remaining(F, elapsed) == 10.0

    def test_unseen_test_uses_its_fallback(self):
        """An unseen test's remaining time comes from its fallback estimate."""
        assert Estimator({}).remaining(F, 0.0) == DEFAULT_ETC_S


class TestEstimateProperties:
    @given(histories)
    def test_estimate_is_finite_and_positive(self, samples):
        """Whatever the samples, the estimate is a finite number > 0."""
        estimate = estimate_of(samples)
        assert math.isfinite(estimate.seconds)
        assert estimate.seconds > 0
        assert math.isfinite(estimate.spread)
        assert estimate.spread >= 0

    @given(histories)
    def test_estimate_lies_within_the_samples(self, samples):
        """The estimate is between the smallest and largest sample of the window."""
        window = samples[-WINDOW:]
        estimate = estimate_of(samples).seconds
        assert max(min(window), MIN_ETC_S) <= estimate <= max(max(window), MIN_ETC_S)

    @given(st.lists(durations, min_size=3, max_size=WINDOW))
    def test_no_single_sample_decides_the_estimate(self, samples):
        """With 3+ samples the estimate lies between the second smallest and second largest."""
        ordered = sorted(samples)
        estimate = estimate_of(samples).seconds
        assert max(ordered[1], MIN_ETC_S) <= estimate <= max(ordered[-2], MIN_ETC_S)

    @given(st.lists(positive_durations, min_size=1, max_size=2 * WINDOW), st.floats(0.01, 100.0))
    def test_scaling_the_samples_scales_the_estimate(self, samples, k):
        """Multiplying every duration by k multiplies the estimate by k."""
        scaled = estimate_of([k * s for s in samples]).seconds
        assert math.isclose(scaled, k * estimate_of(samples).seconds, rel_tol=1e-9)

    @given(st.lists(durations, min_size=WINDOW, max_size=2 * WINDOW), histories)
    def test_samples_older_than_a_full_window_do_not_matter(self, samples, older):
        """Once the window is full, older runs have no influence."""
        assert estimate_of(older + samples) == estimate_of(samples)

    @given(histories, st.data())
    def test_bad_values_anywhere_change_nothing(self, samples, data):
        """Inserting NaN, infinite or negative values leaves the estimate unchanged."""
        polluted = list(samples)
        for bad in data.draw(st.lists(bad_values, max_size=5)):
            polluted.insert(data.draw(st.integers(0, len(polluted))), bad)
        assert estimate_of(polluted) == estimate_of(samples)

    @given(st.lists(durations, min_size=1, max_size=WINDOW), st.data())
    def test_a_slower_run_never_lowers_the_estimate(self, samples, data):
        """Making any one run slower can only raise the estimate or leave it."""
        index = data.draw(st.integers(0, len(samples) - 1))
        slower = list(samples)
        slower[index] += data.draw(st.floats(0.0, 1e5))
        assert estimate_of(slower).seconds >= estimate_of(samples).seconds

    @given(st.dictionaries(st.sampled_from(["a.py::t[1]", "a.py::u", "b.py::v"]), histories))
    def test_every_id_gets_a_positive_estimate_from_a_known_source(self, history):
        """Any id, known or not, gets a finite positive estimate and a valid source."""
        estimator = Estimator(history)
        for nodeid in ["a.py::t[1]", "a.py::t[2]", "a.py::w", "c.py::x", "loose"]:
            estimate = estimator.estimate(nodeid)
            assert math.isfinite(estimate.seconds)
            assert estimate.seconds > 0
            assert estimate.source in {"history", "sibling", "module", "suite", "default"}


class TestRemainingProperties:
    @given(histories, st.lists(st.floats(0.0, 1e6), min_size=2, max_size=20))
    def test_remaining_falls_until_the_estimate_then_grows(self, samples, elapsed):
        """remaining() never rises before the estimate and never falls after it."""
        estimator = Estimator({F: samples})
        estimate = estimator.etc(F)
        times = sorted(elapsed)
        before = [estimator.remaining(F, t) for t in times if t < estimate]
        after = [estimator.remaining(F, t) for t in times if t >= estimate]
        assert before == sorted(before, reverse=True)
        assert after == sorted(after)

    @given(histories, st.floats(0.0, 1e6))
    def test_remaining_is_positive(self, samples, elapsed):
        """A running test always has at least MIN_REMAINING_S to go."""
        assert Estimator({F: samples}).remaining(F, elapsed) >= MIN_REMAINING_S

    @given(histories, st.floats(0.0, 1e6))
    def test_a_running_test_is_never_expected_before_its_estimate(self, samples, elapsed):
        """elapsed + remaining is never less than the estimate itself."""
        estimator = Estimator({F: samples})
        finish = elapsed + estimator.remaining(F, elapsed)
        assert finish >= estimator.etc(F) * (1 - 1e-12)
