"""Tests for pytest_shadowfarm.sched.scheduler with fake xdist nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from pytest_shadowfarm.recorder import RunRecorder, final_outcome
from pytest_shadowfarm.sched.policy import TestInputs
from pytest_shadowfarm.sched.scheduler import (
    LOOKAHEAD_S,
    MAX_HELD,
    SCOPES,
    STALL_GUARD_S,
    ShadowFarmScheduling,
)

IDS = [f"tests/test_{f}.py::test_{i}" for f in "abc" for i in range(4)]


class FakeNode:
    """A worker as xdist's WorkerController looks to a scheduler, running items in order."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.batches: list[int] = []  # the size of each send_runtest_some call
        self.queue: list[int] = []  # sent, not yet completed, in order
        self.shutdown_sent = False
        self.steals: list[list[int]] = []

    @property
    def shutting_down(self) -> bool:
        return self.shutdown_sent

    def send_runtest_some(self, indices: Sequence[int]) -> None:
        assert not self.shutdown_sent, f"{self.gateway.id}: items sent after shutdown"
        self.batches.append(len(indices))
        self.sent.extend(indices)
        self.queue.extend(indices)

    def shutdown(self) -> None:
        self.shutdown_sent = True

    def send_steal(self, indices: Sequence[int]) -> None:
        self.steals.append(list(indices))

    def answer_steals(self, started: int = 0) -> list[int]:
        """What xdist's worker does with each steal: give the items back if none of them
        is among the first ``started`` + 2 of its queue (running, or taken as lookahead)."""
        given: list[int] = []
        busy = set(self.queue[: 2 + started])
        for request in self.steals:
            if not busy & set(request) and all(i in self.queue for i in request):
                self.queue = [i for i in self.queue if i not in request]
                given.extend(request)
        self.steals.clear()
        return given

    @property
    def can_run(self) -> bool:
        """xdist's worker runs its first item once it holds a second one or a shutdown."""
        return bool(self.queue) and (len(self.queue) >= 2 or self.shutdown_sent)

    def __repr__(self) -> str:
        return f"FakeNode({self.gateway.id})"


#: longer than STALL_GUARD_S: a worker holds exactly two of these
DEFAULT_ETC_S = 1.0


def etc_inputs(etc: dict[str, float] | None = None) -> Callable[..., dict[str, TestInputs]]:
    def inputs(nodeids: Sequence[str]) -> dict[str, TestInputs]:
        return {
            n: TestInputs(etc_s=(etc or {}).get(n, DEFAULT_ETC_S), urgency=1.0, priority=1.0)
            for n in nodeids
        }

    return inputs


def started(
    *names: str, ids: list[str] = IDS, **kw: object
) -> tuple[ShadowFarmScheduling, list[FakeNode]]:
    """A scheduler with workers that collected ``ids`` and were scheduled, as DSession does."""
    sched = ShadowFarmScheduling(inputs=kw.pop("inputs", etc_inputs()), **kw)  # type: ignore[arg-type]
    nodes = [FakeNode(n) for n in names]
    for node in nodes:
        sched.add_node(node)
    for node in nodes:
        sched.add_node_collection(node, ids)
        sched.schedule()
    return sched, nodes


def run_one(sched: ShadowFarmScheduling, node: FakeNode) -> int:
    assert node.can_run
    index = node.queue.pop(0)
    sched.mark_test_complete(node, index)
    return index


