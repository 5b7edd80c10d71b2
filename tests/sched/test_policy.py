"""Tests for pytest_shadowfarm.sched.policy and .inputs: which unit a worker gets next."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_shadowfarm.priority import Ranked
from pytest_shadowfarm.sched.inputs import CRITICAL, from_ranked
from pytest_shadowfarm.sched.policy import (
    OVERRUN_TAIL_FACTOR,
    DispatchQueue,
    TestInputs,
    Unit,
    build_units,
    remaining_s,
)


def unit(index: int, etc: float = 0.01, *, file: str = "t.py", **kw: object) -> Unit:
    return Unit(indices=(index,), etc_s=etc, locality=file, **kw)  # type: ignore[arg-type]


def drain(queue: DispatchQueue[str], worker: str = "w", ready: float = 0.0) -> list[int]:
    out = []
    while (u := queue.next_unit(worker, {worker: ready})) is not None:
        out.extend(u.indices)
    return out


Picker = Callable[[Hashable, Mapping[Hashable, float]], Unit | None]


def simulate(units: list[Unit], pick: Picker, workers: int = 2) -> float:
    """Makespan with exact ETCs when each worker holds two items (xdist's lookahead)."""
    held: dict[int, list[Unit]] = {w: [] for w in range(workers)}
    busy_until: dict[int, float] = {}
    events: list[tuple[float, int]] = []
    now = 0.0

    def fill(w: int) -> None:
        while len(held[w]) < 2:
            ready = {
                v: sum(u.etc_s for u in held[v])
                - (now - busy_until[v] + held[v][0].etc_s if v in busy_until else 0.0)
                for v in held
            }
            got = pick(w, ready)
            if got is None:
                break
            held[w].append(got)
        if held[w] and w not in busy_until:
            busy_until[w] = now + held[w][0].etc_s
            heapq.heappush(events, (busy_until[w], w))

    for w in held:
        fill(w)
    while events:
        now, w = heapq.heappop(events)
        held[w].pop(0)
        del busy_until[w]
        fill(w)
    return now


class TestRemaining:
    def test_a_unit_within_its_etc_has_the_difference_left(self):
        """Before its ETC, what is left is the ETC minus the time it has run."""
        assert remaining_s(2.0, 0.5) == 1.5

    def test_an_overrunning_unit_is_expected_to_run_on_for_a_share_of_its_age(self):
        """Past its ETC a unit runs on for OVERRUN_TAIL_FACTOR of its age (heavy tail)."""
        assert remaining_s(1.0, 4.0) == pytest.approx(4.0 * OVERRUN_TAIL_FACTOR)


class TestBuildUnits:
    def test_without_scope_every_test_is_a_unit_in_collection_order(self):
        """No scope: one unit per test, indices in collection order."""
        ids = ["a.py::x", "a.py::y", "b.py::z"]
        units = build_units(ids, {n: TestInputs(etc_s=1.0) for n in ids})
        assert [u.indices for u in units] == [(0,), (1,), (2,)]

    def test_a_scope_groups_tests_and_sums_their_etc(self):
        """Tests with one scope form one unit whose ETC is the sum of theirs."""
        ids = ["a.py::x", "b.py::y", "a.py::z"]
        inputs = {
            "a.py::x": TestInputs(1.0),
            "b.py::y": TestInputs(2.0),
            "a.py::z": TestInputs(3.0),
        }
        units = build_units(ids, inputs, lambda n: n.split("::")[0])
        assert [(u.indices, u.etc_s) for u in units] == [((0, 2), 4.0), ((1,), 2.0)]

    def test_a_unit_is_front_and_as_urgent_as_its_most_urgent_test(self):
        """One likely failure puts the whole group in the front, with its urgency."""
        ids = ["a.py::x", "a.py::y"]
        inputs = {
            "a.py::x": TestInputs(1.0, urgency=1.0, priority=1.0),
            "a.py::y": TestInputs(1.0, urgency=5.0, priority=0.5, front=True),
        }
        (group,) = build_units(ids, inputs, lambda n: "g")
        assert (group.front, group.urgency, group.priority) == (True, 5.0, 1.0)

    def test_the_locality_is_the_file_of_the_first_test(self):
        """A unit's locality is the test file of its first test."""
        (only,) = build_units(["d/a.py::C::t[x::y]"], {})
        assert only.locality == "d/a.py"


class TestFront:
    def test_front_units_come_first_most_urgent_first(self):
        """Flagged units go before the body, in falling urgency."""
        units = [
            unit(0, 1.0),
            unit(1, 0.1, front=True, urgency=1.0),
            unit(2, 0.1, front=True, urgency=9.0),
            unit(3, 1.0),
        ]
        assert drain(DispatchQueue(units))[:2] == [2, 1]

    def test_front_beyond_its_share_of_the_etc_is_dispatched_with_the_body(self):
        """Front units beyond front_share of the total ETC follow the body's file order."""
        units = [unit(i, 1.0, file="a.py") for i in range(4)]
        units += [unit(4 + i, 1.0, file="z.py", front=True, urgency=float(9 - i)) for i in range(4)]
        queue: DispatchQueue[str] = DispatchQueue(units, front_share=0.25)
        assert drain(queue) == [4, 5, 0, 1, 2, 3, 6, 7]

    def test_a_requeued_unit_goes_before_the_front(self):
        """A rerun is dispatched before everything else."""
        queue: DispatchQueue[str] = DispatchQueue([unit(0, front=True, urgency=9.0), unit(1)])
        queue.requeue_first(unit(7))
        assert drain(queue)[0] == 7


class TestBody:
    def test_a_worker_stays_in_its_file_in_collection_order(self):
        """Short units: the worker works through one file in pytest's order."""
        units = [unit(i, 0.01, file="a.py") for i in range(5)]
        units += [unit(5 + i, 0.01, file="b.py") for i in range(5)]
        queue: DispatchQueue[str] = DispatchQueue(units, rho=1.0)
        got = [queue.next_unit("w", {"w": 0.0, "v": 0.0}) for _ in range(3)]
        assert [u.indices[0] for u in got if u] == [0, 1, 2]

    def test_a_second_worker_starts_another_file(self):
        """Two workers in the body take different files."""
        units = [unit(i, 0.01, file="a.py") for i in range(5)]
        units += [unit(5 + i, 0.01, file="b.py") for i in range(5)]
        queue: DispatchQueue[str] = DispatchQueue(units, rho=1.0)
        ready = {"w": 0.0, "v": 0.0}
        first, second = queue.next_unit("w", ready), queue.next_unit("v", ready)
        assert first is not None
        assert second is not None
        assert (first.locality, second.locality) == ("a.py", "b.py")

    def test_more_important_files_are_started_first(self):
        """Among files, the one holding the highest priority starts first."""
        units = [unit(i, 0.01, file="a.py", priority=0.1) for i in range(5)]
        units += [unit(5 + i, 0.01, file="b.py", priority=0.9) for i in range(5)]
        queue: DispatchQueue[str] = DispatchQueue(units, rho=1.0)
        got = queue.next_unit("w", {"w": 0.0})
        assert got is not None
        assert got.locality == "b.py"

    def test_long_units_last_in_file_order_are_dispatched_first(self):
        """A few long units in the last file start before the short ones."""
        units = [unit(i, 0.05) for i in range(100)]
        units += [unit(100 + i, 3.0, file="z.py") for i in range(4)]
        queue: DispatchQueue[str] = DispatchQueue(units)
        got = [queue.next_unit(w, {"a": 0.0, "b": 0.0}) for w in "abab"]
        assert sorted(u.indices[0] for u in got if u) == [100, 101, 102, 103]

    @pytest.mark.parametrize("file_first", [True, False])
    def test_in_the_tail_a_worker_goes_on_in_its_file_with_small_units(self, file_first):
        """The plan puts a.py's long unit on w; w's next unit is one of a.py's small ones
        (its module fixtures are set up), not one of the twenty b.py units the plan's
        window gives it; with the rule off, w goes to b.py (c.py's long unit keeps the
        run in the tail)."""
        files = ["a.py"] * 5 + ["b.py"] * 20 + ["c.py"]
        etcs = [6.0] + [0.1] * 4 + [0.5] * 20 + [5.0]
        units = [unit(i, e, file=f) for i, (e, f) in enumerate(zip(etcs, files, strict=True))]
        queue: DispatchQueue[str] = DispatchQueue(units, file_first=file_first)
        first = queue.next_unit("w", {"w": 0.0, "v": 4.0})
        assert first is not None
        assert first.indices == (0,)
        nxt = queue.next_unit("w", {"w": 6.0, "v": 4.0})
        assert nxt is not None
        assert nxt.locality == ("a.py" if file_first else "b.py")

    def test_a_big_unit_in_the_workers_file_is_left_to_the_plan(self):
        """Going on in a file stops at a unit big against the work left per worker: a.py's
        1.2 s unit is over a quarter of the 4.35 s left per worker, so the plan decides,
        and it gives w b.py's longer unit first."""
        etcs, files = [3.0, 1.2, 1.5], ["a.py", "a.py", "b.py"]
        units = [unit(i, e, file=f) for i, (e, f) in enumerate(zip(etcs, files, strict=True))]
        queue: DispatchQueue[str] = DispatchQueue(units)
        assert queue.next_unit("w", {"w": 0.0, "v": 0.0}).indices == (0,)  # type: ignore[union-attr]
        got = queue.next_unit("w", {"w": 3.0, "v": 3.0})
        assert got is not None
        assert got.indices == (2,)

    def test_the_plan_leaves_the_long_unit_to_the_worker_free_first(self):
        """The asking worker busy for long gets a short unit; the long one waits."""
        units = [unit(0, 5.0), unit(1, 0.1), unit(2, 0.1)]
        queue: DispatchQueue[str] = DispatchQueue(units)
        got = queue.next_unit("busy", {"busy": 4.0, "free": 0.2})
        assert got is not None
        assert got.etc_s == 0.1
        nxt = queue.next_unit("free", {"busy": 4.1, "free": 0.2})
        assert nxt is not None
        assert nxt.etc_s == 5.0

    @pytest.mark.parametrize(("tail_locality", "expected"), [(True, 4), (False, 2)])
    def test_of_its_planned_units_a_worker_takes_one_from_its_file_first(
        self, tail_locality, expected
    ):
        """In the tail the plan gives w units 2 (b.py) and 4 (a.py); w is in a.py, so it
        takes 4 first and a.py's module fixtures are not set up again."""
        files = ["a.py", "b.py", "b.py", "b.py", "a.py", "b.py"]
        etcs = [1.0, 1.0, 0.9, 0.9, 0.8, 0.8]
        units = [unit(i, e, file=f) for i, (f, e) in enumerate(zip(files, etcs, strict=True))]
        queue: DispatchQueue[str] = DispatchQueue(units, tail_locality=tail_locality)
        first = queue.next_unit("w", {"w": 0.0, "v": 0.0})
        assert first is not None
        assert first.indices == (0,)  # w is in a.py now
        second = queue.next_unit("v", {"w": 1.0, "v": 0.0})
        assert second is not None
        assert second.indices == (1,)
        third = queue.next_unit("w", {"w": 1.0, "v": 1.0})
        assert third is not None
        assert third.indices == (expected,)

    def test_the_skewed_suite_ends_at_the_lower_bound_where_file_order_does_not(self):
        """With exact ETCs the policy reaches max(longest, total / 2); file order does not."""
        units = [unit(i, 0.05, file=f"m{i // 20}.py") for i in range(200)]
        units += [unit(200 + i, 3.0, file="last.py") for i in range(3)]
        lower = max(3.0, sum(u.etc_s for u in units) / 2)
        queue: DispatchQueue[Hashable] = DispatchQueue(units)
        ours = simulate(units, queue.next_unit)
        fifo = list(reversed(units))
        in_file_order = simulate(units, lambda w, r: fifo.pop() if fifo else None)
        assert ours <= lower + 0.05 + 1e-9
        assert in_file_order > lower + 1.0


class TestGiveBack:
    def test_a_body_unit_given_back_is_dispatched_again(self):
        """An unstarted unit returned by a crashed worker is queued again."""
        units = [unit(i, 0.01) for i in range(3)]
        queue: DispatchQueue[str] = DispatchQueue(units)
        taken = queue.next_unit("w", {"w": 0.0})
        assert taken is not None
        queue.give_back(taken)
        assert sorted(drain(queue)) == [0, 1, 2]

    def test_a_front_unit_given_back_returns_to_the_front(self):
        """A flagged unit given back is again dispatched before the body."""
        units = [unit(0, 1.0), unit(1, 0.1, front=True, urgency=5.0)]
        queue: DispatchQueue[str] = DispatchQueue(units)
        taken = queue.next_unit("w", {"w": 0.0})
        assert taken is not None
        assert taken.indices == (1,)
        queue.give_back(taken)
        assert drain(queue) == [1, 0]

    def test_an_unknown_unit_given_back_is_requeued_first(self):
        """A unit the queue never held (a group's remainder) goes first."""
        queue: DispatchQueue[str] = DispatchQueue([unit(0)])
        queue.give_back(unit(9))
        assert drain(queue) == [9, 0]


@st.composite
def queues_and_moves(draw: st.DrawFn) -> tuple[list[Unit], list[tuple[str, str, float, bool]]]:
    n = draw(st.integers(0, 40))
    etcs = draw(st.lists(st.floats(1e-4, 10.0), min_size=n, max_size=n))
    files = draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n))
    fronts = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    units = [
        Unit((i,), e, urgency=1 / e, priority=1.0, front=fr, locality=f)
        for i, (e, f, fr) in enumerate(zip(etcs, files, fronts, strict=True))
    ]
    moves = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["w0", "w1", "w2"]),
                st.sampled_from(["take", "take", "take", "give_back"]),
                st.floats(0.0, 20.0),
                st.booleans(),
            ),
            max_size=120,
        )
    )
    return units, moves


