"""How many workers a run should have now: a pure function of the run's state.

No pytest, no xdist, no clock: :func:`decide` takes a :class:`SwarmState` (what is left to
do, what the workers cost so far, what the host can give) and :class:`Limits` (the user's
range, budget, target and thresholds) and returns a :class:`Decision` with its reason.
The controller (:mod:`pytest_shadowfarm.swarm.controller`) builds the state on the
dsession's main thread and applies the decision.

The model
=========

*Work* ``W`` is the expected time left: the ETC of every test not started yet plus the
remaining ETC of every running test. *Demand* ``D`` is how many workers that work asks
for, as a real number:

* with a target finish time, the smallest (fractional) swarm whose projected finish
  (:func:`projected_finish_s`) meets it: new workers only help after their start-up, so
  ``D = (W - n * s) / (H - s)`` once the current ``n`` workers are not enough in the
  ``H`` seconds left (``s`` is the start-up time of a new worker);
* without a target, growing asks ``D = W / (amortize * s)``: a new worker is worth its
  start-up when it gets at least ``amortize`` (3) start-up times of work. A cold worker
  (about 2 s) is worth adding for 6 s of work, a warm one from the farm (about 0.1 s)
  for much less. A worker already running has paid its start-up, so keeping it asks
  only ``K = W / (amortize * min(t, s))``, ``t`` the mean ETC of the tests left: it is
  kept while it gets a few tests' worth of work.

Hysteresis: with ``n`` workers the swarm grows when ``D > scale_up * n`` (default 0.8),
to ``ceil(D / scale_up)``, the smallest swarm whose workers are planned at most 80 %
busy; it shrinks when ``K < scale_down * n`` (0.5), to ``ceil(K / scale_up)`` (with a
target, ``K = D``). Since ``K >= D``, shrinking never goes below the count growth
would pick for the same state, which is what keeps the swarm from flapping:
re-deciding with the same state after a change is never a change (tested with
hypothesis). A cool-down after every change (2 s) lets the new state show in the
estimates before the next decision.

Caps on growth, each named in the reason when it binds:

* **pending tests**: a new worker needs tests nobody holds yet; each worker keeps two
  committed, so growth is at most ``pending // 2`` workers;
* **CPU**: CPU-bound tests gain nothing from more workers than free cores. The
  CPU demand ``f = (cpu_s + time waiting for a CPU) / wall`` of recent tests (from
  telemetry; the waiting part keeps a CPU-bound test on a busy host, which gets little
  CPU, from passing for an I/O-bound one) turns the host's
  free cores ``c`` into a cap of ``max(c, 1) / f`` workers: a suite that sleeps on the
  network (``f`` = 0.05) may use 20 workers per free core, a CPU-bound one (``f`` = 1)
  one. ``c`` counts as at least one core: on a host busy with other work, workers that
  mostly wait still cost next to nothing. The controller reads ``f`` from finished
  tests, else from the workers' CPU share in samples taken during tests, else from the
  prior run; when nothing is known yet, the suite is taken as CPU-bound;
* **gain**: growth must shorten the projected finish by 5 %, or the new workers would
  start after the work they were meant for is gone;
* **budget**: the projected cost ``spent + m * T(m)`` of ``m`` workers for the
  projected finish ``T(m)`` must fit the budget (worker-seconds).

Shrinking: a swarm that wants far more CPU than the host has free (``n > cap /
scale_down``) shrinks to the CPU cap: more workers than cores only slow CPU-bound tests
down. With no test left to hand out, a worker without work is pure cost, so the
swarm shrinks to the workers still busy at once (cool-down permitting). And when one
long test decides the end (``T = longest``), the swarm shrinks to the fewest workers
that still get the rest of the work done by then, planned ``scale_up`` busy: they
would otherwise idle at the tail behind the long test. Growth is then held by the
gain cap (more workers cannot end before the long test either). The budget
never shrinks the swarm: in the model ``n`` workers finishing ``W`` cost ``W`` whatever
``n`` is, so draining would only slow the run. The ``min`` workers always run to the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_shadowfarm.values import WorkerRange

__all__ = [
    "DEFAULT_STARTUP_S",
    "Decision",
    "Limits",
    "SwarmState",
    "WorkerRange",
    "cpu_cap",
    "decide",
    "demand",
    "projected_finish_s",
]

#: start-up of a cold popen worker until its first test, before any was measured
#: (2.1 s measured on a 2-core box, importing pytest and collecting)
DEFAULT_STARTUP_S = 2.0
#: below this cpu_s/wall a suite counts as fully I/O-bound (keeps the CPU cap finite)
MIN_CPU_FRACTION = 0.02
#: growth must shorten the projected finish by at least this share
MIN_GAIN = 0.05
#: no horizon is shorter than this (a controller tick is 0.25 s)
MIN_HORIZON_S = 0.25


@dataclass(frozen=True)
class Limits:
    """What the user allows: worker range, budget, target, thresholds."""

    workers: WorkerRange
    #: total worker-seconds the run may spend (None: no cap)
    budget_ws: float | None = None
    #: seconds since the session start by which the run should finish (None: no target)
    target_s: float | None = None
    scale_up: float = 0.8
    scale_down: float = 0.5
    cooldown_s: float = 2.0
    #: without a target, a worker must get this many start-up times of work
    amortize: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 < self.scale_down < self.scale_up <= 1.0:
            msg = (
                f"scale_down ({self.scale_down}) must be below scale_up ({self.scale_up}), "
                "both in (0, 1]"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class SwarmState:
    """The run as the controller sees it at one tick (times in seconds)."""

    now_s: float
    #: live workers that are not draining, including those still starting
    workers: int
    #: of those, the ones that hold work (a running or committed test)
    busy: int
    #: tests not started yet, and the sum of their ETC
    pending_count: int
    pending_s: float
    #: remaining ETC of each running test
    running_s: Sequence[float] = ()
    #: worker-seconds spent so far by every worker of the run, drained ones included
    spent_ws: float = 0.0
    #: from asking for a worker to its first test
    startup_s: float = DEFAULT_STARTUP_S
    #: mean ETC of the tests left (0: unknown)
    test_s: float = 0.0
    #: CPU demand / wall of recently finished tests; None before any reported
    cpu_fraction: float | None = None
    #: host cores not used by other processes than this run's workers
    cores_available: float = 1.0
    #: when the swarm size last changed (None: never)
    last_change_s: float | None = None
    #: of ``workers``, those asked for that have not collected yet (no work done yet)
    starting: int = 0
    #: the largest ETC among the tests not started yet
    longest_pending_s: float = 0.0

    @property
    def working(self) -> int:
        """Workers that take work now (at least 1: the projections divide by it)."""
        return max(1, self.workers - self.starting)

    @property
    def work_s(self) -> float:
        return self.pending_s + math.fsum(self.running_s)

    @property
    def longest_s(self) -> float:
        """The longest single test left (running or not): no swarm finishes before it."""
        return max(max(self.running_s, default=0.0), self.longest_pending_s)


@dataclass(frozen=True)
class Decision:
    """The swarm size the policy wants (``workers``), from ``current``, and why."""

    current: int
    workers: int
    reason: str
    demand: float = 0.0

    @property
    def change(self) -> int:
        return self.workers - self.current


def cpu_cap(cpu_fraction: float | None, cores_available: float) -> float:
    """How many workers the free cores can keep busy (at least 1)."""
    fraction = 1.0 if cpu_fraction is None else max(cpu_fraction, MIN_CPU_FRACTION)
    return max(1.0, cores_available) / fraction


def projected_finish_s(state: SwarmState, total: int, cap: float = math.inf) -> float:
    """Seconds from now until the work is done if the swarm goes to ``total`` workers.

    A fluid model: work flows at one second per second per worker, up to ``cap`` workers
    (CPU); new workers, and those still starting, flow after ``startup_s``; a test
    cannot be split, so never below the longest test left. Draining is taken as
    instant (a drained worker only finishes what it holds).
    """
    return max(_fluid_s(state, total, cap), state.longest_s)


def _fluid_s(state: SwarmState, total: int, cap: float) -> float:
    """:func:`projected_finish_s` as if every test could be split."""
    work = state.work_s
    current = state.working
    now_speed = min(current, cap)
    if total <= current:
        return work / min(max(1, total), cap)
    head = now_speed * state.startup_s
    if work <= head:
        return work / now_speed
    return state.startup_s + (work - head) / min(total, cap)


def demand(state: SwarmState, limits: Limits, *, keep: bool = False) -> float:
    """Workers' worth of the work left (a real number; ``inf`` when a target is out of reach).

    ``keep``: the demand that keeps running workers (their start-up is paid already).
    """
    work = state.work_s
    if work <= 0.0:
        return 0.0
    if limits.target_s is None:
        horizon = max(state.startup_s, MIN_HORIZON_S)
        if keep:
            horizon = min(horizon, max(state.test_s, MIN_HORIZON_S))
        return work / (limits.amortize * horizon)
    left = limits.target_s - state.now_s
    current = state.working
    if left > 0.0 and work / current <= left:
        return work / left
    if left > state.startup_s:
        return max(0.0, work - current * state.startup_s) / (left - state.startup_s)
    return math.inf


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def _why(state: SwarmState, limits: Limits, need: float, *, keep: bool = False) -> str:
    work = f"{state.work_s:.1f} s of work left"
    shown = "inf" if math.isinf(need) else f"{need:.2f}" if need < 1 else f"{need:.1f}"
    if limits.target_s is not None:
        return f"{work}, target {limits.target_s:g} s: {shown} workers needed"
    if keep:
        per = min(max(state.startup_s, MIN_HORIZON_S), max(state.test_s, MIN_HORIZON_S))
        return f"{work} = {shown} workers' worth at {limits.amortize:g}x {per:.1f} s each"
    return (
        f"{work} = {shown} workers' worth at {limits.amortize:g}x start-up "
        f"({state.startup_s:.1f} s)"
    )


def decide(state: SwarmState, limits: Limits) -> Decision:
    """The swarm size for this state, with the reason (see the module docstring)."""
    n = state.workers
    low, high = limits.workers.low, limits.workers.high
    if n < low:
        return Decision(n, low, f"below the minimum of {low}")
    if n > high:
        return Decision(n, high, f"above the maximum of {high}")
    if state.last_change_s is not None and state.now_s - state.last_change_s < limits.cooldown_s:
        return Decision(n, n, "cool-down")
    if state.cpu_fraction is not None:
        cap = cpu_cap(state.cpu_fraction, state.cores_available)
        if n > max(low, cap / limits.scale_down):
            want = max(low, math.floor(cap))
            return Decision(
                n,
                want,
                f"CPU: {_workers(n)} of CPU demand {state.cpu_fraction:.2f} on "
                f"{state.cores_available:.1f} free cores; {want} keep them busy",
            )
    need = demand(state, limits)
    if state.pending_count == 0:
        keep = max(low, state.busy)
        if keep < n:
            return Decision(n, keep, f"no test left to hand out; {n - keep} idle", need)
        return Decision(n, n, "every worker busy with the last tests", need)
    held: Decision | None = None
    if need > limits.scale_up * n:
        grow = _grow(state, limits, need, _why(state, limits, need))
        if grow.change:
            return grow
        held = grow  # growth capped to nothing: the swarm may still be too big (a long tail)
    want, why = n, ""
    kept = demand(state, limits, keep=True)
    if kept < limits.scale_down * n:
        want = max(low, min(n, math.ceil(kept / limits.scale_up)))
        why = f"{_why(state, limits, kept, keep=True)} (< {limits.scale_down:g} x {_workers(n)})"
    tail = _tail_workers(state, limits)
    if tail < want:
        want = tail
        why = (
            f"the longest test left ends in {state.longest_s:.1f} s; "
            f"the other {state.work_s - state.longest_s:.1f} s of work needs {_workers(tail)}"
        )
    if want < n:
        return Decision(n, want, why, kept)
    return held or Decision(n, n, f"{_why(state, limits, need)} (within the band)", need)


def _tail_workers(state: SwarmState, limits: Limits) -> int:
    """The fewest workers that finish no later than now, planned ``scale_up`` busy.

    When one long test decides the end, the others would idle behind it: they can go
    now without delaying the run (the swarm "idles at the tail" otherwise).
    """
    n = state.workers
    cap = cpu_cap(state.cpu_fraction, state.cores_available)
    finish = projected_finish_s(state, n, cap)
    for m in range(max(1, limits.workers.low), n):
        if _fluid_s(state, m, cap) <= limits.scale_up * finish:
            return m
    return n


def _grow(state: SwarmState, limits: Limits, need: float, why: str) -> Decision:
    n = state.workers
    wanted = limits.workers.high if math.isinf(need) else math.ceil(need / limits.scale_up)
    want = min(limits.workers.high, wanted)
    caps: list[str] = []
    if want < wanted:
        caps.append(f"max {limits.workers.high}")
    useful = n + state.pending_count // 2
    if want > useful:
        want = useful
        caps.append(f"only {state.pending_count} tests left to hand out")
    cap = cpu_cap(state.cpu_fraction, state.cores_available)
    if want > max(n, math.floor(cap)):
        want = max(n, math.floor(cap))
        fraction = "unknown" if state.cpu_fraction is None else f"{state.cpu_fraction:.2f}"
        caps.append(f"CPU: {state.cores_available:.1f} free cores, CPU demand {fraction}")
    before = projected_finish_s(state, n, cap)
    if limits.budget_ws is not None:
        fits = want
        while fits > n and state.spent_ws + fits * projected_finish_s(state, fits, cap) > (
            limits.budget_ws
        ):
            fits -= 1
        if fits < want:
            want = fits
            caps.append(f"budget {limits.budget_ws:g} worker-s")
    if want > n and projected_finish_s(state, want, cap) > (1.0 - MIN_GAIN) * before:
        caps.append("would not finish sooner")
        want = n
    fewer = want
    while fewer > n + 1 and projected_finish_s(state, fewer - 1, cap) <= (
        1.0 + MIN_GAIN
    ) * projected_finish_s(state, want, cap):
        fewer -= 1  # no more workers than make a difference (a long test decides the end)
    if fewer < want:
        caps.append(f"{fewer} finish as early")
        want = fewer
    reason = f"{why} (> {limits.scale_up:g} x {_workers(n)})"
    if caps:
        reason += "; capped: " + ", ".join(caps)
    return Decision(n, want, reason, need)