class TestStart:
    def test_nothing_is_scheduled_before_a_collection(self):
        """Before any worker collected, the run is neither complete nor finished."""
        sched = ShadowFarmScheduling(inputs=etc_inputs())
        sched.add_node(FakeNode("gw0"))
        assert not sched.collection_is_completed
        assert not sched.tests_finished

    def test_scheduling_starts_with_the_first_collection(self):
        """One collected worker is enough to start; it holds exactly two items."""
        sched = ShadowFarmScheduling(inputs=etc_inputs())
        first, second = FakeNode("gw0"), FakeNode("gw1")
        sched.add_node(first)
        sched.add_node(second)
        sched.add_node_collection(first, IDS)
        assert sched.collection_is_completed
        sched.schedule()
        assert (len(first.sent), second.sent) == (2, [])

    def test_every_worker_holds_exactly_two_items(self):
        """Each accepted worker gets two items: the running one and its lookahead."""
        _, nodes = started("gw0", "gw1")
        assert [len(n.queue) for n in nodes] == [2, 2]

    def test_short_tests_get_a_second_item_behind_the_running_one(self):
        """Shorter than STALL_GUARD_S (and longer than the lookahead): three items each,
        so finishing one never leaves a worker waiting for the controller."""
        short = STALL_GUARD_S / 2
        _, nodes = started("gw0", "gw1", inputs=etc_inputs(dict.fromkeys(IDS, short)))
        assert [len(n.queue) for n in nodes] == [3, 3]

    def test_a_long_test_behind_the_running_one_is_enough(self):
        """The first behind is long: a round trip is nothing beside it, keep two."""
        etc = dict.fromkeys(IDS, STALL_GUARD_S / 2)
        etc[IDS[1]] = STALL_GUARD_S  # dispatched second (urgency ties keep order)
        sched, (node,) = started("gw0", inputs=etc_inputs(etc))
        assert node.queue == [0, 1]
        run_one(sched, node)
        assert node.queue == [1, 2, 3]  # short again behind the long one: a second

    def test_an_empty_collection_finishes_at_once(self):
        """No tests: workers are shut down and the run is finished."""
        sched, nodes = started("gw0", ids=[])
        assert nodes[0].shutdown_sent
        assert sched.tests_finished

    def test_the_inputs_are_asked_once_with_the_collection(self):
        """The per-test inputs are computed once, from the reference collection."""
        calls = []

        def inputs(ids: Sequence[str]) -> dict[str, TestInputs]:
            calls.append(list(ids))
            return etc_inputs()(ids)

        started("gw0", "gw1", inputs=inputs)
        assert calls == [IDS]


class TestWorkersStillStarting:
    """-n 4 with two long tests: the first worker up must not take both (bench_swarm's io
    suite ran its two 10 s waits one after the other on gw0 before this)."""

    LONG = {IDS[-1]: 10.0, IDS[-2]: 10.0}

    def first_worker_up(self, expected: int) -> FakeNode:
        sched = ShadowFarmScheduling(inputs=etc_inputs(self.LONG), expected_workers=expected)
        first = FakeNode("gw0")
        sched.add_node(first)
        sched.add_node_collection(first, IDS)
        sched.schedule()
        return first

    def test_the_tail_plan_keeps_a_long_test_for_a_worker_still_starting(self):
        first = self.first_worker_up(expected=4)
        assert len(first.sent) == 2
        assert sum(IDS[i] in self.LONG for i in first.sent) == 1

    def test_the_long_test_kept_back_stays_kept_while_the_worker_goes_on(self):
        """Two tests later (expected 4, none arrived) the first worker still holds one
        long test: the other is the plan's for a worker to come."""
        sched = ShadowFarmScheduling(inputs=etc_inputs(self.LONG), expected_workers=4)
        first = FakeNode("gw0")
        sched.add_node(first)
        sched.add_node_collection(first, IDS)
        sched.schedule()
        assert len(set(self.LONG) & self.sent_after_two_tests(sched, first)) == 1

    def test_a_worker_the_swarm_adds_is_expected_too(self):
        """The run started with one worker and the swarm is adding one: keep one for it."""
        sched = ShadowFarmScheduling(inputs=etc_inputs(self.LONG), expected_workers=1)
        sched.expect_worker()
        first = FakeNode("gw0")
        sched.add_node(first)
        sched.add_node_collection(first, IDS)
        sched.schedule()
        assert sum(IDS[i] in self.LONG for i in first.sent) == 1

    def sent_after_two_tests(self, sched: ShadowFarmScheduling, node: FakeNode) -> set[str]:
        for _ in range(2):
            run_one(sched, node)
        return {IDS[i] for i in node.sent}

    def test_a_lone_worker_takes_both(self):
        """Without workers to come (expected 1), nothing is kept back: the lone worker
        goes through the long tests' file (short tests in it go on where it is) and
        gets both long ones before any other file's test."""
        sched = ShadowFarmScheduling(inputs=etc_inputs(self.LONG), expected_workers=1)
        first = FakeNode("gw0")
        sched.add_node(first)
        sched.add_node_collection(first, IDS)
        sched.schedule()
        sent = self.sent_after_two_tests(sched, first)
        assert set(self.LONG) <= sent
        assert all(nodeid.startswith("tests/test_c.py") for nodeid in sent)

    def test_a_worker_that_never_collects_stops_counting(self):
        """gw1 goes down before collecting: the plan stops keeping work for it."""
        sched = ShadowFarmScheduling(inputs=etc_inputs(self.LONG), expected_workers=2)
        first, lost = FakeNode("gw0"), FakeNode("gw1")
        sched.add_node(first)
        sched.add_node(lost)
        sched.remove_node(lost)
        with pytest.raises(KeyError):  # a second down report: xdist ignores the KeyError
            sched.remove_node(lost)
        sched.add_node_collection(first, IDS)
        sched.schedule()
        assert set(self.LONG) <= self.sent_after_two_tests(sched, first)


