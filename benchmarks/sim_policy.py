"""Discrete-event model of xdist dispatch: compares dispatch policies without running pytest.

Models what was measured in xdist 3.8.0: a worker runs item i only once it holds item
i + 1 (or was told to shut down), so the scheduler keeps two items committed per worker
and picks the next one when the running one finishes. Module-scoped fixtures cost
``fixture_s`` each time a worker enters a file it was not in just before.

    python benchmarks/sim_policy.py            # the table quoted in sched/policy.py
    python benchmarks/sim_policy.py --seeds 20 # quicker

Durations actually run are ETC x lognormal(0, sigma): the policy sees only the ETC.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_shadowfarm.sched.policy import (
    DispatchQueue,
    TestInputs,
    Unit,
    build_units,
    remaining_s,
)


@dataclass
class Suite:
    nodeids: list[str]
    etc: list[float]
    actual: list[float]
    failing: set[int]
    fixture_s: float = 0.0


# --- suite shapes ------------------------------------------------------------------------------


def _ids(counts: list[int]) -> list[str]:
    return [f"tests/test_m{m:03d}.py::test_{i}" for m, c in enumerate(counts) for i in range(c)]


def skewed(rng: random.Random) -> tuple[list[str], list[float]]:
    """Short tests, and four long ones last in file order (the generated benchmark)."""
    etc = [rng.uniform(0.02, 0.1) for _ in range(200)] + [3.0] * 4
    return _ids([20] * 10 + [4]), etc


def long_in_file(rng: random.Random) -> tuple[list[str], list[float]]:
    """Short tests, and four long ones at the end of the last file, after its short ones."""
    etc = [rng.uniform(0.02, 0.1) for _ in range(220)] + [3.0] * 4
    return _ids([20] * 10 + [24]), etc


def pile_up(rng: random.Random) -> tuple[list[str], list[float]]:
    """Seven long tests of unequal length last in file order."""
    etc = [rng.uniform(0.02, 0.1) for _ in range(150)] + [rng.uniform(1.0, 3.0) for _ in range(7)]
    return _ids([15] * 10 + [7]), etc


def lognormal(rng: random.Random) -> tuple[list[str], list[float]]:
    etc = [rng.lognormvariate(-3.0, 1.5) for _ in range(500)]
    return _ids([25] * 20), etc


def long_tail(rng: random.Random) -> tuple[list[str], list[float]]:
    """networkx-like: the slowest 1% of tests take ~70% of the time."""
    etc = [rng.uniform(0.001, 0.01) for _ in range(990)] + [
        rng.uniform(0.6, 1.6) for _ in range(10)
    ]
    rng.shuffle(etc)
    return _ids([50] * 20), etc


def uniform(rng: random.Random) -> tuple[list[str], list[float]]:
    return _ids([30] * 10), [0.05] * 300


def fixtures(rng: random.Random) -> tuple[list[str], list[float]]:
    """30 files of 10 tests sharing a 0.2 s module fixture."""
    return _ids([10] * 30), [rng.uniform(0.01, 0.05) for _ in range(300)]


def fixtures_long(rng: random.Random) -> tuple[list[str], list[float]]:
    """example_project-like: 12 files of 27 tests sharing a 0.3 s module fixture, each
    file with 2 long tests (0.3-0.8 s) among short ones, so the tail mixes files."""
    etc: list[float] = []
    for _ in range(12):
        tests = [rng.uniform(0.005, 0.06) for _ in range(25)] + [
            rng.uniform(0.3, 0.8) for _ in range(2)
        ]
        rng.shuffle(tests)
        etc += tests
    return _ids([27] * 12), etc


SHAPES: dict[str, tuple[Callable[[random.Random], tuple[list[str], list[float]]], float]] = {
    "skewed (4 long last)": (skewed, 0.0),
    "pile-up (7 long last)": (pile_up, 0.0),
    "4 long last in a file": (long_in_file, 0.0),
    "lognormal": (lognormal, 0.0),
    "long tail 1%/70%": (long_tail, 0.0),
    "uniform": (uniform, 0.0),
    "module fixtures": (fixtures, 0.2),
    "fixtures + long tests": (fixtures_long, 0.3),
    "same, setup in ETC": (fixtures_long, 0.3),
}
#: shapes whose history was learned in file order: each file's first test carries the
#: module fixture's set-up in its ETC (what a real run's report says of it)
SETUP_IN_ETC = {"same, setup in ETC"}


def make_suite(shape: str, seed: int, sigma: float) -> Suite:
    rng = random.Random(seed)
    factory, fixture_s = SHAPES[shape]
    nodeids, etc = factory(rng)
    actual = [e * rng.lognormvariate(0.0, sigma) for e in etc]
    failing = set(rng.sample(range(len(etc)), 3))
    if shape in SETUP_IN_ETC:
        modules = [nodeid.partition("::")[0] for nodeid in nodeids]
        for i, module in enumerate(modules):
            if i == 0 or modules[i - 1] != module:
                etc[i] += fixture_s
    return Suite(nodeids, etc, actual, failing, fixture_s)


# --- policies: each returns a "next unit for worker" function -------------------------------


def inputs_of(suite: Suite) -> dict[str, TestInputs]:
    return {
        n: TestInputs(
            etc_s=e,
            urgency=(2.0 if i in suite.failing else 1.0) / e,
            priority=1.0,
            front=i in suite.failing,
        )
        for i, (n, e) in enumerate(zip(suite.nodeids, suite.etc, strict=True))
    }


Picker = Callable[[Hashable, Mapping[Hashable, float]], Unit | None]


def fifo(units: list[Unit]) -> Picker:
    queue = list(reversed(units))
    return lambda w, r: queue.pop() if queue else None


def policy_file(suite: Suite) -> Picker:
    return fifo(build_units(suite.nodeids, inputs_of(suite)))


def policy_urgency(suite: Suite) -> Picker:
    units = build_units(suite.nodeids, inputs_of(suite))
    return fifo(sorted(units, key=lambda u: (-u.urgency, u.order)))


def policy_lpt(suite: Suite) -> Picker:
    units = build_units(suite.nodeids, inputs_of(suite))
    return fifo(sorted(units, key=lambda u: (-u.etc_s, u.order)))


def policy_ours(suite: Suite, **kwargs: Any) -> Picker:
    queue: DispatchQueue[Hashable] = DispatchQueue(
        build_units(suite.nodeids, inputs_of(suite)), **kwargs
    )
    return queue.next_unit


POLICIES: dict[str, Callable[[Suite], Picker]] = {
    "file": policy_file,
    "urgency": policy_urgency,
    "LPT": policy_lpt,
    "shadowfarm": policy_ours,
}
#: ``--variants``: the policy with one of its rules switched off
VARIANTS: dict[str, Callable[[Suite], Picker]] = {
    "no tail locality": lambda s: policy_ours(s, tail_locality=False),
    "no file first": lambda s: policy_ours(s, file_first=False),
}


# --- the event model ---------------------------------------------------------------------------


@dataclass
class Result:
    makespan: float
    lower: float
    ttff: float | None


def simulate(suite: Suite, pick: Picker, workers: int = 2) -> Result:
    etc, actual = suite.etc, suite.actual
    module = [n.partition("::")[0] for n in suite.nodeids]
    pending: dict[int, list[int]] = {w: [] for w in range(workers)}
    started: dict[int, float] = {}
    last_module: dict[int, str] = {}
    shut: set[int] = set()
    events: list[tuple[float, int]] = []
    first_fail: float | None = None

    def ready_map(now: float) -> dict[Hashable, float]:
        out: dict[Hashable, float] = {}
        for w, items in pending.items():
            if w in shut:
                continue
            if not items:
                out[w] = 0.0
                continue
            head = remaining_s(etc[items[0]], now - started[w]) if w in started else etc[items[0]]
            out[w] = head + sum(etc[i] for i in items[1:])
        return out

    def start(w: int, now: float) -> None:
        if w in started or not pending[w] or (len(pending[w]) < 2 and w not in shut):
            return
        i = pending[w][0]
        cost = actual[i]
        if suite.fixture_s and last_module.get(w) != module[i]:
            cost += suite.fixture_s
        last_module[w] = module[i]
        started[w] = now
        heapq.heappush(events, (now + cost, w))

    def fill(w: int, now: float) -> None:
        while w not in shut and len(pending[w]) < 2:
            unit = pick(w, ready_map(now))
            if unit is None:
                shut.add(w)
                break
            pending[w].extend(unit.indices)
        start(w, now)

    for w in range(workers):
        fill(w, 0.0)
    now = 0.0
    while events:
        now, w = heapq.heappop(events)
        done = pending[w].pop(0)
        del started[w]
        if done in suite.failing and first_fail is None:
            first_fail = now
        fill(w, now)
    modules = len(set(module))
    lower = max(max(actual), (sum(actual) + modules * suite.fixture_s) / workers)
    return Result(now, lower, first_fail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rho", type=float, nargs="*", default=[])
    parser.add_argument("--big", type=float, nargs="*", default=[])
    parser.add_argument("--variants", action="store_true", help="also the policy's variants")
    args = parser.parse_args(argv)
    policies = dict(POLICIES)
    if args.variants:
        policies.update(VARIANTS)
    for rho in args.rho:
        policies[f"rho={rho:g}"] = lambda s, rho=rho: policy_ours(s, rho=rho)
    for big in args.big:
        policies[f"big={big:g}"] = lambda s, big=big: policy_ours(s, big_fraction=big)
    print(
        f"makespan / lower bound (median, worst), TTFF s (median); {args.workers} workers, "
        f"sigma={args.sigma}, {args.seeds} seeds"
    )
    print(f"{'shape':24}" + "".join(f"{name:>22}" for name in policies))
    for shape in SHAPES:
        cells = []
        for factory in policies.values():
            ratios, ttffs = [], []
            for seed in range(args.seeds):
                suite = make_suite(shape, seed, args.sigma)
                res = simulate(suite, factory(suite), args.workers)
                ratios.append(res.makespan / res.lower)
                if res.ttff is not None:
                    ttffs.append(res.ttff)
            cells.append(
                f"{statistics.median(ratios):.3f} {max(ratios):.2f} "
                f"{statistics.median(ttffs):6.2f}s"
            )
        print(f"{shape:24}" + "".join(f"{c:>22}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
