"""Tests for pytest_shadowfarm.priority.order: grouped, test and none orders."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_shadowfarm.priority.order import MODES, Entry, class_path, order, ordered
from pytest_shadowfarm.priority.score import ETC_FLOOR_S, urgency


def entries(*specs: tuple[str, float, float]) -> list[Entry]:
    """Entries from (nodeid, priority, etc); urgency = priority / max(etc, floor)."""
    return [Entry(nodeid, nodeid.partition("::")[0], urgency(p, t), p, t) for nodeid, p, t in specs]


def run_order(es: list[Entry], mode: str) -> list[str]:
    return [es[i].nodeid for i in order(es, mode)]


class TestClassPath:
    @pytest.mark.parametrize(
        ("nodeid", "expected"),
        [
            ("a.py::t", ()),
            ("a.py::A::t", ("A",)),
            ("a.py::A::B::t[x::y]", ("A", "B")),
            ("a.py", ()),
            ("pkg/mod.py::pkg.mod.func", ()),
        ],
    )
    def test_class_path_is_what_lies_between_file_and_test(self, nodeid, expected):
        """Classes are the :: parts between the file and the test, params ignored."""
        assert class_path(nodeid) == expected


class TestModes:
    # urgencies: a.t1 1, a.t2 5, b.t1 3, b.t2 4, c.t1 0; module totals: a 6/2, b 7/2, c 0/1
    ES = entries(
        ("a.py::t1", 1.0, 1.0),
        ("a.py::t2", 5.0, 1.0),
        ("b.py::t1", 3.0, 1.0),
        ("b.py::t2", 4.0, 1.0),
        ("c.py::t1", 0.0, 1.0),
    )

    def test_none_keeps_the_given_order(self):
        """none is the identity."""
        assert order(self.ES, "none") == [0, 1, 2, 3, 4]

    def test_test_mode_sorts_by_urgency_alone(self):
        """test puts the most urgent test first whatever its module."""
        assert run_order(self.ES, "test") == [
            "a.py::t2",
            "b.py::t2",
            "b.py::t1",
            "a.py::t1",
            "c.py::t1",
        ]

    def test_grouped_ranks_modules_by_total_priority_over_total_time(self):
        """grouped runs b.py (7 per 2 s) before a.py (6 per 2 s), each sorted inside."""
        assert run_order(self.ES, "grouped") == [
            "b.py::t2",
            "b.py::t1",
            "a.py::t2",
            "a.py::t1",
            "c.py::t1",
        ]

    def test_a_short_important_test_does_not_drag_a_long_module_ahead(self):
        """One urgent short test in a 10 s module loses to a failure in a 1 s module."""
        es = entries(
            ("cart.py::critical", 0.4, 0.05),
            ("cart.py::soak", 0.0, 10.0),
            ("tax.py::failed_last_time", 1.0, 0.7),
            ("tax.py::other", 0.0, 0.3),
        )
        assert es[0].urgency > es[2].urgency
        assert run_order(es, "grouped")[0] == "tax.py::failed_last_time"
        assert run_order(es, "test")[0] == "cart.py::critical"

    def test_short_modules_are_floored(self):
        """Module times below the floor count as the floor: equal priorities then tie."""
        es = entries(("a.py::x", 1.0, ETC_FLOOR_S * 0.8), ("b.py::y", 1.0, ETC_FLOOR_S * 0.01))
        assert order(es, "grouped") == [0, 1]

    def test_grouped_keeps_classes_together_inside_a_module(self):
        """A class is ranked as one block among the module's top-level tests."""
        es = entries(
            ("a.py::t_top", 2.0, 1.0),
            ("a.py::C::t1", 1.0, 1.0),
            ("a.py::C::t2", 3.0, 1.0),
            ("a.py::t_last", 2.5, 1.0),
        )
        assert run_order(es, "grouped") == [
            "a.py::t_last",
            "a.py::t_top",
            "a.py::C::t2",
            "a.py::C::t1",
        ]

    def test_ties_keep_the_collection_order(self):
        """Equal urgencies keep their input positions, in every mode."""
        es = entries(("b.py::x", 1.0, 1.0), ("a.py::y", 1.0, 1.0), ("b.py::z", 1.0, 1.0))
        assert order(es, "test") == [0, 1, 2]
        assert order(es, "grouped") == [0, 2, 1]

    def test_nan_values_count_as_zero_and_do_not_break_sorting(self):
        """A NaN urgency, priority or ETC counts as zero."""
        nan = float("nan")
        es = [Entry("a.py::x", "a.py", nan, nan, nan), Entry("b.py::y", "b.py", 1.0, 1.0, 1.0)]
        assert order(es, "test") == [1, 0]
        assert order(es, "grouped") == [1, 0]

    def test_unknown_mode_is_rejected_with_the_choices(self):
        """A mode outside MODES raises ValueError naming the allowed ones."""
        with pytest.raises(ValueError, match="grouped, test, none"):
            order(self.ES, "random")

    def test_plain_tuples_work_as_entries(self):
        """Entries may be plain (nodeid, module, urgency, priority, etc) tuples."""
        es = [("a.py::x", "a.py", 0.0, 0.0, 1.0), ("a.py::y", "a.py", 1.0, 1.0, 1.0)]
        assert order(es, "test") == [1, 0]  # type: ignore[arg-type]

    def test_ordered_applies_the_order_to_parallel_items(self):
        """ordered returns the items in the entries' run order."""
        es = entries(("a::x", 0.0, 1.0), ("a::y", 1.0, 1.0))
        assert ordered(["i0", "i1"], es, "test") == ["i1", "i0"]


