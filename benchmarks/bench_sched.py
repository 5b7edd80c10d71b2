"""xdist ``load`` vs ``worksteal`` vs shadowfarm's scheduler at ``-n 2``, on several suites.

For each suite: one learning run for shadowfarm, then R rounds; each round runs the
suite with xdist ``load``, xdist ``worksteal`` and shadowfarm, one after the other (so
drift in machine load hits all three alike). Printed per mode: medians of whole-process
wall time, when the first test started (worker start-up), makespan (session start to
the end of the last test), makespan / lower bound, time to first failure where faults
are planted (from the session start, and from the first test's start), and the median
over rounds of each ratio to ``worksteal`` in the same round: whole-process wall, and
span (makespan minus start-up: the part the scheduler decides). The lower bound is max(longest test,
total test time / 2) plus worker start-up, with each worker counted from its first
test: max(first start + longest, (total + the workers' start-ups) / 2).

The baselines run with ``-p shadowfarm --sf-dist off``: xdist schedules, our report JSON
gives the per-test times (the plugin's own cost is in all three modes alike).

    python benchmarks/bench_sched.py                      # skewed, example, attrs, pygments
    python benchmarks/bench_sched.py --suites skewed,networkx --runs 5
    python benchmarks/bench_sched.py --quick              # CI smoke run: small, 1 round
    python benchmarks/bench_sched.py --suites cpu         # scheduling CPU per test only

Suites: ``skewed`` (generated: 200 short sleeps, 3 long ones last in file order, 3 planted
failures), ``example`` (example_project, EXAMPLE_FAULTS=bug=tax), ``attrs`` (26.1.0 sdist
tests), ``pygments`` (2.21.0 sdist tests), ``networkx`` (3.6.1, ``--pyargs networkx``;
long). Real suites are installed by this script, at pinned versions, into a throwaway
venv under benchmarks/.work/ (first run: a few minutes). ``cpu``: controller CPU spent
in our scheduler per test on a generated 5,000-test run at -n 2.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".work"
MODES = ("load", "worksteal", "shadowfarm")

#: what the real suites are run with (pinned: results must be comparable over time)
PINS = ["pytest==9.2.0", "pytest-xdist==3.8.0", "execnet==2.1.2"]
REAL = {
    "attrs": {
        "sdist": "attrs==26.1.0",
        "deps": ["hypothesis==6.170.15", "pympler==1.1", "cloudpickle==3.1.2"],
        "args": [
            "tests",
            "--deselect",
            "tests/test_converters.py::TestPipe::test_wrapped_annotation",  # fails on 3.11
        ],
    },
    "pygments": {
        "sdist": "pygments==2.21.0",
        "deps": ["wcag-contrast-ratio==0.9"],
        "args": ["tests"],
    },
    "networkx": {
        "sdist": None,
        "deps": ["networkx==3.6.1", "numpy==2.4.6", "scipy==1.17.1", "pandas==3.1.1"],
        "args": ["--pyargs", "networkx"],
    },
}


# --- suites ------------------------------------------------------------------------------------


@dataclass
class Suite:
    name: str
    cwd: Path
    args: list[str]
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    faults: bool = False


def make_skewed(root: Path, scale: float) -> Suite:
    """200 short sleeps in 8 files, then 3 long ones in the last file; 3 planted failures.

    Integration tests last in file order is a common shape, and the one where file
    order hurts: the last long test starts when the others are done and runs alone.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(4)
    failing = {(5, 10), (7, 20), (8, 1)}
    header = "import os\nimport time\n\nFAULTS = os.environ.get('BENCH_FAULTS') == '1'\n"
    for module in range(8):
        body = [header]
        for i in range(25):
            seconds = round(rng.uniform(0.01, 0.05) * scale, 4)
            fail = "\n    assert not FAULTS" if (module, i) in failing else ""
            body.append(f"\ndef test_short_{i}():\n    time.sleep({seconds}){fail}\n")
        (root / f"test_gen_{module}.py").write_text("".join(body))
    body = [header]
    for i in range(3):
        fail = "\n    assert not FAULTS" if (8, i) in failing else ""
        body.append(f"\ndef test_long_{i}():\n    time.sleep({3.0 * scale}){fail}\n")
    (root / "test_zz_long.py").write_text("".join(body))
    (root / "pytest.ini").write_text("[pytest]\n")
    return Suite("skewed", root, [], env={"BENCH_FAULTS": "1"}, faults=True)