class TestProperties:
    @given(queues_and_moves())
    def test_every_unit_is_dispatched_exactly_once_net_of_give_backs(self, case):
        """Whatever the workers and give-backs, each unit leaves the queue once net."""
        units, moves = case
        queue: DispatchQueue[str] = DispatchQueue(units)
        out: list[Unit] = []
        for worker, move, ready, everyone in moves:
            ready_s = {"w0": ready, "w1": ready / 2, "w2": 0.0} if everyone else {worker: ready}
            if move == "take":
                got = queue.next_unit(worker, ready_s)
                if got is not None:
                    out.append(got)
            elif out:
                queue.give_back(out.pop(0))
                queue.forget_worker(worker)
        while (got := queue.next_unit("w0", {"w0": 0.0})) is not None:
            out.append(got)
        assert sorted(i for u in out for i in u.indices) == list(range(len(units)))
        assert len(queue) == 0

    @given(st.lists(st.floats(1e-3, 5.0), min_size=1, max_size=60))
    def test_with_exact_etcs_the_run_ends_within_one_unit_of_the_lower_bound(self, etcs):
        """Two workers, exact ETCs: makespan <= max(longest, total / 2) + longest."""
        units = [unit(i, e, file=f"m{i % 3}.py") for i, e in enumerate(etcs)]
        queue: DispatchQueue[Hashable] = DispatchQueue(units)
        makespan = simulate(units, queue.next_unit)
        assert makespan <= max(max(etcs), sum(etcs) / 2) + max(etcs) + 1e-9