modules = st.sampled_from(["a.py", "b.py", "c.py", "d/e.py"])
classes = st.sampled_from(["", "C::", "D::", "C::E::"])
numbers = st.one_of(st.floats(0, 100, allow_nan=False), st.sampled_from([0.0, 1.0]))
entry_lists = st.lists(
    st.tuples(modules, classes, st.integers(0, 5), numbers, numbers), max_size=40
).map(
    lambda specs: [
        Entry(f"{m}::{c}t{n}[{i}]", m, urgency(p, t), p, t)
        for i, (m, c, n, p, t) in enumerate(specs)
    ]
)


def contiguous(keys: list[object]) -> bool:
    """Each key occupies one run of consecutive positions."""
    seen: set[object] = set()
    previous = object()
    for key in keys:
        if key != previous and key in seen:
            return False
        seen.add(key)
        previous = key
    return True


class TestOrderProperties:
    @given(entry_lists, st.sampled_from(MODES))
    def test_every_order_is_a_permutation(self, es, mode):
        """No entry is lost or repeated, in any mode."""
        assert sorted(order(es, mode)) == list(range(len(es)))

    @given(entry_lists)
    def test_grouped_keeps_each_module_and_class_contiguous(self, es):
        """In grouped order every module, and every class inside it, is one block."""
        run = [es[i] for i in order(es, "grouped")]
        assert contiguous([e.module for e in run])
        for depth in (1, 2):  # classes, and classes nested in them
            scopes = [(e.module, class_path(e.nodeid)[:depth]) for e in run]
            assert contiguous([s for s in scopes if len(s[1]) == depth])

    @given(entry_lists)
    def test_grouped_starts_with_the_best_module(self, es):
        """The first module in grouped order has the highest priority per second."""
        if es:

            def rate(module: str) -> float:
                members = [e for e in es if e.module == module]
                time = max(sum(e.etc for e in members), ETC_FLOOR_S)
                return sum(e.priority for e in members) / time

            first = es[order(es, "grouped")[0]].module
            assert rate(first) == max(rate(e.module) for e in es)

    @given(entry_lists)
    def test_grouped_sorts_each_module_by_urgency(self, es):
        """Inside a module without classes, urgencies never increase."""
        run = [es[i] for i in order(es, "grouped")]
        for module in {e.module for e in es}:
            us = [e.urgency for e in run if e.module == module and not class_path(e.nodeid)]
            assert us == sorted(us, reverse=True)

    @given(entry_lists)
    def test_test_mode_is_sorted_by_urgency(self, es):
        """Urgencies never increase along the test order."""
        us = [es[i].urgency for i in order(es, "test")]
        assert all(a >= b for a, b in itertools.pairwise(us))

    @given(entry_lists, st.sampled_from(MODES))
    def test_orders_are_deterministic(self, es, mode):
        """The same entries always give the same order."""
        assert order(es, mode) == order(list(es), mode)
