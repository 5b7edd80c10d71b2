"""Overhead of ``-p shadowfarm`` on a suite of trivial tests (target: <= 10%).

Generates N trivial tests in a temporary directory, teaches the history once, then runs
the suite alternately with ``-p no:shadowfarm`` and ``-p shadowfarm`` (median of R
runs each) and prints the wall times and their ratio, and the same for the processes'
CPU time (user + system), which drifts less with the host's load. Whole process: the
plugin's import, history read, ordering and history write all count.

Both modes read bytecode where it exists and write none (``PYTHONDONTWRITEBYTECODE``, so
the test modules are rewritten and compiled in every run, alike in both modes); the
plugin's own modules are compiled once first, as ``pip install`` does: a source tree
edited since its last import would otherwise be compiled anew by every measured run.

The history is a mature one: before the measured runs it is filled with
``--history-runs`` past runs (default 50, the default ``history_keep``, so every test
has as many results as the history keeps), a few tests failing now and then.

On a noisy host the wall ratio of one invocation moves by several percent either way.
``--instructions`` also runs each mode once under valgrind's cachegrind and prints the
user-space instructions each executed, and their ratio: the plugin's own work, which no
load on the host changes (it leaves out waiting for the disk; about 4 minutes per
5,000-test run, the two modes side by side).

``--workers N`` runs both modes under xdist (``-n N``): then the plugin's scheduler and
each worker's telemetry count too (no instruction count: the workers are other
processes). The CPU time then includes the workers'.

    python benchmarks/bench_overhead.py            # 5,000 tests, 5 runs each
    python benchmarks/bench_overhead.py --runs 15 --instructions
    python benchmarks/bench_overhead.py --tests 2000 --workers 1 --runs 7
    python benchmarks/bench_overhead.py --quick    # 500 tests, 1 run each (CI smoke run)
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import pytest_command, timed_run


def make_suite(root: Path, tests: int, per_module: int = 100) -> None:
    for module in range(max(1, tests // per_module)):
        body = "\n".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(per_module))
        (root / f"test_gen_{module:03d}.py").write_text(body)
    (root / "pytest.ini").write_text("[pytest]\n")


def fill_history(root: Path, tests: int, runs: int, per_module: int = 100) -> int:
    """``runs`` past runs of every test (as ``make_suite`` names them); returns the rows kept."""
    from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord

    rng = random.Random(0)
    nodeids = [
        f"test_gen_{m:03d}.py::test_{i}"
        for m in range(max(1, tests // per_module))
        for i in range(per_module)
    ]
    flaky = set(rng.sample(nodeids, k=max(1, len(nodeids) // 500)))
    path = root / ".shadowfarm" / "history.sqlite"
    with HistoryStore.open(path) as store:
        for n in range(runs):
            results = [
                ResultRecord(
                    nodeid,
                    "failed" if nodeid in flaky and rng.random() < 0.3 else "passed",
                    setup_s=1e-4,
                    call_s=rng.uniform(1e-4, 5e-4),
                    teardown_s=1e-4,
                )
                for nodeid in nodeids
            ]
            store.record_run(RunRecord(started=n * 60.0, finished=n * 60.0 + 10), results)
        return sum(len(results) for results in store.results_by_test().values())


def median_interval(values: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 90% bootstrap interval of the median of ``values`` (fixed seed: reproducible).

    On a noisy host one invocation's median of paired ratios moves by several percent;
    the interval says how far this invocation's figure can be trusted.
    """
    rng = random.Random(0)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(0.05 * resamples)], medians[int(0.95 * resamples) - 1]


