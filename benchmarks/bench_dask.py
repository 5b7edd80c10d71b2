"""The local farm against the Dask farm on one machine, and the controller's cost per test.

A generated suite of trivial tests (what is measured is the farm, not the tests) runs
from a fresh pytest process each time, in rounds that interleave the modes, so that the
machine's load drifts over all of them alike; figures are medians over the rounds:

- ``farm``: warm workers of the local farm (a private daemon, like bench_farm.py) at
  ``-n 2``: the baseline;
- ``dask N=k``: ``-n k`` through ``--sf-farm dask://`` on one Dask cluster in this box
  (a scheduler and ``max(N)`` Dask workers, each with its own directory); each of the k
  xdist workers is hosted by its own Dask worker, warm (the hosts warm the next run's
  workers after a run) and with the project already shipped (same content hash).

The first run of each mode is not in the medians: it registers the profile with the
farm, and on the cluster it ships the project and starts the hosted workers cold; it
is printed as ``first``.

Per run: time to the first test result from the process start; overhead per test
((wall - first result) / tests: the tests do nothing); the controller's own CPU per test
after its first result (``RUSAGE_SELF``: its threads, the relay's included; not its
workers); the median gap between two xdist nodes' set-ups (xdist sets them up one after
another: hand-off and ``xdist.remote`` started); the claim's seconds (the run report's
``farm_claim`` events: connect, check, ship, start or take the workers); the Dask
scheduler's CPU per run (from /proc: it is asked at the claim, never per test) and the
relay's bytes per test (the ``dask_relay`` event). Ratios are against ``farm`` and
``dask N=2`` of the same rounds. Nothing is asserted: on a busy machine the figures move.

    python benchmarks/bench_dask.py            # 5 rounds; N = 2, 4, 8
    python benchmarks/bench_dask.py --quick    # CI smoke: 2 rounds, N = 2, small suite
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from _common import pytest_command, timed_run  # noqa: E402
from bench_farm import TTFR_PLUGIN, wait_warm  # noqa: E402

from tests.dasktools import DaskCluster, dask_available  # noqa: E402

#: the controller's CPU at its first test result and at its end (not in its workers)
CPU_PLUGIN = """
import json, os, resource

_first = []

def _cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime

def pytest_runtest_logreport(report):
    if not _first and not os.environ.get("PYTEST_XDIST_WORKER"):
        _first.append(_cpu())

def pytest_unconfigure(config):
    path = os.environ.get("BENCH_CPU_FILE")
    if path and not os.environ.get("PYTEST_XDIST_WORKER"):
        with open(path, "w") as fh:
            json.dump({"cpu_s": _cpu(), "first_cpu_s": (_first or [0.0])[0]}, fh)