class TestRejection:
    def test_a_worker_with_a_different_collection_is_shut_down_and_never_fed(self):
        """A late worker whose collection differs gets no item and a shutdown."""
        rejected = []
        sched, (good,) = started("gw0", on_reject=lambda w, diff: rejected.append((w, diff)))
        late = FakeNode("gw1")
        sched.add_node(late)
        sched.add_node_collection(late, [*IDS[:-1], "tests/test_x.py::test_other"])
        sched.schedule()
        while good.queue:
            run_one(sched, good)
        assert late.sent == []
        assert late.shutdown_sent
        assert sched.rejected == ["gw1"]
        assert rejected[0][0] == "gw1"
        assert "test_other" in rejected[0][1]
        assert sorted(good.sent) == list(range(len(IDS)))

    def test_a_reordered_collection_is_rejected_too(self):
        """Indices only mean the same tests if the order is the same."""
        sched, _ = started("gw0")
        late = FakeNode("gw1")
        sched.add_node(late)
        sched.add_node_collection(late, list(reversed(IDS)))
        assert late.sent == []
        assert late.shutdown_sent

    def test_a_rejected_worker_leaving_returns_no_crashed_item(self):
        """Removing a rejected worker gives None, as DSession asserts for clean exits."""
        sched, _ = started("gw0")
        late = FakeNode("gw1")
        sched.add_node(late)
        sched.add_node_collection(late, IDS[:3])
        assert sched.remove_node(late) is None