def run(root: Path, *plugin_args: str, workers: int = 0) -> tuple[float, float]:
    """One pytest run (under xdist with ``-n workers`` when > 0): its wall seconds and its
    CPU seconds (user + system, the workers' included)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    xdist = ["-n", str(workers)] if workers else []
    command = pytest_command("-p", "no:cacheprovider", *xdist, *plugin_args)
    run = timed_run(command, cwd=root, env=env)
    if run.done.returncode != 0:
        sys.exit(f"pytest failed in {root}:\n{run.done.stdout[-2000:]}\n{run.done.stderr[-2000:]}")
    return run.wall_s, run.cpu_s


def count_instructions(root: Path, *plugin_args: str) -> subprocess.Popen[str]:
    """Start one pytest run under cachegrind (no cache simulation: instructions only)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        *pytest_command("-p", "no:cacheprovider", *plugin_args),
    ]
    return subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def instructions_of(run: subprocess.Popen[str]) -> int:
    out, err = run.communicate()
    found = re.search(r"I\s+refs:\s+([\d,]+)", err)
    if run.returncode != 0 or found is None:
        sys.exit(f"the run under valgrind failed ({run.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--history-runs", type=int, default=50, help="past runs in the history")
    parser.add_argument("--quick", action="store_true", help="500 tests, 1 run each")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each mode's instructions once under valgrind (slow, noise-free)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="run both modes under xdist with -n N (default 0: one process)",
    )
    args = parser.parse_args()
    if args.workers < 0:
        parser.error("--workers must be 0 (one process) or more")
    if args.workers and args.instructions:
        parser.error("--instructions counts one process: use it without --workers")
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH (e.g. apt-get install valgrind)")
    if args.quick:
        args.tests, args.runs, args.history_runs = 500, 1, 5
    import pytest_shadowfarm

    compileall.compile_dir(Path(pytest_shadowfarm.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="sf-overhead-") as tmp:
        root = Path(tmp)
        make_suite(root, args.tests)
        where = f"-n {args.workers}" if args.workers else "one process"
        print(
            f"suite: {args.tests} trivial tests, {args.runs} runs each, {where}, no bytecode cache"
        )
        rows = fill_history(root, args.tests, args.history_runs)
        print(f"history: {args.history_runs} past runs, {rows} results")
        # one real run on top, then the measured ones
        run(root, "-p", "shadowfarm", workers=args.workers)
        plain: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        for i in range(args.runs):
            # Alternate, so drift in machine load hits both alike, and swap which one goes
            # first in every other pair, so a pattern in the noise favours neither.
            if i % 2:
                ours.append(run(root, "-p", "shadowfarm", workers=args.workers))
                plain.append(run(root, "-p", "no:shadowfarm", workers=args.workers))
            else:
                plain.append(run(root, "-p", "no:shadowfarm", workers=args.workers))
                ours.append(run(root, "-p", "shadowfarm", workers=args.workers))
            print(
                f"  run {i + 1}: no:shadowfarm {plain[-1][0]:.2f}s (CPU {plain[-1][1]:.2f}s)  "
                f"shadowfarm {ours[-1][0]:.2f}s (CPU {ours[-1][1]:.2f}s)",
                flush=True,
            )
        for k, what in enumerate(("wall", "CPU")):
            base = statistics.median(p[k] for p in plain)
            with_plugin = statistics.median(o[k] for o in ours)
            ratios = [o[k] / p[k] for o, p in zip(ours, plain, strict=True)]
            low, high = median_interval(ratios)
            fastest = min(o[k] for o in ours) / min(p[k] for p in plain)
            print(
                f"median {what:4}  -p no:shadowfarm {base:.2f}s  -p shadowfarm {with_plugin:.2f}s  "
                f"ratio {with_plugin / base:.3f}; median of the {args.runs} paired ratios "
                f"(run i vs run i) {statistics.median(ratios):.3f} "
                f"(90% bootstrap interval {low:.3f}-{high:.3f}); fastest vs fastest {fastest:.3f}"
            )
        print("target: wall ratio <= 1.10 (the CPU time is the steadier figure on a noisy host)")
        if args.instructions:
            print("counting instructions under valgrind (both modes at once)...", flush=True)
            # The two runs cannot share the suite: the plugin's run writes the history.
            with tempfile.TemporaryDirectory(prefix="sf-overhead-plain-") as other:
                twin = Path(other) / "suite"
                shutil.copytree(root, twin, ignore=shutil.ignore_patterns(".shadowfarm"))
                plain_run = count_instructions(twin, "-p", "no:shadowfarm")
                ours_run = count_instructions(root, "-p", "shadowfarm")
                base, with_plugin = instructions_of(plain_run), instructions_of(ours_run)
            print(
                f"instructions  -p no:shadowfarm {base / 1e9:.3f}e9  -p shadowfarm "
                f"{with_plugin / 1e9:.3f}e9  ratio {with_plugin / base:.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