"""
WARM_TIMEOUT_S = 180.0
KEYS = ("ttfr_s", "claim_s", "node_s", "overhead_ms", "ctl_cpu_ms", "relay_kb", "sched_cpu_ms")
LABELS = {
    "ttfr_s": "first result s",
    "claim_s": "of it claim s",
    "node_s": "node set-up s",
    "overhead_ms": "overhead ms/test",
    "ctl_cpu_ms": "controller CPU ms/test",
    "sched_cpu_ms": "scheduler CPU ms/run",
    "relay_kb": "relay kB/test",
}


def make_suite(root: Path, files: int, per_file: int) -> Path:
    """Trivial tests, and the two bench plugins inside the project: shipped with it, so a
    hosted worker imports them as a local one does (``-p bench_ttfr``)."""
    project = root / "suite"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "bench_ttfr.py").write_text(TTFR_PLUGIN)
    (project / "bench_cpu.py").write_text(CPU_PLUGIN)
    body = "".join(f"def test_{i}():\n    pass\n\n" for i in range(per_file))
    for f in range(files):
        (project / "tests" / f"test_s{f}.py").write_text(body)
    return project


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(
    project: Path, work: Path, farm: str, workers: int, env: dict[str, str], scheduler: int = 0
) -> dict[str, Any]:
    marker, cpu, report_path = work / "ttfr.txt", work / "cpu.json", work / "r.json"
    for path in (marker, cpu, report_path, work / "ttfr.txt.session", work / "ttfr.txt.worker"):
        path.unlink(missing_ok=True)
    run_env = {
        **env,
        "BENCH_TTFR_FILE": str(marker),
        "BENCH_CPU_FILE": str(cpu),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")])),
    }
    cmd = pytest_command(
        "-p", "shadowfarm", "-p", "bench_ttfr", "-p", "bench_cpu", "-n", str(workers),
        "-p", "no:cacheprovider", "--sf-farm", farm, f"--sf-report-json={report_path}",
    )  # fmt: skip
    sched_before = proc_cpu_s(scheduler) if scheduler else 0.0
    started = time.time()
    timed = timed_run(cmd, cwd=project, env=run_env, timeout=600)
    sched_s = proc_cpu_s(scheduler) - sched_before if scheduler else 0.0
    if timed.done.returncode != 0 or not marker.exists():
        raise SystemExit(f"{farm} run failed:\n{timed.done.stdout[-3000:]}")
    report = json.loads(report_path.read_text())
    tests = len(report["tests"])
    first = float(marker.read_text()) - started
    ctl = json.loads(cpu.read_text())
    claims = [e for e in report["events"] if e["event"] == "farm_claim"]
    relay = next((e for e in report["events"] if e["event"] == "dask_relay"), {})
    engines = sorted({w.get("engine", "local") for w in report["workers"]})
    return {
        "ttfr_s": first,
        "wall_s": timed.wall_s,
        "overhead_ms": 1000 * (timed.wall_s - first) / tests,
        "ctl_cpu_ms": 1000 * (ctl["cpu_s"] - ctl["first_cpu_s"]) / max(tests - 1, 1),
        "sched_cpu_ms": 1000 * sched_s,
        "claim_s": sum(e.get("seconds", 0.0) for e in claims),
        "node_s": node_setup_s(report["workers"]),
        "relay_kb": (relay.get("bytes_in", 0) + relay.get("bytes_out", 0)) / 1000 / tests,
        "tests": tests,
        "warm": sum(bool(w["warm"]) for w in report["workers"]),
        "workers": len(report["workers"]),
        "engines": engines,
    }


def node_setup_s(workers: list[dict[str, Any]]) -> float:
    """xdist sets its nodes up one after another: the median gap between two joining."""
    joined = sorted(w["joined_s"] for w in workers)
    gaps = [b - a for a, b in itertools.pairwise(joined)]
    return statistics.median(gaps) if gaps else 0.0


def hosts_warm(address: str, count: int) -> float:
    """Seconds until the Dask workers a ``-n count`` claim takes (the first ``count`` by
    address: the claim deals workers out in that order) each hold a warm, unclaimed one."""
    from distributed import Client

    def idle_ready(dask_worker: Any = None) -> int:
        plugin = dask_worker.plugins.get("shadowfarm-host")
        hosted = getattr(plugin, "hosted", {}).values()
        return sum(1 for h in hosted if h.secret is None and h.ready.is_set() and not h.error)

    started = time.monotonic()
    with Client(address, timeout=30, set_as_default=False) as client:
        while time.monotonic() - started < WARM_TIMEOUT_S:
            counts = client.run(idle_ready)
            if all(counts[a] > 0 for a in sorted(counts)[:count]):
                return time.monotonic() - started
            time.sleep(0.2)
    raise SystemExit(f"the Dask hosts had no {count} warm workers after {WARM_TIMEOUT_S}s")


def med(samples: list[dict[str, Any]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def line(name: str, figures: dict[str, float], sample: dict[str, Any]) -> str:
    shown = ", ".join(f"{LABELS[k]} {figures[k]:.3f}" for k in KEYS)
    return f"{name:<10} {shown} (warm {sample['warm']}/{sample['workers']}, {sample['engines']})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, N = 2 (CI smoke)")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args(argv)
    missing = dask_available()
    if missing:
        print(f"bench_dask: skipped: {missing}")
        return 0
    rounds = 2 if args.quick else args.rounds
    sizes = (2,) if args.quick else (2, 4, 8)
    skip = ("SHADOWFARM_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    print(f"bench_dask: {rounds} rounds, N = {sizes}, load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sf-bench-dask-") as tmp:
        work = Path(tmp)
        project = make_suite(work, files=10, per_file=10 if args.quick else 40)
        samples, first = measure(project, work, env, rounds, sizes)
    report(samples, first, sizes)
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "first": first}, indent=2))
    return 0


def measure(
    project: Path, work: Path, env: dict[str, str], rounds: int, sizes: tuple[int, ...]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    from farm_server import daemon
    from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint
    from shadowfarm_wire.home import FarmHome
    from shadowfarm_wire.profile import current_profile

    home = FarmHome(work / "farm")
    farm_env = {**env, "SHADOWFARM_HOME": str(home.root)}
    (work / "dask").mkdir()
    cluster = DaskCluster(work / "dask", workers=max(sizes))
    info, _ = daemon.start(home, env=farm_env)
    try:
        cluster.start()
        client = FarmClient(FarmEndpoint(info.url or "", home.read_token()), timeout=10)
        key = current_profile(str(project), ()).key
        url = cluster.url
        sched = cluster.procs["scheduler"].pid

        def farm_run() -> dict[str, Any]:
            wait_warm(client, key, 2)
            return run_once(project, work, "auto", 2, farm_env)

        def dask_run(n: int) -> dict[str, Any]:
            hosts_warm(cluster.address, n)
            return run_once(project, work, url, n, env, sched)

        modes = {"farm": farm_run, **{f"dask N={n}": (lambda n=n: dask_run(n)) for n in sizes}}
        # The first run of each: the farm learns the profile; the cluster is shipped the
        # project and starts its hosted workers cold.
        first = {"farm": run_once(project, work, "auto", 2, farm_env)}
        for n in sizes:
            first[f"dask N={n}"] = run_once(project, work, url, n, env, sched)
        print(line("first dask", first[f"dask N={sizes[0]}"], first[f"dask N={sizes[0]}"]))
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
        names = list(modes)
        for i in range(rounds):
            for name in names[i % len(names) :] + names[: i % len(names)]:  # rotated order
                samples[name].append(modes[name]())
            print(f"  round {i + 1}/{rounds} done", flush=True)
    finally:
        cluster.stop()
        daemon.stop(home)
    return samples, first


def report(
    samples: dict[str, list[dict[str, Any]]],
    first: dict[str, dict[str, Any]],
    sizes: tuple[int, ...],
) -> None:
    figures = {name: {k: med(runs, k) for k in KEYS} for name, runs in samples.items()}
    print()
    for name, runs in samples.items():
        print(line(name, figures[name], runs[-1]))
    base, dask2 = figures["farm"], figures[f"dask N={sizes[0]}"]
    print()
    print(f"dask N={sizes[0]} / farm (same rounds, medians):")
    for key in ("ttfr_s", "overhead_ms", "ctl_cpu_ms"):
        print(f"  {LABELS[key]:<24} {dask2[key] / base[key]:6.2f}")
    cold = first[f"dask N={sizes[0]}"]
    print(f"  first run on a fresh cluster: first result {cold['ttfr_s']:.2f} s "
          f"({cold['ttfr_s'] / base['ttfr_s']:.2f}x the warm farm's)")  # fmt: skip
    for n in sizes[1:]:
        fig = figures[f"dask N={n}"]
        print(
            f"dask N={n} / N={sizes[0]}: controller CPU per test "
            f"{fig['ctl_cpu_ms'] / dask2['ctl_cpu_ms']:.2f}, overhead per test "
            f"{fig['overhead_ms'] / dask2['overhead_ms']:.2f}, scheduler CPU per run "
            f"{fig['sched_cpu_ms'] / dask2['sched_cpu_ms']:.2f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
