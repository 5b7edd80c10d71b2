"""Split a suite into N shards of equal expected time, for N CI jobs (``--sf-shard K/N``).

Pure: node ids, their ETCs and their xdist groups in; a :class:`ShardPlan` out. No pytest.

Every job computes the *whole* plan and keeps shard K, so the plan must come out the same
in every job: it depends only on the set of node ids, their ETCs, the groups and N, never
on the order the items were collected in (pytest-randomly, ``--sf-order`` or a plugin may
order them differently in each job). Every tie is broken by name.

The split is LPT (longest processing time first): units sorted by ETC, longest first, each
placed on the least-loaded shard. The unit that tops the busiest shard was placed when that
shard was the least loaded, so ``largest <= mean + that unit``: small units make a tight
balance, and LPT is also within 4/3 of the best possible split (Graham 1969).

A unit is what must not be split across jobs:

- all tests of one ``xdist_group`` (``--dist loadgroup`` promises they run in one process);
- with ``keep_modules`` (``--sf-order grouped``) a test module, so that its module-scoped
  fixtures are set up in one job only.

A few large modules cannot be balanced over N shards, though. So whole modules are only
the first try; when LPT leaves the busiest shard more than :data:`TOLERANCE` above the
mean, two plans that cut modules are made too:

- the tests laid out in key order (modules whole, one after another) and cut into N
  consecutive runs at the multiples of the mean, each cut moved to a module edge when one
  is near: at most N - 1 modules cut, once each, and every shard within one test (or
  group) of the mean;
- LPT over single tests (what pytest-split's ``least_duration`` does): the tightest
  balance when a few tests are large, at the price of many cuts.

Of the plans within :data:`TOLERANCE` of the best balance, the one that cuts the fewest
modules wins (each cut costs one more module-fixture setup, in another job).
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pytest_shadowfarm.estimate import Estimator, module_key

__all__ = [
    "TOLERANCE",
    "ShardPlan",
    "ShardSpec",
    "Unit",
    "etc_snapshot",
    "lpt",
    "make_units",
    "plan_shards",
    "shard_etcs",
]

#: Whole modules are kept when the busiest shard is within 2 % of the mean: the ETCs
#: themselves are rarely better than a few percent, so cutting modules to gain less
#: only buys more module-fixture setups.
TOLERANCE = 0.02


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``count``, as written ``K/N``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            msg = f"shard {self.index}/{self.count}: expected K/N with 1 <= K <= N"
            raise ValueError(msg)

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"2/4"`` -> ShardSpec(2, 4); anything else raises ValueError saying what is allowed."""
        index, sep, count = text.strip().partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(index), int(count))
        except ValueError:
            msg = "expected K/N with whole numbers 1 <= K <= N, e.g. 2/4"
            raise ValueError(msg) from None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Unit:
    """Tests that go to one shard together; ``key`` names it and breaks ties."""

    key: str
    nodeids: tuple[str, ...]
    seconds: float
    #: a module (or a piece of one) that may be cut further; groups and single tests may not
    cuttable: bool = False


@dataclass(frozen=True)
class ShardPlan:
    """The node ids of each shard (sorted), the ETC sum of each, and how it was reached."""

    shards: tuple[tuple[str, ...], ...]
    loads: tuple[float, ...]
    #: how many extra pieces modules were cut into (0: every module whole)
    cuts: int = 0
    #: the ETC of the largest unit placed (the LPT bound is mean + this)
    largest_unit_s: float = 0.0

    @property
    def count(self) -> int:
        return len(self.shards)

    @property
    def mean_s(self) -> float:
        return math.fsum(self.loads) / len(self.loads) if self.loads else 0.0

    @property
    def largest_s(self) -> float:
        return max(self.loads, default=0.0)

    @property
    def imbalance(self) -> float:
        """How far the busiest shard is above the mean (0.05 = 5 %)."""
        mean = self.mean_s
        return self.largest_s / mean - 1.0 if mean > 0 else 0.0

    def shard(self, spec: ShardSpec) -> tuple[str, ...]:
        if spec.count != self.count:
            msg = f"this plan has {self.count} shards, not {spec.count}"
            raise ValueError(msg)
        return self.shards[spec.index - 1]

    def fingerprint(self) -> str:
        """A short hash of the whole plan: equal in every job that split the same way."""
        digest = hashlib.sha256()
        for nodeids in self.shards:
            digest.update("\x1f".join(nodeids).encode())
            digest.update(b"\x1e")
        return digest.hexdigest()[:16]


def make_units(
    etc: Mapping[str, float],
    *,
    groups: Mapping[str, str] | None = None,
    keep_modules: bool = False,
) -> list[Unit]:
    """The units of a split: xdist groups, then modules or single tests (sorted by key)."""
    groups = groups or {}
    members: dict[str, list[str]] = {}
    for nodeid in etc:
        seconds = etc[nodeid]
        if not (math.isfinite(seconds) and seconds >= 0):
            msg = f"ETC of {nodeid!r} is {seconds!r}; expected a finite number of seconds >= 0"
            raise ValueError(msg)
        group = groups.get(nodeid)
        if group is not None:
            key = f"group:{group}"
        elif keep_modules:
            key = f"module:{module_key(nodeid)}"
        else:
            key = f"test:{nodeid}"
        members.setdefault(key, []).append(nodeid)
    units = []
    for key in sorted(members):
        nodeids = tuple(sorted(members[key]))
        seconds = math.fsum(etc[n] for n in nodeids)
        units.append(Unit(key, nodeids, seconds, key.startswith("module:") and len(nodeids) > 1))
    return units


