"""A discrete-event model of one run's controller fan-in, from 2 to 10,000 hosted workers.

What the model holds (each cost measured on one machine by ``bench_dask.py``, passed in
with ``--from-json`` or the flags below):

- start-up: xdist sets its nodes up one after another (``NodeManager.setup_nodes``), so
  worker k starts testing after k hand-offs of ``handoff_s`` each (relay opened, warm
  worker taken, ``xdist.remote`` started), after the claim: one round trip to every host
  (``claim_host_s`` each, the ``Client.run`` calls are per host) on top of ``claim_s``;
- testing: each worker runs tests of lognormal duration (mean ``test_s``, sigma 1); the
  controller is one Python process (one GIL): every finished test costs it ``ctl_ms``
  of CPU, served first come first served, and a worker runs at most ``ahead`` tests
  past the controller's last handling of its reports (xdist keeps a few items pending
  per node; it sends more only when it has handled a report);
- wire: ``relay_kb`` per test through the controller's one network interface.

Printed per worker count: the controller's CPU load, events per second, MB/s on its
link, start-up, and the slowdown: the wall against that of the same tests on the same
workers with a free controller, claim and start.
What saturates first is where the design must change (docs/cluster.md).

    python benchmarks/sim_cluster.py                              # the defaults below
    python benchmarks/sim_cluster.py --from-json bench_dask.json  # bench_dask's medians
    python benchmarks/sim_cluster.py --quick                      # CI smoke
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Costs:
    # Defaults: bench_dask.py's medians of dask N=2 (N=2 and N=8 for the per-host part)
    # on a busy 2-core machine; --from-json takes them from another run.
    #: controller CPU per finished test (ms): bench_dask's controller CPU per test
    ctl_ms: float = 1.28
    #: relay bytes per test (kB), both ways
    relay_kb: float = 2.3
    #: one xdist node's set-up (s): relay, warm worker taken, xdist.remote started
    handoff_s: float = 0.019
    #: the claim's fixed part (s) and its part per host (s)
    claim_s: float = 0.47
    claim_host_s: float = 0.024
    #: mean test duration (s)
    test_s: float = 1.0
    #: tests a worker may run past the controller's handling of its reports
    ahead: int = 2


@dataclass
class Outcome:
    workers: int
    tests: int
    wall_s: float
    ideal_s: float
    startup_s: float
    ctl_busy: float
    events_per_s: float
    link_mb_s: float


def simulate(
    workers: int, hosts: int, tests: int, costs: Costs, *, parallel: bool = False, seed: int = 1
) -> Outcome:
    """One run. ``parallel``: hand-offs go on at once on every host, one after another
    within a host (the change docs/cluster.md proposes); else xdist's one at a time."""
    rng = random.Random(seed)
    sigma = 1.0
    mu = math.log(costs.test_s) - sigma**2 / 2  # lognormal with mean test_s
    durations = [rng.lognormvariate(mu, sigma) for _ in range(tests)]
    claim = costs.claim_s + costs.claim_host_s * hosts
    step = max(hosts, 1) if parallel else 1
    ready = [claim + (k // step + 1) * costs.handoff_s for k in range(workers)]
    startup = ready[-1]
    ctl_s = costs.ctl_ms / 1000
    # Events: (time, kind, worker). A worker runs its next test if it is fewer than
    # `ahead` reports past the controller; the controller serves reports in order.
    queue: list[tuple[float, int, int]] = [(t, 0, w) for w, t in enumerate(ready)]
    heapq.heapify(queue)
    unhandled = [0] * workers
    blocked = [False] * workers
    next_test = 0
    ctl_free = 0.0
    busy = 0.0
    finished = 0
    end = 0.0
    while queue:
        now, kind, w = heapq.heappop(queue)
        if kind == 0:  # w is free: it starts a test unless too far past the controller
            if unhandled[w] >= costs.ahead:
                blocked[w] = True
            elif next_test < tests:
                heapq.heappush(queue, (now + durations[next_test], 1, w))
                next_test += 1
        elif kind == 1:  # a test ended on w: its report queues at the controller
            unhandled[w] += 1
            ctl_free = max(now, ctl_free) + ctl_s
            busy += ctl_s
            heapq.heappush(queue, (ctl_free, 2, w))
            heapq.heappush(queue, (now, 0, w))
        else:  # the controller handled one of w's reports (and sent it more work)
            unhandled[w] -= 1
            finished += 1
            end = max(end, now)
            if blocked[w]:
                blocked[w] = False
                heapq.heappush(queue, (now, 0, w))
    ideal = sum(durations) / workers
    testing = max(end - ready[0], 1e-9)
    return Outcome(
        workers=workers,
        tests=finished,
        wall_s=end,
        ideal_s=ideal,
        startup_s=startup,
        ctl_busy=busy / testing,
        events_per_s=finished / testing,
        link_mb_s=finished * costs.relay_kb / 1000 / testing,
    )


def from_bench(path: Path) -> Costs:
    """Costs from ``bench_dask.py --json``: medians of its ``dask N=2`` samples."""
    samples = json.loads(path.read_text())["samples"]
    sizes = sorted(int(name.split("=")[1]) for name in samples if name.startswith("dask N="))

    def med(key: str, n: int = sizes[0]) -> float:
        return statistics.median(r[key] for r in samples[f"dask N={n}"])

    low, high = sizes[0], sizes[-1]
    per_host = (med("claim_s", high) - med("claim_s", low)) / (high - low) if high > low else 0
    return Costs(
        ctl_ms=med("ctl_cpu_ms"),
        relay_kb=med("relay_kb"),
        handoff_s=med("node_s"),
        claim_s=med("claim_s"),
        claim_host_s=max(per_host, 0.0),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-json", type=Path, help="bench_dask.py --json output")
    parser.add_argument("--test-s", type=float, default=Costs.test_s, help="mean test (s)")
    parser.add_argument("--tests-per-worker", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="up to 1,000 workers (CI smoke)")
    args = parser.parse_args(argv)
    costs = from_bench(args.from_json) if args.from_json else Costs()
    costs = Costs(**{**costs.__dict__, "test_s": args.test_s})
    print(
        f"costs: controller {costs.ctl_ms:.2f} ms/test, relay {costs.relay_kb:.2f} kB/test, "
        f"hand-off {costs.handoff_s:.3f} s, claim {costs.claim_s:.2f} s + "
        f"{costs.claim_host_s:.3f} s/host, tests {costs.test_s:g} s mean, {args.hosts} hosts"
    )
    print(f"controller saturates at {1000 / costs.ctl_ms:,.0f} tests/s = "
          f"{1000 / costs.ctl_ms * costs.test_s:,.0f} busy workers")  # fmt: skip
    sizes = (2, 10, 100, 1000) if args.quick else (2, 10, 100, 1000, 3000, 10000)
    print("start-up: xdist's (one hand-off at a time) | parallel (every host at once)")
    print("slowdown: wall / the wall of the same tests with a free controller, claim and start")
    print(f"{'workers':>8} {'start s':>8} {'slowdown':>9} | {'start s':>8} {'slowdown':>9} "
          f"{'ctl busy':>9} {'events/s':>9} {'MB/s':>7}")  # fmt: skip
    free = Costs(ctl_ms=0.0, relay_kb=0.0, handoff_s=0.0, claim_s=0.0, claim_host_s=0.0,
                 test_s=costs.test_s, ahead=costs.ahead)  # fmt: skip
    for n in sizes:
        tests, hosts = n * args.tests_per_worker, min(args.hosts, n)
        base = simulate(n, hosts, tests, free).wall_s
        serial = simulate(n, hosts, tests, costs)
        para = simulate(n, hosts, tests, costs, parallel=True)
        print(
            f"{n:>8} {serial.startup_s:>8.1f} {serial.wall_s / base:>9.2f} | "
            f"{para.startup_s:>8.1f} {para.wall_s / base:>9.2f} {para.ctl_busy:>9.0%} "
            f"{para.events_per_s:>9.0f} {para.link_mb_s:>7.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
