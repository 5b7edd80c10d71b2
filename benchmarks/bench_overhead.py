"""Overhead of ``-p shadowfarm`` on a suite of trivial tests (issue 2 target: <= 10%).

Generates N trivial tests in a temporary directory, teaches the history once, then runs
the suite alternately with ``-p no:shadowfarm`` and ``-p shadowfarm`` (median of R
runs each) and prints the wall times and their ratio. Whole-process wall time: the
plugin's import, history read, ordering and history write all count.

    python benchmarks/bench_overhead.py            # 5,000 tests, 5 runs each
    python benchmarks/bench_overhead.py --quick    # 500 tests, 1 run each (CI smoke run)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_suite(root: Path, tests: int, per_module: int = 100) -> None:
    for module in range(max(1, tests // per_module)):
        body = "\n".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(per_module))
        (root / f"test_gen_{module:03d}.py").write_text(body)
    (root / "pytest.ini").write_text("[pytest]\n")


def run(root: Path, *plugin_args: str) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"pytest failed in {root}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 tests, 1 run each")
    args = parser.parse_args()
    if args.quick:
        args.tests, args.runs = 500, 1
    with tempfile.TemporaryDirectory(prefix="sf-overhead-") as tmp:
        root = Path(tmp)
        make_suite(root, args.tests)
        print(f"suite: {args.tests} trivial tests, {args.runs} runs each, no bytecode cache")
        run(root, "-p", "shadowfarm")  # learning run: the measured runs read a real history
        plain: list[float] = []
        ours: list[float] = []
        for i in range(args.runs):  # alternate, so drift in machine load hits both alike
            plain.append(run(root, "-p", "no:shadowfarm"))
            ours.append(run(root, "-p", "shadowfarm"))
            print(f"  run {i + 1}: no:shadowfarm {plain[-1]:.2f}s  shadowfarm {ours[-1]:.2f}s")
        base, with_plugin = statistics.median(plain), statistics.median(ours)
        print(f"median wall  -p no:shadowfarm: {base:.2f}s")
        print(f"median wall  -p shadowfarm:    {with_plugin:.2f}s")
        print(f"ratio shadowfarm / no:shadowfarm: {with_plugin / base:.3f} (target <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
