"""Worker health under a memory limit: plain xdist vs shadowfarm with the health monitor.

    python benchmarks/bench_health.py            # the grid (a few minutes)
    python benchmarks/bench_health.py --quick    # a CI smoke run (small suites, one cell)
    python benchmarks/bench_health.py --record DIR   # per-worker RSS series, no cgroup

Two generated suites run at ``-n N`` inside a memory cgroup (``_cgroup.py``; needs root):

* **leaking**: ``--tests`` tests (150) that each append 6-18 MiB to a module-level list
  (about 1.8 GB in all at 150): a worker grows until the kernel OOM-kills it. xdist
  reports the test it was running as crashed and starts a new worker
  (pytest-xdist#363 asks for recycling before that; #658: an OOM can hang the run).
* **healthy**: modules that each keep 25 MiB from import (each worker imports all of
  them when it collects), tests that allocate and free 6 MiB: large but stable. As many
  modules as make about 72% of the limit at peak (:func:`healthy_modules`: 6 for 600 MiB
  on 2 workers). Nothing should be replaced here.

The default grid: leaks of 6-18 and 2-6 MiB per test x limits of 600 and 1000 MiB x
``-n`` 2 and 3 (the issue's cell is 6-18 MiB, 600 MiB, ``-n 2``).

For each cell it prints OOM kills (the cgroup's counter), tests lost (collected minus
passed, from the JUnit XML), replacements, lead time and wall. The shadowfarm column
(``-p shadowfarm --sf-health on``) says "not integrated yet" while the plugin has no
``--sf-health`` option. Figures only: nothing here asserts a wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from _cgroup import CgroupError, memory_cgroup

if TYPE_CHECKING:
    from _health_replay import ReplayResult

__all__ = ["Outcome", "has_health_option", "healthy_modules", "run_cell", "write_suite"]

MIB = 1 << 20
#: the pytest plugin that records each process's RSS after each test (the suites' conftest)
RECORDER = Path(__file__).with_name("_rss_recorder.py")
#: a test's sleep: long enough that a replacement (about 1-2 s to start) can be ready
#: before a leaking worker dies, as with real tests that do some work
TEST_SLEEP_S = 0.1
#: a new worker's start-up the monitor is told in the replay (xdist popen, this host)
STARTUP_S = 1.5


#: what the healthy suite's arithmetic assumes: a worker before it keeps anything (with
#: the 6 MiB a test holds), and the controller (measured: ~35 + 6 and ~43 MiB)
WORKER_BASE_MIB = 41
CONTROLLER_MIB = 45


def healthy_modules(limit_mib: int, workers: int, *, peak_share: float = 0.72) -> int:
    """Modules of 25 MiB each that bring ``workers`` workers to ``peak_share`` of the limit."""
    room = peak_share * limit_mib - CONTROLLER_MIB - workers * WORKER_BASE_MIB
    return max(1, round(room / (workers * 25)))


def write_suite(
    root: Path,
    kind: str,
    *,
    tests: int,
    leak_mib: tuple[int, int] = (6, 18),
    modules: int = 6,
    seed: int = 17,
) -> int:
    """Write the ``leaking`` or ``healthy`` suite (``modules`` of them) under ``root``;
    return how many tests."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RECORDER, root / "conftest.py")
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider -p no:randomly\n")
    if kind == "leaking":
        per_module = 10
        modules = (tests + per_module - 1) // per_module
        header = "import time\n\n_KEPT = []\n"
    elif kind == "healthy":
        per_module = (tests + modules - 1) // modules
        header = "import time\n\n_KEPT = [b'k' * (25 << 20)]  # 25 MiB kept from import on\n"
    else:
        msg = f"unknown suite kind {kind!r} (leaking or healthy)"
        raise ValueError(msg)
    written = 0
    for m in range(modules):
        body = [header]
        for t in range(min(per_module, tests - written)):
            if kind == "leaking":
                mib = rng.randint(*leak_mib)
                line = f"    _KEPT.append(b'x' * ({mib} << 20))"
            else:
                line = "    buf = b'x' * (6 << 20)  # freed at return\n    assert buf[-1] == 120"
            body.append(f"\ndef test_{t:03d}():\n{line}\n    time.sleep({TEST_SLEEP_S})\n")
            written += 1
        (root / f"test_{kind}_{m:02d}.py").write_text("".join(body))
    return written


