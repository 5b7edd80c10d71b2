"""xdist 3.8's scheduling protocol (``xdist/scheduler/protocol.py``) over :class:`DispatchQueue`.

What the protocol leaves to the scheduler, and what this one does (the facts were
measured on xdist 3.8.0):

* A worker runs item *i* only once it holds item *i + 1* or a shutdown
  (``xdist/remote.py`` ``run_one_test``): holding one item deadlocks. So every
  accepting worker holds **at least two committed items**; when it finishes one, it
  gets one more unit at once, or a shutdown if nothing is left. A group unit is
  committed whole.
* With exactly two, a worker idles for one controller round trip per test: when it
  finishes item *i* it holds only *i + 1*, and waits for *i + 2* before starting it.
  On a loaded 2-CPU box that round trip (the controller handles the test's reports
  first) was 3-7 ms per test, most of the run for suites of ~2 ms tests (pygments)
  and 15-30% of it for 20-50 ms ones. So a worker also holds a second item behind
  its running one while the first behind is shorter than :data:`STALL_GUARD_S`
  (0.25 s: a round trip is then at most a few percent of a test); on the skewed
  benchmark suite this halved the mean gap between tests on a worker, 6.8 ms to
  3.4 ms. Tiny tests are topped up to :data:`LOOKAHEAD_S` of ETC (at most
  :data:`MAX_HELD` items), once less than half of both is held: one send per several
  tests, as each send is a write on the controller's main thread that also hands the
  GIL to execnet's receiver thread (0.66 ms per send measured on 2,000 trivial tests
  at ``-n 1``). What a worker holds unbalances the end by at most ``STALL_GUARD_S``;
  tests of 0.25 s or more are committed exactly two at a time.
* Scheduling starts with the **first** worker's collection (the others join when theirs
  arrive). That collection is the reference: a worker, early or late, whose collection
  differs is **rejected**: logged with ``report_collection_diff``, shut down and never
  fed. (xdist's ``load`` only logs it and sends indices into the wrong list: tests
  run twice or never, and the summary still says all passed.)
* ``remove_node`` of a crashed worker returns its in-flight item (the first it
  holds) and gives the rest back: the unstarted rest of the in-flight group first,
  lookahead units to where they were in the queue. The crashed item itself is
  rerun only if the ``pytest_handlecrashitem`` hook calls :meth:`mark_test_pending`.
* ``tests_finished`` is true when nothing is queued and every worker holds at most one
  item: DSession then shuts all workers down, which lets each run its last item.

Nothing here imports pytest: nodes are duck-typed (``gateway.id``, ``shutting_down``,
``send_runtest_some``, ``shutdown``), which is what the property tests fake.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pytest_shadowfarm.sched.policy import (
    DispatchQueue,
    TestInputs,
    Unit,
    build_units,
    remaining_s,
)
from pytest_shadowfarm.sched.scopes import SCOPES, collection_diff, single

__all__ = [
    "LOOKAHEAD_S",
    "MAX_HELD",
    "SCOPES",
    "STALL_GUARD_S",
    "Node",
    "ShadowFarmScheduling",
    "collection_diff",
]

#: ETC a worker holds behind its running test, so that tiny tests do not wait for the
#: controller's round trip (a few ms on a busy machine)
LOOKAHEAD_S = 0.05
#: most items a worker holds while topping up to LOOKAHEAD_S
MAX_HELD = 32
#: a worker holds a second item behind its running one while the first behind is
#: shorter than this; else it would wait a controller round trip before starting it
STALL_GUARD_S = 0.25


class Node(Protocol):
    """The part of xdist's ``WorkerController`` a scheduler uses."""

    gateway: Any

    @property
    def shutting_down(self) -> bool: ...

    def send_runtest_some(self, indices: Sequence[int]) -> None: ...

    def shutdown(self) -> None: ...


@dataclass
class _Held:
    """One unit committed to a worker: the indices it has not reported complete yet."""

    unit: Unit
    left: list[int]


