"""Which unit of tests a worker runs next: urgent first, then by file, then a planned tail.

Pure: plain values in, plain values out; no pytest or xdist import. The xdist side
(:mod:`pytest_shadowfarm.sched.scheduler`) asks :meth:`DispatchQueue.next_unit` each time
a worker needs work, passing how much committed work every live worker still holds.

A *unit* is what is dispatched at once: one test, or under ``--dist loadscope|loadfile|
loadgroup`` one scope, file or ``xdist_group`` (its ETC is the sum of its tests').

The choice, in order:

1. **Reruns** (a crashed worker's in-flight test, the untouched rest of its group) go
   before everything: they were due already.
2. **Front**: units flagged by the priority engine (likely to fail, marked critical,
   touched by the change, or new; :mod:`.inputs`), most urgent first (urgency
   = priority / ETC, so short urgent tests lead). Their share is capped at
   :data:`FRONT_SHARE` of the total ETC (most urgent first); the others are demoted
   to the body. The cap keeps a suite where "everything is critical" from becoming a
   pure urgency order.
3. **Body**: everything else. While the longest remaining unit is small against the
   work left per worker (``rho * L < P``), the worker continues its current file in
   pytest's order (or starts the most important unclaimed file): order makes no
   difference to the makespan then, and staying in a file keeps module- and
   class-scoped fixtures set up once, which pure longest-first would set up again
   for every test it interleaves.
4. **Tail**: once ``rho * L >= P`` (or the big units would leave less than that),
   the remaining units are planned. Longest first
   onto the worker that will be free earliest (LPT list scheduling with each worker's
   committed remaining ETC as its ready time); the asking worker takes the first unit
   the plan gives it, or the shortest unit if the plan gives it none of the next
   ones. The plan is needed because xdist workers must hold two items: the worker
   asking now is choosing what it runs *after* its current test, so it is not always
   the one that is free first, and plain longest-first can put the last long test
   behind a long one. Of the units the plan gives the asking worker, one from the
   file it is in goes first (**tail locality**): its planned work is the same, and
   its module fixtures are not set up again. Before the plan, **file first**: while
   the next unit of the worker's file is small (under 1/:data:`BIG_FRACTION` of the
   work left per worker), the worker goes on with it; only big units are placed by
   the plan. On suites where long tests sit among short ones in files that share
   module fixtures, the plan alone handed each worker the longest units of any file,
   and a file's tests spread over the workers; small units cannot unbalance the end
   by more than their size.

Why this and not one order: with a few long tests last in file order (the skewed
suite), file or urgency order starts them last and the run ends one long test after
everything else; pure longest-first fixes the makespan but delays the failures by the
length of the long tests, and interleaves files, so module-scoped fixtures are set up
again and again. Measured with ``python benchmarks/sim_policy.py --seeds 100`` (a
discrete-event model of xdist's two committed items per worker; 2 workers; each test
really takes its ETC x lognormal(0, 0.3); 3 planted failures flagged as likely;
makespan / max(longest, total / 2), median and worst of 100 suites, then the median
time to the first failure)::

    shape                  file             urgency          LPT              this
    skewed (4 long last)   1.051 1.22 1.24s 1.054 1.22 0.04s 1.000 1.00 8.42s 1.001 1.01 0.03s
    pile-up (7 long last)  1.056 1.21 0.87s 1.078 1.22 0.05s 1.001 1.00 8.69s 1.002 1.02 0.04s
    4 long last in a file  1.045 1.26 1.56s 1.056 1.22 0.04s 1.000 1.00 8.72s 1.001 1.01 0.04s
    lognormal              1.003 1.14 8.18s 1.038 1.25 0.12s 1.000 1.00 31.0s 1.001 1.01 0.02s
    long tail 1%/70%       1.030 1.15 1.65s 1.048 1.20 0.02s 1.000 1.00 6.77s 1.000 1.01 0.00s
    uniform                1.002 1.01 1.50s 1.002 1.01 0.04s 1.002 1.01 1.50s 1.002 1.01 0.04s
    module fixtures (*)    1.391 1.41 2.95s 4.394 4.61 0.22s 4.391 4.59 6.81s 1.057 1.09 0.22s
    fixtures + long (**)   1.137 1.18 3.36s 4.113 4.44 3.08s 4.086 4.39 15.5s 1.047 1.09 0.32s
    same, setup in ETC     1.137 1.18 3.36s 4.120 4.44 3.08s 4.095 4.39 16.8s 1.047 1.09 0.32s

(*) 30 files of 10 short tests sharing a 0.2 s module fixture, paid again whenever a
worker enters a file it was not in just before; the bound counts it once per file.
(**) example_project-like: 12 files of 27 tests, 2 of them long (0.3-0.8 s), sharing
a 0.3 s module fixture. "Setup in ETC" is the history a real run learns: each file's
first test carries the fixture's set-up in its ETC. Variants (``--variants``): without
file first, 1.080 1.12 on (**) and 1.060 1.10 on (*), the rest within 0.001 of the
median; at ``--workers 4`` (60 suites) (**) goes from 1.199 1.26 to 1.121 1.17 and
at 8 from 1.485 1.60 to 1.306 1.42, for at most +0.008 of median (lognormal, 8
workers) elsewhere. Without tail locality: 1.056 1.09 on (**). Tried and left out: letting
the plan's big unit for the worker go first and only then the file (1.077 on (**),
no gain), and a stricter "small" (1/8 or 1/16 of the work left: half the gain).

Parameters, from the same model: :data:`RHO` = 3 (the tail is planned once the longest
unit left is a third of the work left per worker; 1-2 plan too late and a long test can
end alone, worst 1.16-1.19 on the skewed shape; 5-10 lose file locality early, 1.11-1.29
on module fixtures). A unit counts as *big* from 1/:data:`BIG_FRACTION` = 1/4 of the
work left per worker; once the big units would take all but ``rho`` longest units of
that work, the tail starts early, so several long tests cannot pile up at the end
(without this rule: pile-up worst 1.10; with 1/16: module fixtures 1.20). With exact
ETCs the makespan is at most max(longest, total / workers) + the longest unit
(property-tested); on real suites the remaining gap is per-test dispatch overhead.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pytest_shadowfarm.estimate import OVERRUN_TAIL_FACTOR

__all__ = [
    "FRONT_SHARE",
    "PLAN_DEPTH_PER_WORKER",
    "RHO",
    "DispatchQueue",
    "TestInputs",
    "Unit",
    "build_units",
    "remaining_s",
]

#: at most this share of the total ETC is dispatched in urgency order
FRONT_SHARE = 0.25
#: the tail is planned once rho * longest unit >= remaining work per worker
RHO = 3.0
#: units of at least 1/BIG_FRACTION of the work left per worker count as big
BIG_FRACTION = 4.0
#: the tail plan looks at most this many units per worker ahead
PLAN_DEPTH_PER_WORKER = 8

W = TypeVar("W", bound=Hashable)


@dataclass(frozen=True, eq=False)
class Unit:
    """Tests dispatched together (collection indices in order) and what is known of them."""

    indices: tuple[int, ...]
    etc_s: float
    #: priority / ETC, higher first (front units only are ordered by it)
    urgency: float = 0.0
    #: importance (markers, change impact…); orders the files of the body
    priority: float = 0.0
    #: likely to fail or critical: dispatched before the body
    front: bool = False
    #: units sharing a locality (a test file) share module-scoped fixtures
    locality: str = ""

    @property
    def order(self) -> int:
        return self.indices[0] if self.indices else 0


def remaining_s(etc_s: float, elapsed_s: float) -> float:
    """What is left of a unit running for ``elapsed_s`` (past its ETC: a heavy tail)."""
    if elapsed_s < etc_s:
        return etc_s - elapsed_s
    return max(elapsed_s * OVERRUN_TAIL_FACTOR, 1e-3)


class _Fenwick:
    """Prefix sums over a list that changes one element at a time (O(log n) each)."""

    def __init__(self, values: Sequence[float]) -> None:
        self._tree = [0.0] * (len(values) + 1)
        for pos, value in enumerate(values):
            self.add(pos, value)

    def add(self, pos: int, delta: float) -> None:
        pos += 1
        while pos < len(self._tree):
            self._tree[pos] += delta
            pos += pos & -pos

    def prefix(self, end: int) -> float:
        """Sum of the values at positions [0, end)."""
        total = 0.0
        while end > 0:
            total += self._tree[end]
            end -= end & -end
        return total


class DispatchQueue(Generic[W]):
    """The units not yet dispatched, and the policy that picks the next one for a worker."""

    def __init__(
        self,
        units: Iterable[Unit],
        *,
        front_share: float = FRONT_SHARE,
        rho: float = RHO,
        big_fraction: float = BIG_FRACTION,
        tail_locality: bool = True,
        file_first: bool = True,
    ) -> None:
        self.rho = rho
        self.big_fraction = big_fraction
        self.tail_locality = tail_locality
        self.file_first = file_first
        body = list(units)
        total = sum(u.etc_s for u in body)
        # -- front: flagged units, most urgent first, within the budget -----------------------
        budget = front_share * total
        front: list[Unit] = []
        for unit in sorted((u for u in body if u.front), key=lambda u: (-u.urgency, u.order)):
            if unit.etc_s <= budget:
                front.append(unit)
                budget -= unit.etc_s
        front_ids = {id(u) for u in front}
        body = [u for u in body if id(u) not in front_ids]
        self._retry: deque[Unit] = deque()
        self._front: list[tuple[float, int, int]] = []
        self._units: list[Unit] = front + body
        self._uid = {id(u): i for i, u in enumerate(self._units)}
        self._front = [(-u.urgency, u.order, i) for i, u in enumerate(front)]
        heapq.heapify(self._front)
        # -- body: by ETC (longest first) for the tail, and by file for locality -------------
        first_body = len(front)
        self._taken = [False] * len(self._units)
        self._by_etc = sorted(
            range(first_body, len(self._units)),
            key=lambda i: (-self._units[i].etc_s, self._units[i].order),
        )
        self._rank = {uid: pos for pos, uid in enumerate(self._by_etc)}
        self._neg_etc = [-self._units[uid].etc_s for uid in self._by_etc]
        self._etc_sums = _Fenwick([-v for v in self._neg_etc])
        self._hi = 0  # first position in _by_etc that may be untaken
        self._lo = len(self._by_etc) - 1  # last position that may be untaken
        files: dict[str, list[int]] = {}
        for uid in range(first_body, len(self._units)):
            files.setdefault(self._units[uid].locality, []).append(uid)
        file_order = sorted(
            files, key=lambda f: (-max(self._units[i].priority for i in files[f]), files[f][0])
        )
        self._files = [files[f] for f in file_order]  # uids in collection order
        self._file_pos = {f: n for n, f in enumerate(file_order)}
        self._file_cursor = [0] * len(self._files)  # first position that may be untaken
        self._next_file = 0  # first file that may have untaken units
        self._body_left = len(self._by_etc)
        self._body_etc = sum(self._units[uid].etc_s for uid in self._by_etc)
        self._current: dict[W, int] = {}  # worker -> file it is working through

    # --- what is left ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._retry) + len(self._front) + self._body_left

    def __bool__(self) -> bool:
        return len(self) > 0

    # --- giving work back --------------------------------------------------------------------

    def requeue_first(self, unit: Unit) -> None:
        """Queue ``unit`` before everything else (a rerun, the rest of a crashed group)."""
        self._retry.append(unit)

    def give_back(self, unit: Unit) -> None:
        """Return an unstarted unit (a crashed worker's lookahead) to where it was."""
        uid = self._uid.get(id(unit))
        if uid is None or not self._taken[uid]:
            self.requeue_first(unit)
            return
        self._taken[uid] = False
        if uid not in self._rank:  # a front unit
            heapq.heappush(self._front, (-unit.urgency, unit.order, uid))
            return
        pos = self._rank[uid]
        self._hi, self._lo = min(self._hi, pos), max(self._lo, pos)
        self._body_left += 1
        self._body_etc += unit.etc_s
        self._etc_sums.add(pos, unit.etc_s)
        fnum = self._file_pos[unit.locality]
        members = self._files[fnum]
        self._file_cursor[fnum] = min(self._file_cursor[fnum], members.index(uid))
        self._next_file = min(self._next_file, fnum)

    def forget_worker(self, worker: W) -> None:
        self._current.pop(worker, None)

    # --- choosing ----------------------------------------------------------------------------

    def next_unit(self, worker: W, ready_s: Mapping[W, float]) -> Unit | None:
        """The unit ``worker`` should run next, removed from the queue (None: nothing left).

        ``ready_s`` maps every live worker that takes work (``worker`` included) to the
        seconds until it can start one more unit: the ETC still committed to it.
        """
        if self._retry:
            return self._retry.popleft()
        if self._front:
            uid = heapq.heappop(self._front)[2]
            self._taken[uid] = True
            return self._units[uid]
        if not self._body_left:
            return None
        workers = max(len(ready_s), 1)
        per_worker = (self._body_etc + sum(ready_s.values())) / workers  # the work left
        if self._tail_reached(per_worker, workers=workers):
            uid = self._plan_pick(worker, ready_s, per_worker)
        else:
            uid = self._file_pick(worker)
        return self._take(worker, uid)

    def _tail_reached(self, per_worker: float, *, workers: int) -> bool:
        """True once the big units left need planning to end together.

        ``per_worker`` is the work left per worker: the queue's ETC plus what the
        workers hold. Big units (ETC >= 1/BIG_FRACTION of it) are spread over the
        workers; what remains per worker must still be at least ``rho`` times the
        longest unit, or the last long unit would end alone.
        """
        pos = self._advance_hi()
        longest = self._units[self._by_etc[pos]].etc_s
        need = per_worker - self.rho * longest  # big work per worker that tips it
        if need <= 0:
            return True
        # positions [0, cut) of _by_etc hold the units of at least the threshold
        cut = bisect.bisect_right(self._neg_etc, -per_worker / self.big_fraction)
        return self._etc_sums.prefix(cut) >= need * workers

    def _take(self, worker: W, uid: int) -> Unit:
        unit = self._units[uid]
        self._taken[uid] = True
        self._body_left -= 1
        self._body_etc -= unit.etc_s
        self._etc_sums.add(self._rank[uid], -unit.etc_s)
        self._current[worker] = self._file_pos[unit.locality]
        return unit

    def _advance_hi(self) -> int:
        while self._taken[self._by_etc[self._hi]]:
            self._hi += 1
        return self._hi

    def _shortest(self) -> int:
        while self._taken[self._by_etc[self._lo]]:
            self._lo -= 1
        return self._by_etc[self._lo]

    def _continue_file(self, worker: W, per_worker: float) -> int | None:
        """The worker's next unit in its file, unless it is big (the plan places those)."""
        fnum = self._current.get(worker)
        if fnum is None or not self._file_has_units(fnum):
            return None
        uid = self._files[fnum][self._file_cursor[fnum]]
        return None if self._units[uid].etc_s * self.big_fraction >= per_worker else uid

    def _plan_pick(self, worker: W, ready_s: Mapping[W, float], per_worker: float) -> int:
        if self.file_first:
            uid = self._continue_file(worker, per_worker)
            if uid is not None:
                return uid
        # LPT over the longest units: each goes to the worker free first; ties go to
        # the asking worker (it is the one that can act on the plan now). Of the units
        # the plan gives the asking worker, one from the file it is in goes first: the
        # worker's planned work is the same, and its module fixtures are not set up again.
        order = list(ready_s)
        if worker not in ready_s:
            order.append(worker)
        heap = [(ready_s.get(w, 0.0), w != worker, n) for n, w in enumerate(order)]
        heapq.heapify(heap)
        depth = PLAN_DEPTH_PER_WORKER * len(order)
        current = self._current.get(worker) if self.tail_locality else None
        planned: int | None = None
        pos = self._advance_hi()
        while depth > 0 and pos < len(self._by_etc):
            uid = self._by_etc[pos]
            pos += 1
            if self._taken[uid]:
                continue
            depth -= 1
            ready, other, n = heapq.heappop(heap)
            if not other:
                if current is None or self._file_pos[self._units[uid].locality] == current:
                    return uid
                if planned is None:
                    planned = uid
            heapq.heappush(heap, (ready + self._units[uid].etc_s, other, n))
        return self._shortest() if planned is None else planned

    def _file_pick(self, worker: W) -> int:
        fnum = self._current.get(worker)
        if fnum is None or not self._file_has_units(fnum):
            fnum = self._pick_file(worker)
        members = self._files[fnum]
        cursor = self._file_cursor[fnum]
        while self._taken[members[cursor]]:
            cursor += 1
        self._file_cursor[fnum] = cursor
        return members[cursor]

    def _file_has_units(self, fnum: int) -> bool:
        members, cursor = self._files[fnum], self._file_cursor[fnum]
        while cursor < len(members) and self._taken[members[cursor]]:
            cursor += 1
        self._file_cursor[fnum] = cursor
        return cursor < len(members)

    def _pick_file(self, worker: W) -> int:
        """The first file (importance, then pytest's order) that no other worker is in."""
        while not self._file_has_units(self._next_file):
            self._next_file += 1
        claimed = {f for w, f in self._current.items() if w != worker}
        fnum = self._next_file
        while fnum < len(self._files):
            if fnum not in claimed and self._file_has_units(fnum):
                return fnum
            fnum += 1
        return self._next_file  # every file with tests left is claimed: share the first


@dataclass(frozen=True)
class TestInputs:
    """What the scheduler knows of one test before the run."""

    __test__ = False  # not a pytest test class, despite the name

    etc_s: float
    urgency: float = 0.0
    priority: float = 0.0
    front: bool = False


def build_units(
    nodeids: Sequence[str],
    inputs: Mapping[str, TestInputs],
    scope: Callable[[str], str | None] = lambda nodeid: None,
) -> list[Unit]:
    """Group the collection (in order) into units.

    Tests whose ``scope`` is the same string form one unit; ``None`` is a unit alone. A
    unit's ETC is the sum of its tests'; its urgency and front flag those of its most
    urgent test, its priority the highest; its locality the file of its first test.
    """
    groups: dict[str, list[int]] = {}
    members_list: list[list[int]] = []
    for index, nodeid in enumerate(nodeids):
        key = scope(nodeid)
        if key is None:
            members_list.append([index])
        elif key in groups:
            groups[key].append(index)
        else:
            groups[key] = [index]
            members_list.append(groups[key])
    units = []
    default = TestInputs(etc_s=0.0)
    for members in members_list:
        tests = [inputs.get(nodeids[i], default) for i in members]
        head = max(tests, key=lambda t: t.urgency)
        units.append(
            Unit(
                indices=tuple(members),
                etc_s=sum(t.etc_s for t in tests),
                urgency=head.urgency,
                priority=max(t.priority for t in tests),
                front=any(t.front for t in tests),
                locality=nodeids[members[0]].partition("::")[0],
            )
        )
    return units