class TestCompletion:
    def test_a_completed_item_is_replaced_by_one_more(self):
        """Finishing an item commits the next one at once (the worker waits for it)."""
        sched, (node,) = started("gw0")
        run_one(sched, node)
        assert len(node.queue) == 2

    def test_tiny_tests_are_topped_up_to_the_lookahead(self):
        """Tests far shorter than a round trip: the worker holds LOOKAHEAD_S behind its test."""
        tiny = LOOKAHEAD_S / 4.5
        _, (node,) = started("gw0", inputs=etc_inputs(dict.fromkeys(IDS, tiny)))
        assert len(node.queue) == 1 + 5  # the running one, then five reach the lookahead

    def test_tiny_tests_are_topped_up_in_batches_not_one_send_per_test(self):
        """A top-up waits until less than half the lookahead is held, then refills it."""
        ids = [f"tests/test_t.py::test_{i}" for i in range(61)]
        tiny = LOOKAHEAD_S / 9.5  # ten reach it; not / 10, whose sum may round either way
        sched, (node,) = started("gw0", ids=ids, inputs=etc_inputs(dict.fromkeys(ids, tiny)))
        assert len(node.queue) == 1 + 10
        while len(node.sent) < len(ids):
            assert len(node.queue) - 1 >= 4  # behind the running one: never under 4 x 2 ms
            run_one(sched, node)
        first, *top_ups, last = node.batches
        assert first == 11
        assert set(top_ups) == {6}  # refilled from 4 behind back to 10
        assert last <= 6

    def test_trivial_tests_are_topped_up_by_half_the_held_cap(self):
        """Tests so short that MAX_HELD binds before the lookahead: a top-up waits until
        fewer than half of MAX_HELD are held (one send per test measured before)."""
        ids = [f"tests/test_t.py::test_{i}" for i in range(500)]
        tiny = LOOKAHEAD_S / (4 * MAX_HELD)
        sched, (node,) = started("gw0", ids=ids, inputs=etc_inputs(dict.fromkeys(ids, tiny)))
        assert len(node.queue) == MAX_HELD
        while len(node.sent) < len(ids):
            assert len(node.queue) >= MAX_HELD // 2 - 1
            run_one(sched, node)
        first, *top_ups, _last = node.batches
        assert first == MAX_HELD
        assert set(top_ups) == {MAX_HELD - (MAX_HELD // 2 - 1)}
        assert len(node.batches) <= 2 + len(ids) // (MAX_HELD // 2)

    def test_tests_finish_when_nothing_is_queued_and_workers_hold_one_item(self):
        """tests_finished turns true exactly when only last items are held."""
        sched, (node,) = started("gw0")
        while len(node.sent) < len(IDS):
            assert not sched.tests_finished
            run_one(sched, node)
        assert len(node.queue) == 2
        assert not sched.tests_finished
        run_one(sched, node)
        assert sched.tests_finished
        assert node.shutdown_sent  # so it runs its last item and leaves

    def test_completing_an_item_the_worker_does_not_hold_is_an_error(self):
        """A completion for an unknown item raises instead of corrupting the counts."""
        sched, (node,) = started("gw0")
        with pytest.raises(KeyError, match="did not hold"):
            sched.mark_test_complete(node, 99)

    def test_a_worker_being_replaced_gives_back_what_it_has_not_started(self):
        """take_back asks for every held item but the running one and its lookahead; the
        items given back run on another worker, and no item runs twice or never."""
        ids = [f"t.py::test_{i}" for i in range(40)]
        tiny = LOOKAHEAD_S / 10
        inputs = etc_inputs(dict.fromkeys(ids, tiny))
        sched, (sick, other) = started("gw0", "gw1", ids=ids, inputs=inputs)
        held = len(sick.queue)
        assert held > 2
        assert sched.take_back(sick) == held - 2
        sick.shutdown()
        given = sick.answer_steals()
        sched.remove_pending_tests_from_node(sick, given)
        assert len(sick.queue) == 2  # the running item and the lookahead stay
        ran: list[int] = []
        while sick.queue or other.queue:
            for node in (sick, other):
                if node.can_run:
                    ran.append(run_one(sched, node))
        assert sorted(ran) == list(range(len(ids)))
        assert set(given) <= set(other.sent)
        assert sched.tests_finished

    def test_a_worker_that_died_meanwhile_is_left_to_its_down_event(self):
        """take_back on a worker whose channel closed asks nothing and raises nothing."""
        ids = [f"t.py::test_{i}" for i in range(40)]
        tiny = LOOKAHEAD_S / 10
        inputs = etc_inputs(dict.fromkeys(ids, tiny))
        sched, (sick, _other) = started("gw0", "gw1", ids=ids, inputs=inputs)

        def closed(indices: Sequence[int]) -> None:
            raise OSError("cannot send (already closed?)")

        sick.send_steal = closed  # type: ignore[method-assign]
        assert sched.take_back(sick) == 0
        lost = sched.remove_node(sick)
        assert lost is not None  # the running item: xdist reports it crashed

    def test_items_the_worker_already_started_are_not_queued_twice(self):
        """A steal the worker refuses (the item started meanwhile) changes nothing."""
        ids = [f"t.py::test_{i}" for i in range(40)]
        tiny = LOOKAHEAD_S / 10
        sched, (sick,) = started("gw0", ids=ids, inputs=etc_inputs(dict.fromkeys(ids, tiny)))
        sched.take_back(sick)
        sched.remove_pending_tests_from_node(sick, [])
        while sick.queue:
            run_one(sched, sick)
        assert sorted(sick.sent) == list(range(len(ids)))

    def test_scheduling_cpu_time_is_counted(self):
        """Every protocol call adds its CPU time to cpu_s."""
        ticks = iter(range(1000))
        sched = ShadowFarmScheduling(inputs=etc_inputs(), cpu_clock=lambda: float(next(ticks)))
        sched.add_node(FakeNode("gw0"))
        assert sched.cpu_s == 1.0


class TestCrash:
    def test_remove_node_returns_the_running_item_and_requeues_the_lookahead(self):
        """The crashed item is returned; the lookahead goes to another worker."""
        sched, (crashing, other) = started("gw0", "gw1")
        running, lookahead = crashing.queue
        assert sched.remove_node(crashing) == IDS[running]
        while other.queue:
            run_one(sched, other)
        assert lookahead in other.sent
        assert running not in other.sent

    def test_a_rerun_goes_to_the_next_worker_that_asks(self):
        """mark_test_pending queues the crashed test before everything else."""
        sched, (crashing, other) = started("gw0", "gw1")
        crashed = sched.remove_node(crashing)
        assert crashed is not None
        sched.mark_test_pending(crashed)
        run_one(sched, other)
        assert other.queue[-1] == IDS.index(crashed)
        assert sched.reruns == [crashed]

    def test_the_unstarted_rest_of_a_crashed_group_is_dispatched_before_the_rest(self):
        """Under loadfile, the crashed file's remaining tests are queued first, together."""
        sched, (crashing, other) = started("gw0", "gw1", scope=SCOPES["loadfile"])
        group = list(crashing.queue)
        assert sched.remove_node(crashing) == IDS[group[0]]
        run_one(sched, other)
        while other.queue and not set(group[1:]) <= set(other.sent):
            run_one(sched, other)
        assert set(group[1:]) <= set(other.sent)

    def test_a_replacement_worker_takes_what_the_crash_left(self):
        """Items given back when the last worker crashed go to its replacement."""
        sched, (crashing,) = started("gw0")
        held = list(crashing.queue)
        sched.remove_node(crashing)
        clone = FakeNode("gw1")
        sched.add_node(clone)
        sched.add_node_collection(clone, IDS)
        sched.schedule()
        assert held[1] in clone.sent


class TestScopes:
    @pytest.mark.parametrize(
        ("mode", "nodeid", "scope"),
        [
            ("load", "a.py::T::t", None),
            ("worksteal", "a.py::t", None),
            ("loadscope", "a.py::T::t", "a.py::T"),
            ("loadfile", "a.py::T::t", "a.py"),
            ("loadgroup", "a.py::t@db", "@db"),
            ("loadgroup", "a.py::t[x@y]", None),
        ],
    )
    def test_each_dist_mode_groups_as_xdist_does(self, mode, nodeid, scope):
        """loadscope/loadfile/loadgroup split node ids exactly as xdist's schedulers."""
        assert SCOPES[mode](nodeid) == scope

    def test_a_group_is_committed_to_one_worker(self):
        """Under loadfile a worker receives all tests of a file together."""
        _sched, (node,) = started("gw0", scope=SCOPES["loadfile"])
        files = {IDS[i].split("::")[0] for i in node.queue}
        assert len(files) == 1
        assert len(node.queue) == 4


# --- random event orders -------------------------------------------------------------------

MODES = ["load", "loadfile"]


class SchedulerMachine(RuleBasedStateMachine):
    """DSession's events in any order: add, collect, complete, crash (rerun once), leave."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.nodes: list[FakeNode] = []  # added, not removed
        self.collected: set[str] = set()
        self.final: dict[int, int] = {}  # index -> final reports
        self.crashes: dict[int, int] = {}
        self.shutting_down = False

    @initialize(
        mode=st.sampled_from(MODES),
        n=st.integers(0, 14),
        etc=st.one_of(st.floats(0.0005, 0.01), st.floats(0.001, 5.0)),
    )
    def start(self, mode: str, n: int, etc: float) -> None:
        self.mode = mode
        self.ids = [f"tests/test_{i % 3}.py::test_{i}" for i in range(n)]
        self.etc = {x: etc * (1 + i % 4) for i, x in enumerate(self.ids)}
        self.etc["tests/test_extra.py::test_x"] = DEFAULT_ETC_S  # etc_inputs' default
        self.sched = ShadowFarmScheduling(inputs=etc_inputs(self.etc), scope=SCOPES[mode])

    def _new_node(self) -> FakeNode:
        node = FakeNode(f"gw{self.counter}")
        self.counter += 1
        self.nodes.append(node)
        self.sched.add_node(node)
        return node

    @precondition(lambda self: len(self.nodes) < 4 and not self.shutting_down)
    @rule()
    def add_worker(self) -> None:
        self._new_node()

    @rule(data=st.data(), different=st.booleans())
    def collect(self, data: st.DataObject, different: bool) -> None:
        waiting = [n for n in self.nodes if n.gateway.id not in self.collected]
        if not waiting:
            return
        node = data.draw(st.sampled_from(waiting))
        self.collected.add(node.gateway.id)
        ids = [*self.ids, "tests/test_extra.py::test_x"] if different else self.ids
        self.sched.add_node_collection(node, ids)
        if self.sched.collection_is_completed:
            self.sched.schedule()
        self._after_event()

    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        runnable = [n for n in self.nodes if n.can_run]
        if not runnable:
            return
        node = data.draw(st.sampled_from(runnable))
        index = node.queue.pop(0)
        self.final[index] = self.final.get(index, 0) + 1
        self.sched.mark_test_complete(node, index)
        self._after_event()

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        if not self.nodes:
            return
        node = data.draw(st.sampled_from(self.nodes))
        self.nodes.remove(node)
        crashed = self.sched.remove_node(node)
        if node.queue:
            assert crashed == self.sched.collection[node.queue[0]]  # type: ignore[index]
        else:
            assert crashed is None
        if crashed is not None:
            index = node.queue[0]
            self.crashes[index] = self.crashes.get(index, 0) + 1
            if self.crashes[index] == 1:
                self.sched.mark_test_pending(crashed)  # pytest_handlecrashitem: rerun once
            else:
                self.final[index] = self.final.get(index, 0) + 1  # reported failed
        # DSession (restarts left) cancels a triggered shutdown and starts a replacement.
        self.shutting_down = False
        self._new_node()
        self._after_event()

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        """A worker that was told to shut down and ran everything it held exits."""
        done = [n for n in self.nodes if n.shutdown_sent and not n.queue]
        if not done:
            return
        node = data.draw(st.sampled_from(done))
        self.nodes.remove(node)
        assert self.sched.remove_node(node) is None

    def _after_event(self) -> None:
        if self.sched.tests_finished and not self.shutting_down:
            self.shutting_down = True  # DSession.triggershutdown
            for node in self.nodes:
                node.shutdown()

    @invariant()
    def at_most_two_items_are_committed_per_worker_unless_short(self) -> None:
        if self.mode != "load":  # whole files: bounded by the buffer plus one file
            for node in self.nodes:
                assert len(node.queue) <= MAX_HELD + -(-len(self.ids) // 3)
            return
        assert self.sched.collection is not None or not any(n.queue for n in self.nodes)
        for node in self.nodes:
            if len(node.queue) <= 2:
                continue
            # more only for short tests: when the last item was sent, what was held behind
            # the running one was one item shorter than STALL_GUARD_S, or less than
            # LOOKAHEAD_S of tiny ones
            assert self.sched.collection is not None
            behind = sum(self.etc[self.sched.collection[i]] for i in node.queue[1:-1])
            assert len(node.queue) <= MAX_HELD
            limit = STALL_GUARD_S if len(node.queue) == 3 else LOOKAHEAD_S
            # the scheduler adds and subtracts as items come and go: summed here in another
            # order, 20 x 0.001 s may round to a hair above 0.02
            assert behind < limit + 1e-9

    @invariant()
    def no_item_gets_two_final_reports(self) -> None:
        assert all(count == 1 for count in self.final.values())

    @invariant()
    def rejected_workers_are_never_fed(self) -> None:
        for node in self.nodes:
            if node.gateway.id in self.sched.rejected:
                assert node.sent == []

    @invariant()
    def finished_means_only_last_items_are_held(self) -> None:
        if self.sched.collection is None or not self.sched.tests_finished:
            return
        held = [i for n in self.nodes for i in n.queue]
        assert all(len(n.queue) <= 1 for n in self.nodes)
        missing = set(range(len(self.sched.collection))) - set(self.final) - set(held)
        assert not missing, f"finished with {sorted(missing)} neither reported nor held"

    def teardown(self) -> None:
        """Drive the run to its end: every collected item ends with exactly one report."""
        if self.sched.collection is None:
            return
        for _ in range(1000):
            self._after_event()
            runnable = [n for n in self.nodes if n.can_run]
            if runnable:
                node = runnable[0]
                index = node.queue.pop(0)
                self.final[index] = self.final.get(index, 0) + 1
                self.sched.mark_test_complete(node, index)
                continue
            if self.sched.tests_finished:
                break
            # Work is queued but nobody takes it: DSession would be waiting for the
            # replacement of a crashed worker; bring one up.
            node = self._new_node()
            self.sched.add_node_collection(node, self.sched.collection)
            self.sched.schedule()
        assert self.sched.tests_finished
        assert sorted(self.final) == list(range(len(self.sched.collection)))
        assert all(count == 1 for count in self.final.values())


SchedulerMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestRandomEventOrders = SchedulerMachine.TestCase


class TestRecorderReadsCrashes:
    def test_a_crash_whose_rerun_never_started_counts_as_failed(self):
        """A test left at its 'rerun' crash report (run stopped) is failed, not passed."""
        assert final_outcome({"crash": "rerun"}) == "failed"

    def test_a_rerun_that_passed_is_passed(self):
        """The rerun's own phases replace the crash report."""
        recorder = RunRecorder()
        recorder.started("t", 0.0)
        recorder.phase("t", "crash", "rerun", 0.0, 1.0)
        recorder.started("t", 2.0)
        for when in ("setup", "call", "teardown"):
            recorder.phase("t", when, "passed", 0.1, 2.5)
        (trace,) = recorder.traces.values()
        assert (trace.outcome, trace.reruns) == ("passed", 1)