@dataclass
class Outcome:
    """One run of one suite under one limit."""

    label: str
    collected: int
    passed: int
    crashed: int
    oom_kills: int | None
    wall_s: float
    peak_mib: float | None
    replacements: int | None = None
    lead_tests: list[float] | None = None
    note: str = ""
    #: plain runs: what the health monitor would have said, replayed on the recorded RSS
    replay: ReplayResult | str | None = None

    @property
    def lost(self) -> int:
        return self.collected - self.passed


def has_health_option(python: str = sys.executable) -> bool:
    """Whether this checkout's plugin has ``--sf-health`` (it is wired in after this harness)."""
    done = subprocess.run(
        [python, "-m", "pytest", "-p", "shadowfarm", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return "--sf-health" in done.stdout


def _junit_counts(path: Path) -> tuple[int, set[str], int]:
    """(passed, crashed workers, crashed tests) in a JUnit XML file; nothing when absent."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return 0, set(), 0
    passed = crashed = 0
    workers: set[str] = set()
    for case in tree.iter("testcase"):
        bad = [c for c in case if c.tag in ("failure", "error", "skipped")]
        if not bad:
            passed += 1
            continue
        text = " ".join((c.get("message") or "") + (c.text or "") for c in bad)
        match = re.search(r"worker '(gw\d+)' crashed", text)
        if match:
            crashed += 1
            workers.add(match.group(1))
    return passed, workers, crashed


def _health_report(path: Path) -> tuple[int | None, list[float] | None]:
    """replacements and lead times from the run report's ``health`` object, if any."""
    try:
        health = json.loads(path.read_text()).get("health") or {}
    except (OSError, ValueError, AttributeError):
        return None, None
    leads = [p.get("lead_tests") for p in health.get("replaced", []) if "lead_tests" in p]
    return health.get("replacements"), [float(x) for x in leads if isinstance(x, int | float)]


def run_cell(
    suite: Path,
    collected: int,
    *,
    workers: int,
    limit_bytes: int | None,
    shadowfarm: bool,
    timeout_s: float,
    python: str = sys.executable,
) -> Outcome:
    """Run ``suite`` once at ``-n workers`` in a fresh cgroup of ``limit_bytes`` (None: none)."""
    out = Path(tempfile.mkdtemp(prefix="bench-health-"))
    junit = out / "junit.xml"
    cmd = [python, "-m", "pytest", "-q", "-n", str(workers), "-p", "xdist", f"--junitxml={junit}"]
    if shadowfarm:
        cmd += ["-p", "shadowfarm", "--sf-health", "on", f"--sf-report-json={out / 'run.json'}"]
    else:
        cmd += ["-p", "no:shadowfarm"]
    rss_dir = out / "rss"
    rss_dir.mkdir()
    env = {**os.environ, "SF_RSS_DIR": str(rss_dir)}
    note = ""
    kills: int | None = None
    peak: int | None = None
    start = time.perf_counter()
    try:
        if limit_bytes is None:
            subprocess.run(
                cmd, cwd=suite, env=env, capture_output=True, check=False, timeout=timeout_s
            )
        else:
            with memory_cgroup(limit_bytes) as group:
                try:
                    group.run(cmd, cwd=suite, env=env, timeout=timeout_s)
                finally:
                    kills, peak = group.oom_kills(), group.peak_bytes()
    except subprocess.TimeoutExpired:
        note = f"timed out after {timeout_s:.0f} s (an OOM can hang xdist: pytest-xdist#658)"
    wall = time.perf_counter() - start
    passed, crashed_workers, crashed = _junit_counts(junit)
    label = "shadowfarm --sf-health on" if shadowfarm else "plain xdist"
    peak_mib = peak / MIB if peak else None
    outcome = Outcome(label, collected, passed, crashed, kills, wall, peak_mib, note=note)
    if shadowfarm:
        outcome.replacements, outcome.lead_tests = _health_report(out / "run.json")
    elif limit_bytes is not None:
        outcome.replay = _replay(rss_dir, limit_bytes, crashed_workers)
    shutil.rmtree(out, ignore_errors=True)
    return outcome


def _replay(rss_dir: Path, limit_bytes: int, crashed: set[str]) -> ReplayResult | str:
    """The monitor replayed over a plain run's RSS files (a string: why it could not be)."""
    try:
        from _health_replay import replay_run
    except ImportError as exc:  # the plugin on sys.path predates pytest_shadowfarm.workers
        return f"no replay ({exc})"
    return replay_run(rss_dir, limit_bytes=limit_bytes, crashed=crashed, startup_s=STARTUP_S)


def _replay_line(result: ReplayResult | str) -> str:
    if isinstance(result, str):
        return result
    leads = [result.leads[w] for w in sorted(result.leads)]
    missed = sum(1 for lead in leads if lead is None)
    shown = ",".join("-" if lead is None else str(lead) for lead in leads)
    secs = ",".join(f"{s:.1f}" for s in result.lead_s.values() if s is not None) or "-"
    alarms = f"swaps of workers that finished: {len(result.false_alarms)}"
    if not leads:
        return f"monitor replay: no OOM kill to warn of; {alarms}"
    return (
        f"monitor replay: warned {shown} tests ({secs} s) before each OOM kill,"
        f" missed {missed}; {alarms}"
    )


def _print(suite: str, limit_mib: int, workers: int, leak: str, outcome: Outcome | str) -> None:
    cell = f"{suite:8} {limit_mib:5} MiB  -n {workers}  leak {leak:6}"
    if isinstance(outcome, str):
        print(f"{cell}  shadowfarm --sf-health on: {outcome}")
        return
    o = outcome
    replaced = "-" if o.replacements is None else str(o.replacements)
    lead = "-" if not o.lead_tests else f"{min(o.lead_tests):.0f}-{max(o.lead_tests):.0f} tests"
    print(
        f"{cell}  {o.label:26} oom_kills={o.oom_kills} lost={o.lost}/{o.collected}"
        f" (crashed {o.crashed}) replacements={replaced}"
        f" lead={lead} wall={o.wall_s:.1f}s"
        + (f" peak={o.peak_mib:.0f}MiB" if o.peak_mib else "")
        + (f"  [{o.note}]" if o.note else "")
        + (f"\n{'':44}{_replay_line(o.replay)}" if o.replay is not None else ""),
        flush=True,
    )


def _record(out: Path, tests: int, workers: int) -> None:
    """Per-worker RSS series of both suites, no cgroup (unit-test fixtures)."""
    for kind in ("leaking", "healthy"):
        suite = Path(tempfile.mkdtemp(prefix=f"suite-{kind}-"))
        write_suite(suite, kind, tests=tests)
        target = out / kind
        target.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pytest", "-q", "-n", str(workers), "-p", "xdist"]
        subprocess.run(
            [*cmd, "-p", "no:shadowfarm"],
            cwd=suite,
            env={**_env(), "SF_RSS_DIR": str(target)},
            capture_output=True,
            check=False,
            timeout=600,
        )
        print(f"{kind}: {sorted(p.name for p in target.iterdir())}")


def _env() -> dict[str, str]:
    return dict(os.environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small cell (CI smoke)")
    parser.add_argument("--tests", type=int, default=150)
    parser.add_argument("--limits", default="600,1000", help="MiB, comma-separated")
    parser.add_argument("--workers", default="2,3", help="-n values, comma-separated")
    parser.add_argument("--leaks", default="6-18,2-6", help="MiB per test LO-HI, comma-separated")
    parser.add_argument("--suites", default="leaking,healthy")
    parser.add_argument("--timeout", type=float, default=300.0, help="per run, seconds")
    parser.add_argument("--record", type=Path, help="record RSS series into DIR and stop")
    args = parser.parse_args(argv)
    if args.record:
        _record(args.record, args.tests, 2)
        return 0
    if args.quick:
        args.tests, args.limits, args.workers, args.leaks = 60, "600", "2", "6-18"
    limits = [int(x) for x in args.limits.split(",")]
    counts = [int(x) for x in args.workers.split(",")]
    leaks = [tuple(int(v) for v in x.split("-")) for x in args.leaks.split(",")]
    integrated = has_health_option()
    print(f"bench_health: {args.tests} tests per suite; shadowfarm health integrated: {integrated}")
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        cells = [
            (kind, leak, limit, n)
            for kind in args.suites.split(",")
            for leak in (leaks if kind == "leaking" else [(0, 0)])
            for limit in limits
            for n in counts
        ]
        for i, (kind, leak, limit, n) in enumerate(cells):
            suite = Path(tmp) / f"suite{i}"
            lo, hi = leak
            collected = write_suite(
                suite,
                kind,
                tests=args.tests,
                leak_mib=(lo, hi) if hi else (6, 18),
                modules=healthy_modules(limit, n),
            )
            label = f"{lo}-{hi}" if hi else "-"
            try:
                for shadowfarm in (False, True):
                    if shadowfarm and not integrated:
                        _print(kind, limit, n, label, "not integrated yet")
                        continue
                    outcome = run_cell(
                        suite,
                        collected,
                        workers=n,
                        limit_bytes=limit * MIB,
                        shadowfarm=shadowfarm,
                        timeout_s=args.timeout,
                    )
                    _print(kind, limit, n, label, outcome)
            except CgroupError as exc:
                print(f"bench_health: {exc}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