@dataclass
class _NodeState:
    accepted: bool = False
    held: deque[_Held] = field(default_factory=deque)
    count: int = 0  # items held
    etc_s: float = 0.0  # ETC of the items held
    head_since: float = 0.0  # when the first held item could start


@dataclass(frozen=True)
class _Coming:
    """A worker the run started with that has not collected yet (a tail-plan slot)."""

    n: int


F = TypeVar("F", bound=Callable[..., Any])


def _timed(method: F) -> F:
    """Add the CPU time of a protocol call to ``self.cpu_s`` (what scheduling costs)."""

    @functools.wraps(method)
    def wrapper(self: ShadowFarmScheduling, *args: Any, **kwargs: Any) -> Any:
        start = self._cpu()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.cpu_s += self._cpu() - start

    return wrapper  # type: ignore[return-value]


class ShadowFarmScheduling:
    """Dispatch by urgency and ETC; never lose or repeat an item (see the module docstring)."""

    def __init__(
        self,
        *,
        inputs: Callable[[Sequence[str]], Mapping[str, TestInputs]],
        scope: Callable[[str], str | None] = single,
        log: Callable[[str], None] = lambda message: None,
        on_reject: Callable[[str, str], None] = lambda worker, diff: None,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.process_time,
        expected_workers: int = 0,
    ) -> None:
        self._inputs = inputs
        #: workers the run starts with (xdist's --tx specs): until they have collected,
        #: the tail plan counts them as free now, so that the first worker up does not
        #: take every long test for itself
        self._expected = expected_workers
        self._uncounted: set[Any] = set()
        self._scope = scope
        self._log = log
        self._on_reject = on_reject
        self._clock = clock
        self._cpu = cpu_clock
        self._state: dict[Any, _NodeState] = {}
        self.collection: list[str] | None = None
        self._reference = ""
        self._index: dict[str, int] = {}
        self._etc: list[float] = []
        self._inputs_by_id: Mapping[str, TestInputs] = {}
        self._queue: DispatchQueue[Any] | None = None
        #: gateway ids of the workers rejected for a different collection
        self.rejected: list[str] = []
        #: node ids queued again by mark_test_pending (crash reruns)
        self.reruns: list[str] = []
        #: CPU seconds spent in this object's protocol calls (inputs_cpu_s included)
        self.cpu_s = 0.0
        #: of which computing the per-test inputs (history, ranks, change impact)
        self.inputs_cpu_s = 0.0
        #: units dispatched
        self.dispatched = 0

    # --- what DSession reads ----------------------------------------------------------------

    @property
    def nodes(self) -> list[Any]:
        return list(self._state)

    @property
    def collection_is_completed(self) -> bool:
        return self.collection is not None

    @property
    def tests_finished(self) -> bool:
        if self.collection is None or self._queue is None or self._queue:
            return False
        return all(state.count < 2 for state in self._state.values())

    @property
    def waiting(self) -> bool:
        """Whether tests wait that no worker holds yet."""
        return bool(self._queue)

    @property
    def has_pending(self) -> bool:
        if self._queue:
            return True
        return any(state.count for state in self._state.values())

    # --- workers ----------------------------------------------------------------------------

    @_timed
    def add_node(self, node: Any) -> None:
        assert node not in self._state, f"worker {node.gateway.id} added twice"
        self._state[node] = _NodeState()

    @_timed
    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        state = self._state[node]
        if self.collection is None:
            self.collection = list(collection)
            self._reference = node.gateway.id
            state.accepted = True
            return
        if len(collection) == len(self.collection) and list(collection) == self.collection:
            state.accepted = True
            return
        worker = node.gateway.id
        self._uncount(node)  # it will never take work
        diff = collection_diff(self.collection, collection, self._reference, worker)
        self._log(diff)
        self.rejected.append(worker)
        self._on_reject(worker, diff)
        node.shutdown()

    @_timed
    def remove_node(self, node: Any) -> str | None:
        state = self._state.get(node)
        if state is None or not state.accepted:
            self._uncount(node)  # down before it took work (xdist ignores the KeyError)
        state = self._state.pop(node)
        if self._queue is not None:
            self._queue.forget_worker(node)
        if not state.count:
            return None
        assert self.collection is not None
        assert self._queue is not None
        first = state.held.popleft()
        crashed = first.left.pop(0)
        if first.left:  # the unstarted rest of the group that was running
            rest = Unit(
                indices=tuple(first.left),
                etc_s=sum(self._etc[i] for i in first.left),
                urgency=first.unit.urgency,
                priority=first.unit.priority,
                front=first.unit.front,
                locality=first.unit.locality,
            )
            self._queue.requeue_first(rest)
        for held in state.held:
            if len(held.left) == len(held.unit.indices):
                self._queue.give_back(held.unit)
            else:  # pragma: no cover - only the first held unit can have started
                self._queue.requeue_first(self._unit_of(held.left, held.unit))
        self._fill_all()
        return self.collection[crashed]

    def expect_worker(self) -> None:
        """One more worker is starting (the swarm added it): keep tail work for it too."""
        self._expected += 1

    def _uncount(self, node: Any) -> None:
        """``node`` will never take work: one expected worker fewer (once per node)."""
        if node not in self._uncounted:
            self._uncounted.add(node)
            self._expected -= 1

    # --- tests ------------------------------------------------------------------------------

    @_timed
    def schedule(self) -> None:
        assert self.collection is not None, "schedule() before any collection"
        if self._queue is None:
            start = self._cpu()
            self._inputs_by_id = self._inputs(self.collection)
            self.inputs_cpu_s = self._cpu() - start
            default = TestInputs(etc_s=0.0)
            self._etc = [self._inputs_by_id.get(n, default).etc_s for n in self.collection]
            self._index = {}
            for index, nodeid in enumerate(self.collection):
                self._index.setdefault(nodeid, index)
            self._queue = DispatchQueue(
                build_units(self.collection, self._inputs_by_id, self._scope)
            )
        self._fill_all()

    @_timed
    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        state = self._state[node]
        for held in state.held:
            if item_index in held.left:
                held.left.remove(item_index)
                break
        else:
            msg = f"worker {node.gateway.id} completed item {item_index} it did not hold"
            raise KeyError(msg)
        while state.held and not state.held[0].left:
            state.held.popleft()
        state.count -= 1
        state.etc_s -= self._etc[item_index]
        state.head_since = self._clock()
        self._fill(node, state)

    @_timed
    def mark_test_pending(self, item: str) -> None:
        """Queue ``item`` again, before everything (a crashed worker's in-flight test)."""
        assert self._queue is not None, "mark_test_pending() before schedule()"
        index = self._index[item]
        self.reruns.append(item)
        self._queue.requeue_first(self._unit_of([index], None))
        self._fill_all()

    def take_back(self, node: Any) -> int:
        """Ask ``node`` for the items it holds and has not started (it is being replaced).

        The running item and the one behind it (xdist's worker already took that one out
        of its queue) stay; each later item is asked back on its own, since a worker
        refuses a whole steal when any item of it has started meanwhile. Returns how many
        were asked for; the worker's "unscheduled" answers queue them again
        (:meth:`remove_pending_tests_from_node`).
        """
        state = self._state.get(node)
        send = getattr(node, "send_steal", None)
        if state is None or send is None:
            return 0
        held = [i for h in state.held for i in h.left][2:]
        asked = 0
        for index in reversed(held):  # the last first: the least likely to have started
            try:
                send([index])
            except OSError:  # the worker died meanwhile: its down event requeues them all
                break
            asked += 1
        return asked

    @_timed
    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        """The worker gave back ``indices`` (a :meth:`take_back`): queue them again."""
        state = self._state.get(node)
        if state is None or not indices or self._queue is None:
            return
        back = set(indices)
        for held in list(state.held):
            stolen = [i for i in held.left if i in back]
            if not stolen:
                continue
            whole = len(stolen) == len(held.unit.indices)
            held.left = [i for i in held.left if i not in back]
            state.count -= len(stolen)
            state.etc_s -= sum(self._etc[i] for i in stolen)
            if not held.left:
                state.held.remove(held)
            if whole:
                self._queue.give_back(held.unit)
            else:
                self._queue.requeue_first(self._unit_of(stolen, held.unit))
        self._fill_all()

    # --- dispatch ---------------------------------------------------------------------------

    def _unit_of(self, indices: Sequence[int], like: Unit | None) -> Unit:
        assert self.collection is not None
        ids = [self.collection[i] for i in indices]
        best = max(
            (self._inputs_by_id.get(n, TestInputs(etc_s=0.0)) for n in ids),
            key=lambda t: t.urgency,
        )
        return Unit(
            indices=tuple(indices),
            etc_s=sum(self._etc[i] for i in indices),
            urgency=best.urgency,
            priority=like.priority if like else best.priority,
            front=True,
            locality=ids[0].partition("::")[0],
        )

    def _takes_work(self, node: Any, state: _NodeState) -> bool:
        return state.accepted and not node.shutting_down

    def _ready_s(self, now: float) -> dict[Any, float]:
        """Seconds until each accepting worker can start one more unit.

        Workers the run started with that have not collected yet count as free now
        (``_Coming``): the tail plan keeps work for them.
        """
        ready: dict[Any, float] = {}
        for node, state in self._state.items():
            if not self._takes_work(node, state):
                continue
            if state.count >= 2:  # the head is running
                head = self._etc[state.held[0].left[0]]
                ready[node] = state.etc_s - head + remaining_s(head, now - state.head_since)
            else:
                ready[node] = state.etc_s
        accepted = sum(1 for state in self._state.values() if state.accepted)
        for n in range(self._expected - accepted):
            ready[_Coming(n)] = 0.0
        return ready

    def _wants(self, state: _NodeState, *, topping_up: bool = False) -> bool:
        """Whether ``state``'s worker should get one more unit (see the module docstring).

        Two items; a second one behind the running item while the first behind is
        shorter than STALL_GUARD_S; and, for tiny tests, a top-up, which starts when
        less than half of LOOKAHEAD_S and less than half of MAX_HELD items are held
        and goes on to either: one send per several tiny tests, not per test.
        """
        if state.count < 2:
            return True
        behind = state.etc_s - self._etc[state.held[0].left[0]]
        if state.count == 2 and behind < STALL_GUARD_S:
            return True
        if topping_up:
            return state.count < MAX_HELD and behind < LOOKAHEAD_S
        return state.count < MAX_HELD // 2 and behind < LOOKAHEAD_S / 2

    def _fill_all(self) -> None:
        for node, state in list(self._state.items()):
            self._fill(node, state)

    def _fill(self, node: Any, state: _NodeState) -> None:
        if self._queue is None or not self._takes_work(node, state) or not self._wants(state):
            return
        now = self._clock()
        if not state.count:
            state.head_since = now
        ready = self._ready_s(now) if self._queue else {}
        batch: list[int] = []
        while self._wants(state, topping_up=True):
            unit = self._queue.next_unit(node, ready) if self._queue else None
            if unit is None:
                break
            state.held.append(_Held(unit, list(unit.indices)))
            state.count += len(unit.indices)
            state.etc_s += unit.etc_s
            ready[node] = ready.get(node, 0.0) + unit.etc_s
            batch.extend(unit.indices)
            self.dispatched += 1
        if batch:
            node.send_runtest_some(batch)
        if state.count < 2:
            # Nothing left for it: a shutdown lets it run the item it holds, then exit.
            node.shutdown()