def make_example() -> Suite:
    # One BLAS thread per worker, as for the real suites: two numeric tests running at
    # once on two workers would otherwise oversubscribe the cores.
    env = {"EXAMPLE_FAULTS": "bug=tax", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return Suite("example", REPO / "example_project", [], env=env, faults=True)


def _pip(python: str, *args: str) -> None:
    cmd = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    subprocess.run(cmd, check=True)


def make_real(name: str) -> Suite:
    """Install a real suite at pinned versions into benchmarks/.work/venv (once)."""
    spec = REAL[name]
    venv = WORK / "venv"
    python = str(venv / "bin" / "python")
    if not venv.exists():
        print(f"creating {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        _pip(python, *PINS)
        _pip(python, "-e", str(REPO))  # the plugin, with its own dependencies
    marker = venv / f".installed-{name}"
    src = WORK / "src"
    tree: Path | None = None
    if spec["sdist"]:
        dist, version = str(spec["sdist"]).split("==")
        tree = src / f"{dist}-{version}"
    if not marker.exists():
        print(f"installing {name} ...", flush=True)
        if spec["sdist"] and tree is not None:
            src.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [python, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                 "-d", str(src), str(spec["sdist"])],
                check=True,
            )  # fmt: skip
            archive = next(src.glob(f"{tree.name}.tar.gz"))
            with tarfile.open(archive) as tar:
                tar.extractall(src, filter="data")
            _pip(python, str(tree), *spec["deps"])
        else:
            _pip(python, *spec["deps"])
        marker.write_text("ok\n")
    cwd = tree if tree is not None else WORK
    if tree is not None and not _has_pytest_config(tree):
        # pygments' sdist has no pytest config: without one, pytest would take the
        # rootdir (and our own settings) from this repository's pyproject.toml above.
        (tree / "pytest.ini").write_text("[pytest]\n")
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return Suite(name, cwd, list(spec["args"]), python=python, env=env)


def _has_pytest_config(tree: Path) -> bool:
    if (tree / "pytest.ini").exists():
        return True
    checks = {"pyproject.toml": "[tool.pytest", "tox.ini": "[pytest]", "setup.cfg": "[tool:pytest]"}
    for name, marker in checks.items():
        path = tree / name
        if path.exists() and marker in path.read_text(encoding="utf-8", errors="replace"):
            return True
    return False


# --- running -----------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    makespan: float
    lower: float
    ttff: float | None
    tests: int
    start: float


def mode_args(mode: str) -> list[str]:
    if mode == "shadowfarm":
        return ["--sf-dist=on"]
    return ["--sf-dist=off", f"--dist={mode}"]


def run_once(suite: Suite, mode: str, workers: int, tag: str, timeout: float) -> Run:
    out = WORK / "out" / suite.name
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"{mode}-{tag}.json"
    report.unlink(missing_ok=True)
    cmd = [
        suite.python, "-m", "pytest", *suite.args, "-q", "-p", "no:cacheprovider",
        "-p", "shadowfarm", f"--numprocesses={workers}", *mode_args(mode),
        f"--sf-history={out / f'history-{mode}.sqlite'}",
        f"--sf-report-json={report}",
    ]  # fmt: skip
    # Plugin options as one "--opt=value" token: pytest finds the rootdir before plugins
    # add their options, and a separate value would be taken for a path to test.
    env = {**os.environ, **suite.env}
    env.pop("PYTEST_ADDOPTS", None)
    for attempt in (1, 2):
        start = time.perf_counter()
        done = subprocess.run(
            cmd, cwd=suite.cwd, env=env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if done.returncode in (0, 1) and report.exists():
            break
        if attempt == 1:  # a shared machine: someone may be rewriting files right now
            print(f"   {suite.name} {mode}: pytest exited {done.returncode}; retrying once")
    if done.returncode not in (0, 1) or not report.exists():
        tail = (done.stdout + done.stderr)[-3000:]
        sys.exit(f"{suite.name} {mode}: pytest exited {done.returncode}\n{' '.join(cmd)}\n{tail}")
    data = json.loads(report.read_text())
    return measure(data, wall, workers)


def measure(report: dict[str, Any], wall: float, workers: int) -> Run:
    tests = [t for t in report["tests"] if t.get("start_s") is not None]
    durations = [t["duration_s"] or 0.0 for t in tests]
    # Workers become available at their first test's start: the work cannot end before
    # (total + the start-ups) / workers, nor before the longest test from the first start.
    first: dict[str, float] = {}
    for t in tests:
        first[t["worker"]] = min(first.get(t["worker"], t["start_s"]), t["start_s"])
    startups = sorted(first.values())[:workers] + [max(first.values())] * (workers - len(first))
    makespan = max(t["start_s"] + (t["duration_s"] or 0.0) for t in tests)
    lower = max(min(startups) + max(durations), (sum(durations) + sum(startups)) / workers)
    start = min(first.values())
    return Run(wall, makespan, lower, report.get("first_failure_s"), len(tests), start)


def bench(suite: Suite, runs: int, workers: int, timeout: float) -> dict[str, list[Run]]:
    print(f"\n== {suite.name}: learning run ...", flush=True)
    run_once(suite, "shadowfarm", workers, "learn", timeout)
    results: dict[str, list[Run]] = {m: [] for m in MODES}
    for i in range(runs):
        for mode in MODES:
            results[mode].append(run_once(suite, mode, workers, str(i), timeout))
        line = "  ".join(f"{m} {results[m][-1].wall:6.2f}s" for m in MODES)
        print(f"   round {i + 1}: {line}", flush=True)
    return results


def _med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(suite: Suite, results: dict[str, list[Run]]) -> list[str]:
    base = results["worksteal"]
    rows = [
        f"{suite.name} ({base[0].tests} tests, -n 2, median of {len(base)}; "
        "ratios: median over rounds of mode / worksteal in the same round)",
        f"  {'mode':11}{'wall s':>14}{'1st test':>9}{'makespan':>9}{'/ lower':>8}"
        f"{'TTFF':>7}{'TTFF-1st':>9}{'wall/ws':>8}{'span/ws':>8}",
    ]
    for mode in MODES:
        rs = results[mode]
        walls = [r.wall for r in rs]
        spread = f"{_med(walls):.2f}±{(max(walls) - min(walls)) / 2:.2f}"
        failed = [r for r in rs if r.ttff is not None]
        ttff = f"{_med([r.ttff for r in failed]):7.2f}" if suite.faults and failed else "      -"
        after = (
            f"{_med([r.ttff - r.start for r in failed]):9.2f}"
            if suite.faults and failed
            else "        -"
        )
        wall_ratio = _med([r.wall / b.wall for r, b in zip(rs, base, strict=True)])
        span_ratio = _med(
            [(r.makespan - r.start) / (b.makespan - b.start) for r, b in zip(rs, base, strict=True)]
        )
        rows.append(
            f"  {mode:11}{spread:>14}{_med([r.start for r in rs]):9.2f}"
            f"{_med([r.makespan for r in rs]):9.2f}{_med([r.makespan / r.lower for r in rs]):8.3f}"
            f"{ttff}{after}{wall_ratio:8.3f}{span_ratio:8.3f}"
        )
    return rows


# --- scheduling CPU --------------------------------------------------------------------------


def cpu_per_test(tests: int, workers: int, timeout: float) -> list[str]:
    """Controller CPU in the scheduler per test, from the run report's scheduler event."""
    root = WORK / "cpu"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    per_module = 100
    for module in range(max(1, tests // per_module)):
        body = "".join(f"def test_{i}():\n    pass\n" for i in range(per_module))
        (root / f"test_cpu_{module:03d}.py").write_text(body)
    (root / "pytest.ini").write_text("[pytest]\n")
    suite = Suite("cpu", root, [])
    rows = []
    for tag in ("learn", "measured"):
        run_once(suite, "shadowfarm", workers, tag, timeout)
        report = json.loads((WORK / "out" / "cpu" / f"shadowfarm-{tag}.json").read_text())
        event = next(e for e in report["events"] if e.get("event") == "scheduler")
        micro = event["cpu_s"] / event["tests"] * 1e6
        inputs = event.get("inputs_cpu_s", 0.0)
        dispatch = (event["cpu_s"] - inputs) / event["tests"] * 1e6
        rows.append(
            f"  {tag} run: {event['tests']} tests, {event['units']} units, scheduler CPU "
            f"{event['cpu_s'] * 1000:.1f} ms = {micro:.1f} us/test (dispatch {dispatch:.1f} "
            f"us/test; ranking inputs once {inputs * 1000:.1f} ms)"
        )
    rows.insert(0, f"scheduling CPU in the controller ({tests} trivial tests, -n {workers})")
    return rows


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suites",
        default="skewed,example,attrs,pygments,cpu",
        help="comma-separated: skewed, example, attrs, pygments, networkx, cpu, or all",
    )
    parser.add_argument("--runs", type=int, default=3, help="rounds per suite (default 3)")
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per pytest run")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: small and 1 round")
    args = parser.parse_args(argv)
    names = args.suites.split(",")
    if "all" in names:
        names = ["skewed", "example", "attrs", "pygments", "networkx", "cpu"]
    scale, cpu_tests = 1.0, 5000
    if args.quick:
        args.runs, scale, cpu_tests = 1, 0.3, 1000
        if args.suites == parser.get_default("suites"):
            names = ["skewed", "cpu"]
    makers: dict[str, Callable[[], Suite]] = {
        "skewed": lambda: make_skewed(WORK / "skewed", scale),
        "example": make_example,
        "attrs": lambda: make_real("attrs"),
        "pygments": lambda: make_real("pygments"),
        "networkx": lambda: make_real("networkx"),
    }
    unknown = set(names) - {*makers, "cpu"}
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    WORK.mkdir(parents=True, exist_ok=True)
    bytecode = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, PYTHONDONTWRITEBYTECODE={bytecode!r}"
    )
    lines: list[str] = []
    for name in names:
        if name == "cpu":
            continue
        suite = makers[name]()
        rows = table(suite, bench(suite, args.runs, args.workers, args.timeout))
        print("\n".join(rows), flush=True)
        lines += rows
    if "cpu" in names:
        lines += cpu_per_test(cpu_tests, args.workers, args.timeout)
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
