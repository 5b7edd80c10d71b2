"""Time to first failure and APFD of shadowfarm's order against other orders.

On a copy of ``example_project`` made into a temporary git repository, with faults
planted through ``EXAMPLE_FAULTS`` (see example_project/README.md), each scenario runs
the suite in one process under four strategies:

- ``collection``: pytest's collection order;
- ``--ff``: pytest's failed-first (cacheprovider), with the same previous runs;
- ``random``: a seeded shuffle (``benchmarks/shuffle_order.py``, seed = repetition);
- ``shadowfarm``: ``--sf-order grouped`` (the default).

Scenarios: ``changed`` (bug=pricing, and ``src/shopkit/pricing.py`` edited in the working
tree so git sees it changed), ``recent`` (a test that failed in the previous run fails
again), ``new`` (a new test, failing), ``critical`` (a fault in a test marked critical).

Every strategy runs with ``-p shadowfarm`` (``--sf-order none`` except for shadowfarm),
so that each run writes the same run report and carries the same plugin overhead. Before
the scenarios, clean learning runs teach the history; each measured run starts from a
copy of the same history and pytest cache, so strategies and repetitions do not feed
each other.

Measures, per run: TTFF (seconds from session start until the first failure is
reported; that time as a share of the session's wall time, and as a share of the test
phase, i.e. both counted from the first test's start, which leaves out collection (here
~2-5 s of importing SciPy, the same for every order); and the 1-based position of the
first failing test in the run order), APFD over the failing tests (each failing test
counted as one fault: ``1 - sum(positions) / (n * m) + 1 / (2n)``), the session's wall
time and the pytest process's CPU time (on a loaded machine the CPU time is the steadier
measure of how much work an order costs).
Medians over repetitions; ratios against collection order measured in the same run.

    python benchmarks/bench_priority.py                 # 4 scenarios, 3 repetitions
    python benchmarks/bench_priority.py --reps 1        # one repetition
    python benchmarks/bench_priority.py --quick         # CI smoke: 1 scenario, 1 repetition
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import pytest_command, timed_run

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "example_project"

STRATEGIES = ("collection", "--ff", "random", "shadowfarm")


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: str
    #: file (relative to the project) edited after the learning runs, if any
    touch: str | None = None
    #: run once with the faults before the measured runs ("failed recently")
    prime: bool = False


SCENARIOS = (
    Scenario("changed", "bug=pricing", touch="src/shopkit/pricing.py"),
    Scenario("recent", "fail=test_tax.py::test_yearly_vat_return", prime=True),
    Scenario("new", "new"),
    Scenario("critical", "fail=test_checkout_total_is_net_plus_tax_plus_shipping"),
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class Measure:
    ttff_s: float | None
    ttff_share: float | None
    #: share of the test phase (from the first test's start to the end)
    ttff_test_share: float | None
    first_position: int | None
    apfd: float | None
    wall_s: float
    #: CPU seconds of the pytest process: less sensitive to a loaded machine than wall
    cpu_s: float
    failures: int
    tests: int


def apfd(positions: Sequence[int], n: int) -> float | None:
    """APFD with each failing test as one fault (positions 1-based)."""
    if not positions or n == 0:
        return None
    return 1 - sum(positions) / (n * len(positions)) + 1 / (2 * n)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, **GIT_ENV},
    )


def make_repo(root: Path) -> Path:
    """example_project copied into ``root/project``, committed on main with a clean tree."""
    project = root / "project"
    shutil.copytree(
        EXAMPLE,
        project,
        ignore=shutil.ignore_patterns(".shadowfarm", ".pytest_cache", "__pycache__", "*.pyc"),
    )
    (project / ".gitignore").write_text(".shadowfarm/\n.pytest_cache/\n__pycache__/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "example project")
    return project


@dataclass
class State:
    """A history file and a pytest cache directory, copied for each measured run."""

    directory: Path

    @property
    def history(self) -> Path:
        return self.directory / "history.sqlite"

    @property
    def cache(self) -> Path:
        return self.directory / "pytest-cache"

    def copy_to(self, other: Path) -> State:
        if other.exists():
            shutil.rmtree(other)
        shutil.copytree(self.directory, other)
        return State(other)


def run_pytest(
    project: Path, state: State, report: Path, *args: str, faults: str = "", seed: int = 0
) -> tuple[dict, float]:
    """Run pytest once; the run report and the CPU seconds the process used."""
    env = {
        **os.environ,
        "EXAMPLE_FAULTS": faults,
        "SHUFFLE_SEED": str(seed),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",
        **GIT_ENV,
    }
    env.pop("PYTEST_ADDOPTS", None)
    cmd = pytest_command(
        "-p",
        "shadowfarm",
        # "--opt=value": a plugin option's separate value that names an existing file is
        # taken for a test path by pytest's early rootdir search, which then misses
        # example_project's pyproject.toml (and its pythonpath).
        f"--sf-history={state.history}",
        f"--sf-report-json={report}",
        "-o",
        f"cache_dir={state.cache}",
        *args,
    )
    run = timed_run(cmd, cwd=project, env=env)
    done = run.done
    if done.returncode not in (0, 1) or not report.is_file():
        tail = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        sys.exit(f"pytest failed ({done.returncode}):\n{tail}")
    return json.loads(report.read_text()), run.cpu_s


def measure(report: dict, cpu_s: float) -> Measure:
    tests = sorted(report["tests"], key=lambda t: t["order"])
    failing = [i + 1 for i, t in enumerate(tests) if t["outcome"] in ("failed", "error")]
    wall = report["wall_s"]
    t0 = min((t["start_s"] for t in tests if t["start_s"] is not None), default=0.0)
    ttff = report.get("first_failure_s")
    return Measure(
        ttff_s=ttff,
        ttff_share=None if ttff is None else ttff / wall,
        ttff_test_share=None if ttff is None else (ttff - t0) / max(wall - t0, 1e-9),
        first_position=failing[0] if failing else None,
        apfd=apfd(failing, len(tests)),
        wall_s=wall,
        cpu_s=cpu_s,
        failures=len(failing),
        tests=len(tests),
    )


STRATEGY_ARGS = {
    "collection": ("--sf-order", "none"),
    "--ff": ("--sf-order", "none", "--ff"),
    "random": ("--sf-order", "none", "-p", "shuffle_order"),
    "shadowfarm": ("--sf-order", "grouped"),
}


def median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per strategy")
    parser.add_argument("--learning-runs", type=int, default=2)
    parser.add_argument(
        "--scenarios", default=",".join(s.name for s in SCENARIOS), help="comma-separated names"
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke: 1 scenario, 1 rep")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if s.name in args.scenarios.split(",")]
    if args.quick:
        chosen, args.reps, args.learning_runs = [SCENARIOS[1]], 1, 1
    root = Path(tempfile.mkdtemp(prefix="sf-bench-priority-"))
    try:
        project = make_repo(root)
        base = State(root / "state-learned")
        base.directory.mkdir()
        print(f"example_project copy: {project}; {args.learning_runs} learning runs…", flush=True)
        for _ in range(args.learning_runs):
            run_pytest(project, base, root / "learn.json", "--sf-order", "none")
        results: dict[tuple[str, str], list[Measure]] = {}
        for scenario in chosen:
            start = base
            if scenario.prime:
                start = base.copy_to(root / "state-primed")
                prime = root / "prime.json"
                run_pytest(project, start, prime, "--sf-order", "none", faults=scenario.faults)
            touched = project / scenario.touch if scenario.touch else None
            if touched is not None:
                with touched.open("a") as fh:
                    fh.write("\n# edited for the benchmark\n")
            for rep in range(args.reps):
                for strategy in STRATEGIES:  # interleaved: load drift hits all alike
                    state = start.copy_to(root / "state-run")
                    report, cpu = run_pytest(
                        project,
                        state,
                        root / "run.json",
                        *STRATEGY_ARGS[strategy],
                        faults=scenario.faults,
                        seed=rep,
                    )
                    m = measure(report, cpu)
                    results.setdefault((scenario.name, strategy), []).append(m)
                    print(
                        f"  {scenario.name:9} {strategy:10} rep {rep + 1}: "
                        f"TTFF {fmt(m.ttff_s, '.2f')}s (#{m.first_position}), "
                        f"APFD {fmt(m.apfd, '.3f')}, wall {m.wall_s:.2f}s, cpu {m.cpu_s:.2f}s, "
                        f"{m.failures} failing of {m.tests}",
                        flush=True,
                    )
            if touched is not None:
                git(project, "checkout", "--", scenario.touch or "")
        print_table(chosen, results, args.reps)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def print_table(
    scenarios: Sequence[Scenario], results: dict[tuple[str, str], list[Measure]], reps: int
) -> None:
    print()
    print(f"medians of {reps} repetition(s); ratios against collection order in the same run")
    header = (
        f"{'scenario':9} {'strategy':10} {'TTFF s':>7} {'TTFF %':>7} {'% tests':>7} {'pos':>5} "
        f"{'APFD':>6} {'wall s':>7} {'cpu s':>7} {'TTFF/coll':>9} {'wall/coll':>9} {'cpu/coll':>8}"
    )
    print(header)
    print("-" * len(header))
    for scenario in scenarios:
        base = results[(scenario.name, "collection")]
        base_ttff = median([m.ttff_s for m in base])
        base_wall = median([m.wall_s for m in base])
        base_cpu = median([m.cpu_s for m in base])
        for strategy in STRATEGIES:
            ms = results[(scenario.name, strategy)]
            ttff = median([m.ttff_s for m in ms])
            share = median([m.ttff_share for m in ms])
            test_share = median([m.ttff_test_share for m in ms])
            pos = median([m.first_position for m in ms])
            value = median([m.apfd for m in ms])
            wall = median([m.wall_s for m in ms])
            cpu = median([m.cpu_s for m in ms])
            ttff_ratio = ttff / base_ttff if ttff is not None and base_ttff else None
            wall_ratio = wall / base_wall if wall is not None and base_wall else None
            cpu_ratio = cpu / base_cpu if cpu is not None and base_cpu else None
            print(
                f"{scenario.name:9} {strategy:10} {fmt(ttff, '7.2f')} "
                f"{fmt(None if share is None else share * 100, '6.1f')}% "
                f"{fmt(None if test_share is None else test_share * 100, '6.1f')}% "
                f"{fmt(pos, '5.0f')} "
                f"{fmt(value, '6.3f')} {fmt(wall, '7.2f')} {fmt(cpu, '7.2f')} "
                f"{fmt(ttff_ratio, '9.2f')} {fmt(wall_ratio, '9.3f')} {fmt(cpu_ratio, '8.3f')}"
            )
    collection_apfd = median([m.apfd for s in scenarios for m in results[(s.name, "collection")]])
    print(f"collection order, APFD median over scenarios: {fmt(collection_apfd, '.3f')}")


if __name__ == "__main__":
    raise SystemExit(main())