def lpt(units: Sequence[Unit], count: int) -> list[list[Unit]]:
    """Longest first onto the least-loaded shard; ties go to the lowest shard index."""
    if count < 1:
        msg = f"count must be >= 1, got {count}"
        raise ValueError(msg)
    bins: list[list[Unit]] = [[] for _ in range(count)]
    heap = [(0.0, index) for index in range(count)]
    for unit in sorted(units, key=lambda u: (-u.seconds, u.key)):
        load, index = heapq.heappop(heap)
        bins[index].append(unit)
        heapq.heappush(heap, (load + unit.seconds, index))
    return bins


def _plan(bins: Sequence[Sequence[Unit]]) -> ShardPlan:
    """The plan of ``bins``; a module whose tests (units keyed by it) span k shards is k-1 cuts."""
    shards_of: dict[str, set[int]] = {}
    for index, units in enumerate(bins):
        for unit in units:
            shards_of.setdefault(unit.key, set()).add(index)
    return ShardPlan(
        shards=tuple(tuple(sorted(n for unit in b for n in unit.nodeids)) for b in bins),
        # Summed in a fixed order: the same floats in every job.
        loads=tuple(math.fsum(unit.seconds for unit in b) for b in bins),
        cuts=sum(len(found) - 1 for found in shards_of.values()),
        largest_unit_s=max((unit.seconds for b in bins for unit in b), default=0.0),
    )


def _atoms(units: Sequence[Unit], etc: Mapping[str, float]) -> list[Unit]:
    """The units in key order, modules opened up into single tests (groups stay whole)."""
    atoms: list[Unit] = []
    for unit in units:
        if unit.cuttable:
            atoms.extend(Unit(unit.key, (n,), etc[n]) for n in unit.nodeids)
        else:
            atoms.append(unit)
    return atoms


def _nearest(positions: Sequence[float], target: float, low: int) -> int | None:
    """Index (>= low) of the position nearest to ``target``; the lower one on a tie."""
    at = bisect.bisect_left(positions, target, lo=low)
    found = [i for i in (at - 1, at) if low <= i < len(positions)]
    if not found:
        return None
    return min(found, key=lambda i: (abs(positions[i] - target), i))


def _sequence_plan(
    units: Sequence[Unit], count: int, etc: Mapping[str, float], slack: float
) -> ShardPlan:
    """Tests in key order cut into ``count`` consecutive runs of about the mean each.

    Shard boundary i is placed at the test boundary nearest to ``i * mean``, or at a
    module edge when one is within ``slack`` of it. Targets are absolute, so errors do not
    add up: every shard is within ``max(2 * slack, largest test or group)`` of the mean,
    and at most ``count - 1`` modules are cut.
    """
    atoms = _atoms(units, etc)
    positions = [0.0]
    for atom in atoms:
        positions.append(positions[-1] + atom.seconds)
    mean = positions[-1] / count
    edges = [0] + [i for i in range(1, len(atoms)) if atoms[i - 1].key != atoms[i].key]
    edges.append(len(atoms))
    edge_positions = [positions[i] for i in edges]
    bounds = [0]
    for shard in range(1, count):
        target = shard * mean
        best = _nearest(positions, target, bounds[-1])
        assert best is not None  # bounds[-1] <= len(atoms) always leaves a candidate
        at_edge = _nearest(edge_positions, target, bisect.bisect_left(edges, bounds[-1]))
        if at_edge is not None and abs(edge_positions[at_edge] - target) <= slack:
            best = edges[at_edge]
        bounds.append(best)
    bounds.append(len(atoms))
    return _plan([atoms[a:b] for a, b in itertools.pairwise(bounds)])


def plan_shards(
    etc: Mapping[str, float],
    count: int,
    *,
    groups: Mapping[str, str] | None = None,
    keep_modules: bool = False,
    tolerance: float = TOLERANCE,
) -> ShardPlan:
    """Split the tests of ``etc`` (node id -> expected seconds) into ``count`` shards.

    ``groups`` maps a node id to its ``xdist_group`` name; ``keep_modules`` keeps each module
    in one shard unless the balance needs it cut (see the module docstring).
    """
    units = make_units(etc, groups=groups, keep_modules=keep_modules)
    whole = _plan(lpt(units, count))
    if not any(unit.cuttable for unit in units) or whole.largest_s <= whole.mean_s * (
        1 + tolerance
    ):
        return whole
    candidates = [
        whole,
        _sequence_plan(units, count, etc, slack=whole.mean_s * tolerance / 2),
        _plan(lpt(_atoms(units, etc), count)),  # every test on its own, like pytest-split
    ]
    # The fewest module cuts among the plans within the tolerance of the best balance.
    best = min(plan.largest_s for plan in candidates)
    return min(
        (plan for plan in candidates if plan.largest_s <= best * (1 + tolerance)),
        key=lambda plan: plan.cuts,
    )


def etc_snapshot(durations: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The ETC of every test the history knows: what the controller hands to each worker."""
    estimator = Estimator(durations)
    snapshot = {}
    for nodeid in durations:
        estimate = estimator.estimate(nodeid)
        if estimate.source == "history":
            snapshot[nodeid] = estimate.seconds
    return snapshot


def shard_etcs(snapshot: Mapping[str, float], nodeids: Iterable[str]) -> dict[str, float]:
    """The ETC of each collected test, from a snapshot alone.

    A known test gets its snapshot value; a new one the estimator's fallbacks computed over
    the snapshot (siblings, module, suite). Every process holding the same snapshot gets
    the same numbers, which is what lets the controller and the workers agree.
    """
    estimator = Estimator({nodeid: [seconds] for nodeid, seconds in snapshot.items()})
    return {nodeid: estimator.etc(nodeid) for nodeid in nodeids}