def ranked(nodeid: str, *, likely: bool = False, **components: float) -> Ranked:
    return Ranked(
        nodeid=nodeid,
        priority=sum(components.values(), 0.02),
        components={"base": 0.02, **components},
        reasons=(),
        etc=0.5,
        urgency=4.0,
        likely_failure=likely,
        flaky=False,
    )


class TestInputsFromRanks:
    def test_the_etc_urgency_and_priority_are_the_ranks(self):
        """ETC, urgency and priority are taken over from the priority engine."""
        (got,) = from_ranked({"a": ranked("a")}, {}).values()
        assert (got.etc_s, got.urgency, got.priority, got.front) == (0.5, 4.0, 0.02, False)

    @pytest.mark.parametrize(
        ("record", "markers"),
        [
            (ranked("a", likely=True), {}),
            (ranked("a"), {"a": CRITICAL}),
            (ranked("a", change=0.3), {}),
            (ranked("a", new=0.4), {}),
        ],
        ids=["likely-failure", "critical", "changed", "new"],
    )
    def test_likely_failures_critical_changed_and_new_tests_go_in_front(self, record, markers):
        """Each of the four signals puts a test in the front."""
        assert from_ranked({"a": record}, markers)["a"].front

    def test_a_high_but_not_critical_marker_stays_in_the_body(self):
        """'high' raises the priority (file order) but does not jump the queue."""
        assert not from_ranked({"a": ranked("a", marker=0.5)}, {"a": 0.5})["a"].front
