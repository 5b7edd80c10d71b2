"""Plain xdist, shadowfarm farm-off and shadowfarm warm on pinned real suites, at -n 2.

For each suite (built from PyPI by ``_suites.py``, cached), interleaved rounds of

- ``plain``: ``pytest -n 2`` (no shadowfarm);
- ``off``: ``pytest -p shadowfarm -n 2 --sf-farm off``;
- ``warm``: ``pytest -p shadowfarm -n 2`` with a private farm running; before *every*
  run of any mode the benchmark waits until the farm has two warm workers, so no
  warm-up competes with a measured run and every warm run can claim two.

A probe plugin in every worker records per test its outcome and CPU time, the first
test's start and the worker's RSS and gc objects after collection. Printed: median
wall, time to the first test start, per-test CPU, RSS, the ratios, whether every warm
run had all workers warm, the outcome diff (per test, plain vs warm and plain vs off)
and the target ``warm <= plain - 0.6 * plain's time to the first test``.

The pytest-fast package (a resident forkserver) is a direct peer; it is not run here
unless installed (``--fast``), and then only where it can run the suite.

    python benchmarks/bench_real_suites.py                  # attrs, pygments; 3 rounds
    python benchmarks/bench_real_suites.py --suites attrs,pygments,networkx --rounds 5
    python benchmarks/bench_real_suites.py --suites sympy --rounds 2   # sympy.core, slow
    python benchmarks/bench_real_suites.py --quick          # CI smoke: attrs if cached,
                                                            # else a generated suite
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from _pytest_fast import FastDaemon, FastUnfit, available, overlay  # noqa: E402
from _suites import SUITES, build, default_cache, tiny_suite  # noqa: E402

from farm_server import daemon  # noqa: E402
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint  # noqa: E402
from shadowfarm_wire import OWN_PACKAGES  # noqa: E402
from shadowfarm_wire.home import FarmHome  # noqa: E402

PROBE = """
import gc, json, os, time
import pytest

WID = os.environ.get("PYTEST_XDIST_WORKER")
OUT = os.environ.get("BENCH_PROBE_DIR")
S = {"first": None, "cpu": 0.0, "outcomes": {}}

def _rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:"))

def pytest_collection_finish(session):
    S["rss_collected_kb"] = _rss()
    S["objects_collected"] = len(gc.get_objects()) + gc.get_freeze_count()

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if S["first"] is None:
        S["first"] = time.time()
    c = time.process_time()
    try:
        return (yield)
    finally:
        S["cpu"] += time.process_time() - c

def pytest_runtest_logreport(report):
    o = S["outcomes"].get(report.nodeid, "passed")
    if report.failed:
        o = "failed" if report.when == "call" else "error"
    elif report.skipped and o == "passed":
        o = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    S["outcomes"][report.nodeid] = o

def pytest_sessionfinish(session):
    if WID and OUT:
        S["rss_end_kb"] = _rss()
        with open(os.path.join(OUT, WID + ".json"), "w") as fh:
            json.dump(S, fh)
