"""Elastic swarm vs fixed swarms: wall time and worker-seconds; and the telemetry's overhead.

Suites:

* ``io``: generated, I/O-bound (sleeps stand for network waits), shaped like real ones:
  many short waits and a few long ones, so a fixed swarm idles behind the long ones
  at the tail. 2 x 10 s + 120 waits of 0.05-0.15 s (about 32 s of work).
* ``example``: example_project (CPU-bound: tests burn process CPU time; scipy import).

For each suite: one learning run (history: ETCs and each test's CPU share), then R
rounds; each round runs static ``-n 1``, static ``-n MAX``, ``--sf-workers 1:MAX`` and
static ``-n MAX --sf-dist off`` (xdist's own ``load`` scheduler: the static swarm a user
has without pytest-shadowfarm's scheduler) one after the other, so drift in machine
load hits all four alike. Printed per mode:
medians of whole-process wall time and of worker-seconds (from the run report's
``workers[]``: each worker from ``joined_s``, when the controller asked for it, to
``left_s``, its release; the same clock for every mode), the largest swarm, and the
median over rounds of the ratios to static ``-n MAX`` in the same round.

``overhead``: example_project at ``-n 2`` with telemetry on (the default 0.2 s
sampling and per-test CPU/peak RSS) and off (``--sf-telemetry-interval 0``),
alternating, median of R each.

    python benchmarks/bench_swarm.py                    # io + example + overhead, 3 rounds
    python benchmarks/bench_swarm.py --suites io --runs 5 --max 4
    python benchmarks/bench_swarm.py --quick            # CI smoke run: small io suite, 1 round
    python benchmarks/bench_swarm.py --sf-dist off      # every mode on xdist's own scheduler
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _health_tally

REPO = Path(__file__).resolve().parents[1]
#: arguments every run gets (--sf-dist)
EXTRA: list[str] = []


@dataclass
class Suite:
    name: str
    cwd: Path
    args: list[str]


@dataclass
class Run:
    wall: float
    worker_s: float
    peak: int
    tests: int


def make_io_suite(root: Path, scale: float) -> Suite:
    """Two long waits and many short ones; ``scale`` shrinks every wait (--quick)."""
    shorts = [round((0.05 + 0.10 * ((i * 37) % 100) / 99) * scale, 4) for i in range(120)]
    body = [
        "import time",
        "import pytest",
        "",
        f"SHORT = {shorts!r}",
        "",
        '@pytest.mark.parametrize("seconds", SHORT)',
        "def test_short_wait(seconds):",
        "    time.sleep(seconds)",
        "",
        '@pytest.mark.parametrize("n", range(2))',
        "def test_long_wait(n):",
        f"    time.sleep({10.0 * scale})",
        "",
    ]
    (root / "test_io.py").write_text("\n".join(body))
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n')
    return Suite("io", root, [])


def example_suite() -> Suite:
    return Suite("example", REPO / "example_project", [])


def run_once(
    suite: Suite, mode_args: Sequence[str], history: Path, report: Path, timeout: float
) -> Run:
    report.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", *suite.args, "-q", "-p", "no:cacheprovider",
        "-p", "shadowfarm", *EXTRA, *mode_args,
        # "--opt=PATH": pytest takes an existing PATH given apart for a test path when
        # it looks for the rootdir (and would miss example_project's pythonpath).
        f"--sf-history={history}", f"--sf-report-json={report}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("EXAMPLE_FAULTS", None)
    start = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=suite.cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0 or not report.exists():
        tail = (done.stdout + done.stderr)[-3000:]
        sys.exit(f"{suite.name}: pytest exited {done.returncode}\n{' '.join(cmd)}\n{tail}")
    data = json.loads(report.read_text())
    _health_tally.add(data)
    return measure(data, wall)


def measure(report: dict[str, Any], wall: float) -> Run:
    end = report["wall_s"]
    spans = [
        (w["left_s"] if w["left_s"] is not None else end) - w["joined_s"] for w in report["workers"]
    ]
    peak = (report.get("swarm") or {}).get("peak_workers") or len(report["workers"])
    return Run(wall, sum(max(0.0, s) for s in spans), peak, len(report["tests"]))


def _med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_modes(suite: Suite, runs: int, top: int, work: Path, timeout: float) -> list[str]:
    modes = {
        "-n 1": ["-n", "1"],
        f"-n {top}": ["-n", str(top)],
        f"--sf-workers 1:{top}": ["--sf-workers", f"1:{top}"],
    }
    xdist = f"-n {top} (xdist)"
    if "off" not in EXTRA:
        # xdist's own scheduler: the static swarm a user has without pytest-shadowfarm's
        # (it too shuts a worker down once nothing is left to hand it).
        modes[xdist] = ["-n", str(top), "--sf-dist", "off"]
    history = work / f"{suite.name}-history.sqlite"
    print(f"\n== {suite.name}: learning run ...", flush=True)
    run_once(suite, ["-n", str(top)], history, work / "learn.json", timeout)
    results: dict[str, list[Run]] = {m: [] for m in modes}
    for i in range(runs):
        for mode, args in modes.items():
            tag = mode.replace(" ", "").replace(":", "-").lstrip("-")
            report = work / f"{suite.name}-{tag}-{i}.json"
            results[mode].append(run_once(suite, args, history, report, timeout))
        line = "  ".join(
            f"{m} {results[m][-1].wall:5.1f}s/{results[m][-1].worker_s:5.1f}ws" for m in modes
        )
        print(f"   round {i + 1}: {line}", flush=True)
    bases = {"max": results[f"-n {top}"], "xd": results.get(xdist)}
    header = "".join(
        f"{'wall/' + name:>10}{'ws/' + name:>8}" for name, base in bases.items() if base
    )
    rows = [
        f"{suite.name} ({bases['max'][0].tests} tests, median of {runs}; ratios: median over "
        f"rounds of mode / static -n {top} in the same round; max: on pytest-shadowfarm's "
        "scheduler, which drains a worker once nothing is left for it; xd: on xdist's)",
        f"  {'mode':20}{'wall s':>9}{'worker-s':>10}{'peak':>6}{header}",
    ]
    for mode, rs in results.items():
        ratios = ""
        for base in filter(None, bases.values()):
            wall_ratio = _med([r.wall / b.wall for r, b in zip(rs, base, strict=True)])
            ws_ratio = _med([r.worker_s / b.worker_s for r, b in zip(rs, base, strict=True)])
            ratios += f"{wall_ratio:10.3f}{ws_ratio:8.3f}"
        rows.append(
            f"  {mode:20}{_med([r.wall for r in rs]):9.2f}{_med([r.worker_s for r in rs]):10.1f}"
            f"{max(r.peak for r in rs):6d}{ratios}"
        )
    return rows


def agent_cost_us(iterations: int = 5000) -> tuple[float, float]:
    """CPU µs the worker agent adds per test (its hooks) and per sample (its thread).

    Process CPU time of the real hook code, driven directly: on a loaded machine this
    resolves what whole-run wall medians cannot.
    """
    from pytest_shadowfarm.swarm.telemetry import WorkerTelemetry, read_sample, schedstat

    class Channel:
        def send(self, item: object) -> None:
            pass

        def close(self) -> None:
            pass

    class Call:
        def __init__(self, when: str) -> None:
            self.when = when

    class Report:
        pass

    agent = WorkerTelemetry(Channel(), 3600.0)  # the thread sleeps through the loop
    phases = (
        ("setup", agent.pytest_runtest_setup),
        ("call", agent.pytest_runtest_call),
        ("teardown", agent.pytest_runtest_teardown),
    )
    start = time.process_time()
    for i in range(iterations):
        agent.pytest_runtest_logstart(f"t.py::test_{i}")
        for when, hook in phases:
            for gen, sent in (
                (hook(), None),
                (agent.pytest_runtest_makereport(Call(when)), Report()),
            ):  # type: ignore[arg-type]
                next(gen)
                with contextlib.suppress(StopIteration):
                    gen.send(sent)
        agent.pytest_runtest_logfinish(f"t.py::test_{i}")
    per_test = (time.process_time() - start) / iterations * 1e6
    agent.pytest_unconfigure()
    start = time.process_time()
    for _ in range(iterations // 10):
        read_sample(agent.process)
        schedstat()
    per_sample = (time.process_time() - start) / (iterations // 10) * 1e6
    return per_test, per_sample


def bench_overhead(runs: int, work: Path, timeout: float) -> list[str]:
    suite = example_suite()
    history = work / "overhead-history.sqlite"
    print("\n== telemetry overhead (example_project, -n 2): learning run ...", flush=True)
    run_once(suite, ["-n", "2"], history, work / "learn.json", timeout)
    on: list[float] = []
    off: list[float] = []
    for i in range(runs):  # alternate, so drift in machine load hits both alike
        off.append(
            run_once(suite, ["-n", "2", "--sf-telemetry-interval", "0"], history,
                     work / "off.json", timeout).wall
        )  # fmt: skip
        on.append(run_once(suite, ["-n", "2"], history, work / "on.json", timeout).wall)
        print(f"   round {i + 1}: off {off[-1]:.2f}s  on {on[-1]:.2f}s", flush=True)
    ratio = _med([a / b for a, b in zip(on, off, strict=True)])
    per_test, per_sample = agent_cost_us()
    report = json.loads((work / "on.json").read_text())
    tests = len(report["tests"])
    workers = max(1, len(report["workers"]))
    wall = report["wall_s"]
    # per test: the hooks; per worker: one sample every 0.2 s for the whole run
    cpu_s = tests * per_test / 1e6 + workers * wall / 0.2 * per_sample / 1e6
    share = cpu_s / (workers * wall)
    return [
        f"telemetry overhead (example_project, -n 2, median of {runs})",
        f"  telemetry off  {_med(off):7.2f}s",
        f"  telemetry on   {_med(on):7.2f}s",
        f"  on / off (median over rounds) {ratio:.3f}  (target <= 1.02; wall noise dominates)",
        f"  agent CPU: {per_test:.0f} us per test (hooks), {per_sample:.0f} us per sample; "
        f"for {tests} tests on {workers} workers over {wall:.1f} s: {cpu_s:.3f} CPU-s, "
        f"{share:.2%} of the workers' time",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", default="io,example,overhead")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max", type=int, default=4, help="MAX workers (default: 4)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--quick", action="store_true", help="io suite at 1/4 scale, 1 round")
    parser.add_argument(
        "--sf-dist", choices=("on", "off"), default="on", help="passed to every run (default: on)"
    )
    args = parser.parse_args()
    EXTRA[:] = ["--sf-dist", args.sf_dist]
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    scale = 1.0
    if args.quick:
        suites, args.runs, scale = ["io"], 1, 0.25
    print(
        f"bench_swarm: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"MAX={args.max}; {args.runs} round(s); --sf-dist {args.sf_dist}",
        flush=True,
    )
    tables: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="sf-swarm-") as tmp:
        work = Path(tmp)
        for name in suites:
            if name == "io":
                root = work / "io"
                root.mkdir()
                tables.append(bench_modes(make_io_suite(root, scale), args.runs, args.max,
                                          work, args.timeout))  # fmt: skip
            elif name == "example":
                tables.append(bench_modes(example_suite(), args.runs, args.max, work, args.timeout))
            elif name == "overhead":
                tables.append(bench_overhead(args.runs, work, args.timeout))
            else:
                sys.exit(f"unknown suite {name!r}; known: io, example, overhead")
        shutil.rmtree(work / "io", ignore_errors=True)
    print()
    for rows in tables:
        print("\n".join(rows))
        print()
    print(_health_tally.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
