"""Tests for pytest_shadowfarm.shard: splitting a suite into N shards of equal ETC."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_shadowfarm.estimate import module_key
from pytest_shadowfarm.shard import TOLERANCE, ShardSpec, Unit, lpt, make_units, plan_shards

seconds = st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)


@st.composite
def suites(draw, max_tests=40):
    """(etc, groups): node ids spread over a few modules, some in xdist groups."""
    size = draw(st.integers(min_value=0, max_value=max_tests))
    etc = {}
    for i in range(size):
        module = draw(st.integers(min_value=0, max_value=4))
        etc[f"tests/test_m{module}.py::test_{i}"] = draw(seconds)
    groups = {}
    for nodeid in etc:
        group = draw(st.sampled_from([None, None, None, "db", "net"]))
        if group is not None:
            groups[nodeid] = group
    return etc, groups


counts = st.integers(min_value=1, max_value=6)


def shard_of(plan):
    return {nodeid: index for index, nodeids in enumerate(plan.shards) for nodeid in nodeids}


class TestShardSpec:
    def test_parse_reads_k_of_n(self):
        """'2/4' is shard 2 of 4."""
        assert ShardSpec.parse(" 2/4 ") == ShardSpec(2, 4)

    @pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/b", "2/", "/4", "-1/4", "1/0", ""])
    def test_parse_rejects_anything_but_1_le_k_le_n(self, text):
        """Out-of-range or malformed specs say what is allowed."""
        with pytest.raises(ValueError, match=r"1 <= K <= N"):
            ShardSpec.parse(text)

    def test_str_is_the_k_of_n_form(self):
        """A spec prints the way it is written."""
        assert str(ShardSpec(3, 8)) == "3/8"


class TestMakeUnits:
    def test_groups_become_one_unit_with_the_summed_etc(self):
        """Tests of one xdist group form one unit whose ETC is their sum."""
        units = make_units(
            {"a.py::x": 1.0, "b.py::y": 2.0, "a.py::z": 4.0},
            groups={"a.py::x": "g", "b.py::y": "g"},
        )
        assert units == [
            Unit("group:g", ("a.py::x", "b.py::y"), 3.0),
            Unit("test:a.py::z", ("a.py::z",), 4.0),
        ]

    def test_modules_are_cuttable_units_when_kept_together(self):
        """With keep_modules a module is one unit that may be cut later."""
        units = make_units({"a.py::x": 1.0, "a.py::y": 2.0, "b.py::z": 4.0}, keep_modules=True)
        assert units == [
            Unit("module:a.py", ("a.py::x", "a.py::y"), 3.0, cuttable=True),
            Unit("module:b.py", ("b.py::z",), 4.0, cuttable=False),
        ]

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
    def test_a_bad_etc_is_refused_with_its_nodeid(self, bad):
        """An ETC that is not a finite number >= 0 is a ValueError naming the test."""
        with pytest.raises(ValueError, match=r"a\.py::x"):
            make_units({"a.py::x": bad})


class TestLpt:
    def test_longest_first_onto_the_least_loaded_shard(self):
        """5, 4, 3, 3, 3 over two shards: LPT gives 5+3 / 4+3+3 (10; the best split is 9)."""
        units = [Unit(f"test:{n}", (n,), s) for n, s in zip("abcde", [5, 4, 3, 3, 3], strict=True)]
        bins = lpt(units, 2)
        assert [[u.key for u in b] for b in bins] == [
            ["test:a", "test:d"],
            ["test:b", "test:c", "test:e"],
        ]

    def test_a_count_below_one_is_refused(self):
        """Zero shards is a programming error, said as such."""
        with pytest.raises(ValueError, match="count"):
            lpt([], 0)


class TestPlanShards:
    @given(suites(), counts, st.booleans())
    def test_every_test_is_in_exactly_one_shard(self, suite, count, keep_modules):
        """The shards partition the suite: nothing lost, nothing twice."""
        etc, groups = suite
        plan = plan_shards(etc, count, groups=groups, keep_modules=keep_modules)
        everything = [n for shard in plan.shards for n in shard]
        assert sorted(everything) == sorted(etc)
        assert plan.count == count

    @given(suites(), counts, st.booleans())
    def test_an_xdist_group_is_never_split(self, suite, count, keep_modules):
        """All tests of one xdist group land in the same shard."""
        etc, groups = suite
        where = shard_of(plan_shards(etc, count, groups=groups, keep_modules=keep_modules))
        for name in set(groups.values()):
            assert len({where[n] for n, g in groups.items() if g == name}) == 1

    @given(suites(), counts)
    def test_cuts_count_the_extra_shards_modules_span(self, suite, count):
        """plan.cuts is how many more (module, shard) pairs there are than modules."""
        etc, groups = suite
        plan = plan_shards(etc, count, groups=groups, keep_modules=True)
        where = shard_of(plan)
        spans: dict[str, set[int]] = {}
        for nodeid in etc:
            if nodeid not in groups:
                spans.setdefault(module_key(nodeid), set()).add(where[nodeid])
        extra = sum(len(s) - 1 for s in spans.values())
        assert extra == plan.cuts

    @given(suites(), counts, st.booleans(), st.randoms(use_true_random=False))
    def test_the_plan_ignores_the_order_of_its_input(self, suite, count, keep_modules, rnd):
        """Every job gets the same plan, however its items happened to be ordered."""
        etc, groups = suite
        shuffled = list(etc.items())
        rnd.shuffle(shuffled)
        a = plan_shards(etc, count, groups=groups, keep_modules=keep_modules)
        b = plan_shards(dict(shuffled), count, groups=groups, keep_modules=keep_modules)
        assert a == b
        assert a.fingerprint() == b.fingerprint()

    @given(suites(), counts, st.booleans())
    def test_the_busiest_shard_is_within_one_unit_of_the_mean(self, suite, count, keep_modules):
        """LPT's bound: largest <= mean + the largest unit (whole module, group or test)."""
        etc, groups = suite
        plan = plan_shards(etc, count, groups=groups, keep_modules=keep_modules)
        units = make_units(etc, groups=groups, keep_modules=keep_modules)
        largest_unit = max((u.seconds for u in units), default=0.0)
        assert plan.largest_s <= plan.mean_s + largest_unit + 1e-9

    @given(suites(), counts)
    def test_cut_modules_bring_the_busiest_shard_within_one_test(self, suite, count):
        """Cutting modules leaves the largest shard within the tolerance or one test/group.

        That is the bound of the consecutive-runs plan; the plan kept may be up to the
        tolerance above the best one, for fewer cuts.
        """
        etc, groups = suite
        plan = plan_shards(etc, count, groups=groups, keep_modules=True)
        atoms = make_units(etc, groups=groups, keep_modules=False)
        largest_atom = max((u.seconds for u in atoms), default=0.0)
        bound = max(plan.mean_s * (1 + TOLERANCE), plan.mean_s + largest_atom)
        assert plan.largest_s <= bound * (1 + TOLERANCE) + 1e-9

    @settings(max_examples=60)
    @given(st.lists(seconds, min_size=1, max_size=7), st.integers(min_value=2, max_value=3))
    def test_lpt_is_within_four_thirds_of_the_best_split(self, durations, count):
        """Graham's bound, checked against every possible split of a small suite."""
        etc = {f"t.py::test_{i}": s for i, s in enumerate(durations)}
        plan = plan_shards(etc, count)
        best = min(
            max(
                sum(s for s, k in zip(durations, choice, strict=True) if k == shard)
                for shard in range(count)
            )
            for choice in itertools.product(range(count), repeat=len(durations))
        )
        assert plan.largest_s <= (4 / 3 - 1 / (3 * count)) * best + 1e-9

    def test_whole_modules_are_kept_when_they_balance(self):
        """Four equal modules over four shards: one module per shard, nothing cut."""
        etc = {f"tests/test_{m}.py::test_{i}": 1.0 for m in "abcd" for i in range(5)}
        plan = plan_shards(etc, 4, keep_modules=True)
        assert plan.cuts == 0
        assert (
            sorted(
                {module_key(n) for n in shard} == {module_key(shard[0])} for shard in plan.shards
            )
            == [True] * 4
        )

    def test_one_big_module_is_cut_into_consecutive_pieces(self):
        """A module that is the whole suite is cut N - 1 times into equal runs of tests."""
        etc = {f"tests/test_big.py::test_{i:02}": 1.0 for i in range(40)}
        plan = plan_shards(etc, 4, keep_modules=True)
        assert plan.cuts == 3
        assert plan.loads == (10.0, 10.0, 10.0, 10.0)
        assert plan.shards[0] == tuple(f"tests/test_big.py::test_{i:02}" for i in range(10))

    def test_five_modules_over_four_shards_stay_balanced(self):
        """Where whole modules cannot balance, the cut plan is within the tolerance."""
        rnd = random.Random(7)
        etc = {
            f"tests/test_{m}.py::test_{i}": rnd.uniform(0.01, 0.2)
            for m in range(5)
            for i in range(60)
        }
        whole_modules = plan_shards(etc, 4, keep_modules=True, tolerance=10.0)
        plan = plan_shards(etc, 4, keep_modules=True)
        assert whole_modules.imbalance > 0.3  # one shard holds two modules
        assert plan.imbalance <= TOLERANCE
        assert plan.cuts <= 3

    def test_a_giant_test_gets_a_shard_of_its_own_when_it_must(self):
        """One test of half the suite inside a module: cut per test, like pytest-split."""
        etc = {"tests/test_big.py::test_giant": 10.0}
        etc.update({f"tests/test_big.py::test_{i:02}": 0.5 for i in range(10)})
        etc.update({f"tests/test_small.py::test_{i:02}": 0.5 for i in range(10)})
        plan = plan_shards(etc, 2, keep_modules=True)
        assert sorted(plan.loads) == [10.0, 10.0]
        assert ("tests/test_big.py::test_giant",) in plan.shards

    def test_the_fewest_cuts_win_among_equally_balanced_plans(self):
        """Where consecutive runs balance as well as per-test LPT, the cuts stay few."""
        etc = {f"tests/test_{m}.py::test_{i:02}": 1.0 for m in "abc" for i in range(20)}
        plan = plan_shards(etc, 4, keep_modules=True)
        assert plan.loads == (15.0, 15.0, 15.0, 15.0)
        assert plan.cuts <= 3

    def test_more_shards_than_tests_leaves_some_empty(self):
        """Three tests over five shards: three shards of one, two empty ones."""
        plan = plan_shards({"a.py::x": 3.0, "a.py::y": 2.0, "a.py::z": 1.0}, 5)
        assert sorted(len(s) for s in plan.shards) == [0, 0, 1, 1, 1]

    def test_shard_picks_the_spec_index_one_based(self):
        """Shard 1/2 is the first of the plan's shards."""
        plan = plan_shards({"a.py::x": 3.0, "a.py::y": 2.0}, 2)
        assert plan.shard(ShardSpec(1, 2)) == ("a.py::x",)
        with pytest.raises(ValueError, match="2 shards"):
            plan.shard(ShardSpec(1, 3))

    def test_the_fingerprint_tells_different_plans_apart(self):
        """Plans with different shards have different fingerprints."""
        etc = {"a.py::x": 3.0, "a.py::y": 2.0, "a.py::z": 1.0}
        assert (
            plan_shards(etc, 2).fingerprint()
            != plan_shards({**etc, "a.py::w": 9.0}, 2).fingerprint()
        )