"""
MODES = ("plain", "off", "warm")
RUN_TIMEOUT_S = 1800
WARM_TIMEOUT_S = 900


class Unfit(Exception):
    """The farm will not serve this suite warm (its readiness report says why)."""


@dataclass
class Run:
    mode: str
    wall_s: float
    first_test_s: float
    cpu_per_test_ms: float
    rss_collected_kb: int
    objects_collected: int
    all_warm: bool
    outcomes: dict[str, str] = field(repr=False, default_factory=dict)
    #: workers that ran on the collection their farm worker prepared before the run
    reused: int = 0


def command(mode: str, args: list[str]) -> list[str]:
    # schemathesis, installed here for this repository's own tests, reads a per-run seed
    # from workerinput while configuring: no run could then reuse a prepared collection.
    # The suites do not use it; every arm runs without it.
    base = [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider"]
    base += ["-p", "no:schemathesis"]
    base += ["-p", "bench_probe", *args]
    if mode == "off":
        return [*base, "-p", "shadowfarm", "--sf-farm", "off"]
    if mode == "warm":
        return [*base, "-p", "shadowfarm", "--sf-report-json", "warm-report.json"]
    return base


def run_once(mode: str, tree: Path, args: list[str], env: dict[str, str], work: Path) -> Run:
    probe_dir = work / f"probe-{mode}"
    probe_dir.mkdir(exist_ok=True)
    for old in probe_dir.iterdir():
        old.unlink()
    started = time.time()
    done = subprocess.run(
        command(mode, args),
        cwd=tree,
        env={**env, "BENCH_PROBE_DIR": str(probe_dir)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    wall = time.time() - started
    workers = [json.loads(p.read_text()) for p in sorted(probe_dir.glob("*.json"))]
    if not workers:
        raise SystemExit(
            f"{mode} run left no probe data ({done.returncode}):\n{done.stdout[-3000:]}"
        )
    outcomes: dict[str, str] = {}
    for w in workers:
        outcomes.update(w["outcomes"])
    firsts = [w["first"] for w in workers if w["first"]]
    reused = 0
    if mode == "warm":
        report = json.loads((tree / "warm-report.json").read_text())
        reused = sum(1 for w in report["workers"] if w.get("collection") == "reused")
    return Run(
        mode,
        wall,
        (min(firsts) - started) if firsts else wall,
        1000 * sum(w["cpu"] for w in workers) / max(len(outcomes), 1),
        int(statistics.mean(w.get("rss_collected_kb", 0) for w in workers)),
        int(statistics.mean(w.get("objects_collected", 0) for w in workers)),
        any(line.startswith("farm: 2 warm workers") for line in done.stdout.splitlines()),
        outcomes,
        reused,
    )


def wait_warm(client: FarmClient, tree: Path, count: int = 2) -> dict[str, Any]:
    """The profile of ``tree`` once it has ``count`` warm workers, with their reports."""
    started = time.monotonic()
    while time.monotonic() - started < WARM_TIMEOUT_S:
        status = client.status()
        for profile in status["profiles"]:
            if Path(profile["rootdir"]) != tree:
                continue
            if profile.get("unfit"):
                raise Unfit(f"the farm will not serve {tree} warm: {profile['unfit']}")
            counts = profile["counts"]
            if counts["warm"] >= count and counts["warming"] == 0:
                workers = [w for w in status["workers"] if w["profile"] == profile["key"]]
                return {"profile": profile, "workers": workers}
        time.sleep(0.25)
    raise SystemExit(f"the farm had no {count} warm workers of {tree} after {WARM_TIMEOUT_S}s")


def diff(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(
        f"{k}: {a.get(k, 'absent')} -> {b.get(k, 'absent')}"
        for k in set(a) | set(b)
        if a.get(k) != b.get(k)
    )


def start_fast(
    python: str | None, name: str, tree: Path, args: list[str], env: dict[str, str]
) -> FastDaemon | None:
    """pytest-fast's daemon for the suite, after one untimed run (as the farm's teaching
    run); None when it is not asked for or cannot run the suite (printed)."""
    if python is None:
        return None
    fast = FastDaemon(python)
    try:
        fast.start(tree, ["-p", "no:cacheprovider", *args], env, workers=2)
        fast.run()
    except FastUnfit as exc:
        print(f"  {name}: pytest-fast cannot run it: {exc}", flush=True)
        fast.stop()
        return None
    return fast


def bench_suite(
    name: str,
    tree: Path,
    args: list[str],
    path: list[str],
    rounds: int,
    work: Path,
    extra_env: dict[str, str],
    fast_python: str | None = None,
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "bench_probe.py").write_text(PROBE)
    home = FarmHome(work / "farm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWFARM_")}
    env.update(extra_env)
    env["SHADOWFARM_HOME"] = str(home.root)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(work), *path])
    info, _ = daemon.start(home, env=env)
    runs: list[Run] = []
    warm_rss: list[int] = []
    fast: FastDaemon | None = None
    try:
        client = FarmClient(FarmEndpoint(info.url or "", home.read_token()), timeout=10)
        run_once("off", tree, args, env, work)  # history for the shadow subset
        run_once("warm", tree, args, env, work)  # registers the profile
        wait_warm(client, tree.resolve())
        # The first warm run tells the farm what the run looks like (args, environment):
        # the workers warmed after it collect for the next one before it asks.
        run_once("warm", tree, args, env, work)
        fast = start_fast(fast_python, name, tree, args, env)
        modes = (*MODES, "fast") if fast is not None else MODES
        for i in range(rounds):
            order = modes[i % len(modes) :] + modes[: i % len(modes)]  # none always first
            for mode in order:
                state = wait_warm(client, tree.resolve())
                if mode == "fast" and fast is not None:
                    run = run_fast(fast)
                    if run is None:
                        fast, modes = None, MODES
                        continue
                    runs.append(run)
                    print(
                        f"  {name} round {i + 1} fast  wall {run.wall_s:6.2f}s first test "
                        f"{run.first_test_s:5.2f}s cpu/test {run.cpu_per_test_ms:6.3f}ms",
                        flush=True,
                    )
                    continue
                if mode == "warm":
                    # status shows a worker's readiness report as "ready" (its heap
                    # at hand-off included), not as "report"
                    warm_rss += [
                        rss
                        for w in state["workers"]
                        if w["state"] == "warm"
                        and (rss := ((w.get("ready") or {}).get("heap") or {}).get("rss_kb"))
                    ]
                run = run_once(mode, tree, args, env, work)
                runs.append(run)
                print(
                    f"  {name} round {i + 1} {mode:<5} wall {run.wall_s:6.2f}s first test "
                    f"{run.first_test_s:5.2f}s cpu/test {run.cpu_per_test_ms:6.3f}ms "
                    f"rss {run.rss_collected_kb // 1024}MB all-warm {run.all_warm}"
                    + (f" reused {run.reused}" if mode == "warm" else ""),
                    flush=True,
                )
        warmup_s = state["profile"].get("warmup_s_median")
    finally:
        if fast is not None:
            fast.stop()
        daemon.stop(home)
    return summarize(name, runs, warm_rss, warmup_s)


def run_fast(fast: FastDaemon) -> Run | None:
    """One warm pytest-fast run (its workers carry no probe: no RSS or object figures)."""
    try:
        wall, first, outcomes = fast.run()
    except FastUnfit as exc:
        print(f"  pytest-fast stopped serving: {exc}", flush=True)
        return None
    cpu = 1000 * fast.last_cpu_s / max(len(outcomes), 1)
    return Run("fast", wall, first if first is not None else wall, cpu, 0, 0, True, outcomes)


def summarize(name: str, runs: list[Run], warm_rss: list[int], warmup_s: Any) -> dict[str, Any]:
    def med(mode: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs if r.mode == mode)

    out: dict[str, Any] = {"suite": name, "tests": len(runs[0].outcomes), "warmup_s": warmup_s}
    for attr in (
        "wall_s",
        "first_test_s",
        "cpu_per_test_ms",
        "rss_collected_kb",
        "objects_collected",
    ):
        out[attr] = {m: round(med(m, attr), 3) for m in MODES}
    out["warm_rss_at_claim_kb"] = int(statistics.median(warm_rss)) if warm_rss else None
    out["all_warm"] = all(r.all_warm for r in runs if r.mode == "warm")
    warm_runs = [r for r in runs if r.mode == "warm"]
    out["reused"] = f"{sum(r.reused for r in warm_runs)}/{2 * len(warm_runs)}"
    first = {m: next(r for r in runs if r.mode == m).outcomes for m in MODES}
    out["diff_warm"] = sorted(
        {d for r in runs if r.mode == "warm" for d in diff(first["plain"], r.outcomes)}
    )
    out["diff_off"] = sorted(
        {d for r in runs if r.mode == "off" for d in diff(first["plain"], r.outcomes)}
    )
    wall, ft = out["wall_s"], out["first_test_s"]
    out["target_s"] = round(wall["plain"] - 0.6 * ft["plain"], 3)
    fast = [r for r in runs if r.mode == "fast"]
    if fast:
        out["fast"] = {
            "runs": len(fast),
            "wall_s": round(med("fast", "wall_s"), 3),
            "first_test_s": round(med("fast", "first_test_s"), 3),
            "cpu_per_test_ms": round(med("fast", "cpu_per_test_ms"), 3),
            "diff": sorted({d for r in fast for d in diff(first["plain"], r.outcomes)}),
        }
    out["met"] = {
        "outcomes": not out["diff_warm"],
        "warm<=target": wall["warm"] <= out["target_s"],
        "warm<=off": wall["warm"] <= wall["off"],
        "all_warm": out["all_warm"],
    }
    return out


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| suite | tests | plain wall | off wall | warm wall | warm/plain | warm/off | off/plain "
        "| first test plain/off/warm | cpu/test ms plain/off/warm "
        "| RSS MB plain/warm (warm at claim) "
        "| target (plain - 0.6 first) | all warm | collections reused "
        "| outcome diffs warm/off | warm-up s |"
    )
    lines = [head, "|" + "---|" * 16]
    for r in results:
        w, f, c, m = r["wall_s"], r["first_test_s"], r["cpu_per_test_ms"], r["rss_collected_kb"]
        claim = r["warm_rss_at_claim_kb"]
        lines.append(
            f"| {r['suite']} | {r['tests']} | {w['plain']:.2f} | {w['off']:.2f} | {w['warm']:.2f} "
            f"| {w['warm'] / w['plain']:.3f} | {w['warm'] / w['off']:.3f} "
            f"| {w['off'] / w['plain']:.3f} "
            f"| {f['plain']:.2f}/{f['off']:.2f}/{f['warm']:.2f} "
            f"| {c['plain']:.3f}/{c['off']:.3f}/{c['warm']:.3f} "
            f"| {m['plain'] / 1024:.0f}/{m['warm'] / 1024:.0f} ({(claim or 0) / 1024:.0f}) "
            f"| {r['target_s']:.2f} | {r['all_warm']} | {r['reused']} "
            f"| {len(r['diff_warm'])}/{len(r['diff_off'])} "
            f"| {r['warmup_s']} |"
        )
    fast = [r for r in results if r.get("fast")]
    if fast:
        lines += [
            "",
            "| suite | pytest-fast wall | fast/plain | fast/warm | first test fast/warm "
            "| cpu/test ms fast/warm | outcome diffs fast vs plain |",
            "|" + "---|" * 7,
        ]
    for r in fast:
        f, w = r["fast"], r["wall_s"]
        lines.append(
            f"| {r['suite']} | {f['wall_s']:.2f} | {f['wall_s'] / w['plain']:.3f} "
            f"| {f['wall_s'] / w['warm']:.3f} "
            f"| {f['first_test_s']:.2f}/{r['first_test_s']['warm']:.2f} "
            f"| {f['cpu_per_test_ms']:.3f}/{r['cpu_per_test_ms']['warm']:.3f} | {len(f['diff'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suites", default="attrs,pygments", help="comma-separated: " + ",".join(SUITES)
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--cache", type=Path, default=None, help="where builds are kept")
    parser.add_argument("--quick", action="store_true", help="CI smoke: one small suite, one round")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="also run pytest-fast's warm daemon (builds an overlay venv with it in the cache)",
    )
    args = parser.parse_args(argv)
    cache = args.cache or default_cache()
    fast_python = None
    if args.fast:
        try:
            fast_python = overlay(cache)
        except FastUnfit as exc:
            print(f"pytest-fast: {exc}")
        reason = available(fast_python) if fast_python else ""
        if reason:
            print(f"pytest-fast: {reason}")
            fast_python = None
    # The plugin as a user installs it: pip compiles a wheel's modules at install time;
    # this checkout may have none (PYTHONDONTWRITEBYTECODE), and each run would compile
    # them again (70 ms in the controller and in every worker).
    for package in sorted(OWN_PACKAGES):
        compileall.compile_dir(REPO / package, quiet=1)
    rounds = 1 if args.quick else args.rounds
    names = ["attrs"] if args.quick else [n.strip() for n in args.suites.split(",") if n.strip()]
    bytecode = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "unset"
    print(
        f"-n 2 on {os.cpu_count()} CPUs, 1-min load {os.getloadavg()[0]:.1f}, "
        f"PYTHONDONTWRITEBYTECODE={bytecode}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="sf-bench-real-") as tmp:
        for name in names:
            suite = SUITES[name]
            if args.quick and not (cache / suite.requirement.replace("==", "-")).is_dir():
                print("quick: attrs is not cached (a build needs pip); a generated suite instead")
                root, pargs, path = tiny_suite(Path(tmp) / "tiny")
                results.append(
                    bench_suite("tiny", root, pargs, path, rounds, Path(tmp) / "w-tiny", {})
                )
                continue
            tree = build(suite, cache)
            if isinstance(tree, str):
                print(f"skipped: {tree}")
                continue
            work = Path(tmp) / f"w-{name}"
            work.mkdir()
            try:
                result = bench_suite(
                    name,
                    tree.resolve(),
                    suite.args(tree),
                    [
                        *suite.pythonpath(tree),
                        *([str(suite.deps_dir(cache))] if suite.deps else []),
                    ],
                    rounds,
                    work,
                    suite.env,
                    fast_python,
                )
            except Unfit as exc:  # a finding, not a crash: the other suites still run
                print(f"  {name}: {exc}", flush=True)
                continue
            results.append(result)
    if not results:
        return 0
    print()
    print(table(results))
    for r in results:
        for kind in ("diff_warm", "diff_off"):
            for line in r[kind][:20]:
                print(f"  {r['suite']} {kind}: {line}")
        for line in (r.get("fast") or {}).get("diff", [])[:20]:
            print(f"  {r['suite']} diff_fast: {line}")
        print(f"  {r['suite']} targets: {r['met']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
