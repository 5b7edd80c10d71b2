"""The shadow subset: the cheap tests a farm worker runs while warming."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_shadowfarm.farm.shadow import choose_shadow_tests

LAST = {
    "tests/test_a.py::test_slow": ("passed", 2.0),
    "tests/test_a.py::test_fast": ("passed", 0.1),
    "tests/test_b.py::test_broken": ("failed", 0.01),
    "tests/test_b.py::test_ok": ("passed", 0.5),
    "tests/test_c.py::test_big": ("passed", 4.0),
    "tests/test_d.py::test_unknown": ("passed", None),
}


class TestChooseShadowTests:
    def test_the_cheapest_passing_test_of_each_module_within_the_budget(self):
        """One test per module, cheapest first; a failed or untimed test is never chosen."""
        assert choose_shadow_tests(LAST, budget_s=1.0) == [
            "tests/test_a.py::test_fast",
            "tests/test_b.py::test_ok",
        ]

    def test_a_larger_budget_takes_more_modules(self):
        """With 5 s, test_c's only test fits too."""
        assert choose_shadow_tests(LAST, budget_s=5.0)[-1] == "tests/test_c.py::test_big"

    def test_no_budget_or_no_history_means_collection_only(self):
        """A zero budget or an empty history chooses nothing (the worker still collects)."""
        assert choose_shadow_tests(LAST, budget_s=0) == []
        assert choose_shadow_tests({}, budget_s=5) == []

    @given(
        st.dictionaries(
            st.text(min_size=1, max_size=8).map(lambda s: f"t/{s}.py::test"),
            st.tuples(st.sampled_from(["passed", "failed"]), st.floats(0, 10)),
            max_size=30,
        ),
        st.floats(0, 20),
    )
    def test_the_choice_stays_within_budget_one_per_module(self, last, budget):
        """Whatever the history: total within budget, at most one test per module."""
        chosen = choose_shadow_tests(last, budget)
        assert sum(last[n][1] for n in chosen) <= budget + 1e-9
        modules = [n.split("::", 1)[0] for n in chosen]
        assert len(modules) == len(set(modules))
        assert all(last[n][0] == "passed" for n in chosen)
