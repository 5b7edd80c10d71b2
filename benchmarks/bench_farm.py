"""Cold xdist workers against warm farm workers on ``example_project``.

On a copy of ``example_project``, the suite runs at ``-n 2`` in two ways, interleaved
(cold, warm, cold, warm, ...) so that both see the same machine load:

- ``cold``: ``pytest -p shadowfarm -n 2 --sf-farm off``: xdist starts two fresh
  interpreters, which import pytest, the plugins and the suite's heavy modules
  (numpy, scipy.stats) before the first test runs;
- ``warm``: the same command with a farm running (``--sf-farm auto``, a private farm
  home): before each warm run the benchmark waits until the farm has two warm workers
  of the project's profile, then the run claims and uses them.

Both commands load the plugin, so the only difference is where the workers come from.
Both run with bytecode caching on, as on a developer's machine (``PYTHONDONTWRITEBYTECODE``
is removed from the environment).

Measured from the moment the pytest process is started: time to the first test result
(a tiny plugin records when the controller receives the first report) and total wall
time; also the first result counted from the controller's session start, which leaves
out the controller's own start-up (the same in both modes). Medians over the runs, and
warm/cold ratios measured in the same invocation.

It also prints the floor no hand-off can beat: the controller's own start-up (a worker
gets its configuration only once the controller has configured itself) plus the warm
worker's part, from its pytest start to its first result (configuring pytest and
collecting the suite, which a warm worker must still do: it never keeps project code).

    python benchmarks/bench_farm.py             # 5 runs of each
    python benchmarks/bench_farm.py --runs 9
    python benchmarks/bench_farm.py --quick     # CI smoke: 1 run of each
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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLE = REPO / "example_project"
sys.path.insert(0, str(REPO))

import _health_tally  # noqa: E402
from _common import pytest_command  # noqa: E402

from farm_server import daemon  # noqa: E402
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint  # noqa: E402
from shadowfarm_wire.home import FarmHome  # noqa: E402
from shadowfarm_wire.profile import current_profile  # noqa: E402

#: the controller writes the wall-clock times of its session start and of the first
#: test report it receives. The session mark is a tryfirst wrapper, so it is taken before
#: any plugin's ``pytest_sessionstart`` runs: the farm's claim counts as part of the run.
TTFR_PLUGIN = """
import os, time
import pytest

def _write(suffix):
    path = os.environ.get("BENCH_TTFR_FILE")
    if path and not os.environ.get("PYTEST_XDIST_WORKER") and not os.path.exists(path + suffix):
        with open(path + suffix, "w") as fh:
            fh.write(repr(time.time()))

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionstart(session):
    _write(".session")
    return (yield)

def pytest_runtest_logreport(report):
    _write("")

# In a worker, the moment pytest imports this plugin (its configuration has begun): the
# first worker to get there wins.
if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("BENCH_TTFR_FILE"):
    try:
        with open(os.environ["BENCH_TTFR_FILE"] + ".worker", "x") as fh:
            fh.write(repr(time.time()))
    except FileExistsError:
        pass
"""
RUN_TIMEOUT_S = 600
WARM_TIMEOUT_S = 300


@dataclass
class Sample:
    mode: str
    ttfr_s: float
    wall_s: float
    outcome: str
    #: first result counted from the controller's session start (its own start-up, the
    #: same cold or warm, left out)
    ttfr_session_s: float = 0.0
    #: the tests' own wall seconds and CPU seconds, summed (from the run report): where a
    #: run's time went once its workers were testing
    test_s: float = 0.0
    test_cpu_s: float = 0.0
    #: the controller's own start-up: process start to its session start
    session_s: float = 0.0
    #: the first worker's pytest start (configuration begun) to the first result
    worker_s: float = 0.0


def run_pytest(project: Path, workdir: Path, mode: str, env: dict[str, str]) -> Sample:
    marker = workdir / "ttfr.txt"
    session = workdir / "ttfr.txt.session"
    worker = workdir / "ttfr.txt.worker"
    for path in (marker, session, worker):
        path.unlink(missing_ok=True)
    command = pytest_command(
        *("-p", "shadowfarm", "-p", "bench_ttfr", "-n", "2", "-p", "no:cacheprovider"),
        f"--sf-report-json={workdir / 'report.json'}",
    )
    if mode == "cold":
        command += ["--sf-farm", "off"]
    run_env = {
        **env,
        "BENCH_TTFR_FILE": str(marker),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")])),
    }
    started = time.time()
    done = subprocess.run(
        command, cwd=project, env=run_env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    wall = time.time() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not marker.exists():
        raise SystemExit(f"{mode} run failed ({done.returncode}):\n{done.stdout[-3000:]}")
    if mode == "warm" and not any(line.startswith("farm: 2 warm workers (") for line in lines):
        raise SystemExit(f"the warm run did not get two warm workers:\n{done.stdout[-3000:]}")
    first = float(marker.read_text())
    report = json.loads((workdir / "report.json").read_text())
    _health_tally.add(report)
    tests = report["tests"]
    return Sample(
        mode,
        first - started,
        wall,
        lines[-1] if lines else "",
        first - float(session.read_text()),
        session_s=float(session.read_text()) - started,
        worker_s=first - float(worker.read_text()),
        test_s=sum(t.get("duration_s") or 0.0 for t in tests),
        test_cpu_s=sum(t.get("cpu_s") or 0.0 for t in tests),
    )


def wait_warm(client: FarmClient, key: str, count: int) -> float:
    """Seconds until the farm has ``count`` warm workers of profile ``key``."""
    started = time.monotonic()
    while time.monotonic() - started < WARM_TIMEOUT_S:
        for profile in client.status()["profiles"]:
            if profile["key"] == key and profile["counts"]["warm"] >= count:
                return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"the farm had no {count} warm workers after {WARM_TIMEOUT_S}s")


def median(samples: list[Sample], mode: str, field: str) -> float:
    return statistics.median(getattr(s, field) for s in samples if s.mode == mode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each mode (default 5)")
    parser.add_argument("--quick", action="store_true", help="one run of each (CI smoke)")
    parser.add_argument("--json", type=Path, help="also write the samples and medians here")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs

    with tempfile.TemporaryDirectory(prefix="sf-bench-farm-") as tmp:
        workdir = Path(tmp)
        project = workdir / "example_project"
        shutil.copytree(
            EXAMPLE,
            project,
            ignore=shutil.ignore_patterns(".shadowfarm", "__pycache__", ".pytest_cache"),
        )
        (workdir / "bench_ttfr.py").write_text(TTFR_PLUGIN)
        home = FarmHome(workdir / "farm")
        # A developer's machine: bytecode caching on (PYTHONDONTWRITEBYTECODE would make
        # every run, cold or warm, re-rewrite the asserts of every test module).
        skip = ("SHADOWFARM_", "EXAMPLE_", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        env["SHADOWFARM_HOME"] = str(home.root)
        info, _ = daemon.start(home, env=env)
        try:
            client = FarmClient(FarmEndpoint(info.url or "", home.read_token()), timeout=10)
            key = current_profile(str(project), ()).key
            print(f"farm {info.url}, project copy {project}, profile {key}", flush=True)
            # Teach the history and register the profile (not measured).
            run_pytest(project, workdir, "cold", env)
            run_pytest(project, workdir, "register", env)
            samples: list[Sample] = []
            waits: list[float] = []
            for i in range(runs):
                # Replacements warming beside a measured run would slow it (cold or warm
                # alike): every run starts with the pool warm and nothing warming.
                wait_warm(client, key, 2)
                samples.append(run_pytest(project, workdir, "cold", env))
                waits.append(wait_warm(client, key, 2))
                samples.append(run_pytest(project, workdir, "warm", env))
                for s in samples[-2:]:
                    print(
                        f"run {i + 1} {s.mode:<5} first result {s.ttfr_s:6.3f}s  "
                        f"wall {s.wall_s:6.3f}s  tests {s.test_s:6.2f}s "
                        f"(CPU {s.test_cpu_s:6.2f}s)  {s.outcome}",
                        flush=True,
                    )
            status = client.status()
        finally:
            daemon.stop(home)

    result: dict[str, Any] = {"runs": runs, "load_1min": os.getloadavg()[0]}
    for field in (
        "ttfr_s",
        "ttfr_session_s",
        "session_s",
        "worker_s",
        "wall_s",
        "test_s",
        "test_cpu_s",
    ):
        cold, warm = median(samples, "cold", field), median(samples, "warm", field)
        result[field] = {
            "cold": round(cold, 3),
            "warm": round(warm, 3),
            "warm/cold": round(warm / cold, 3),
        }
    profile = next((p for p in status["profiles"] if p["key"] == key), {})
    result["warmup_s_median"] = profile.get("warmup_s_median")
    result["replacement_wait_s_median"] = round(statistics.median(waits), 3)
    print()
    print(
        f"medians over {runs} runs each (-n 2, example_project; 1-min load "
        f"{result['load_1min']:.1f} on {os.cpu_count()} CPUs):"
    )
    labels = (
        ("ttfr_s", "time to first result"),
        ("ttfr_session_s", "  from session start"),
        ("session_s", "  controller start-up"),
        ("worker_s", "  worker: pytest to 1st"),
        ("wall_s", "total wall"),
        ("test_s", "tests' own time"),
        ("test_cpu_s", "  of which CPU"),
    )
    for field, label in labels:
        r = result[field]
        print(
            f"  {label:<21} cold {r['cold']:6.3f}s  warm {r['warm']:6.3f}s  "
            f"warm/cold {r['warm/cold']:.3f}"
        )
    # No hand-off can beat this: the controller must have configured itself before a
    # worker gets its configuration, and the warm worker still configures pytest and
    # collects the suite (cold's start-up, warm's worker part, both measured above).
    floor = result["session_s"]["cold"] + result["worker_s"]["warm"]
    result["ttfr_floor_s"] = {
        "warm": round(floor, 3),
        "/cold": round(floor / result["ttfr_s"]["cold"], 3),
    }
    print(
        f"  floor for any warm run: controller start-up {result['session_s']['cold']:.3f}s "
        f"+ warm worker {result['worker_s']['warm']:.3f}s = {floor:.3f}s, "
        f"{floor / result['ttfr_s']['cold']:.3f} of cold's first result"
    )
    print(
        f"  a worker warms in {result['warmup_s_median']}s (median); before a warm run the "
        f"benchmark waited {result['replacement_wait_s_median']}s (median) for two warm ones"
    )
    print(f"  {_health_tally.summary()}")
    if args.json:
        args.json.write_text(
            json.dumps({**result, "samples": [asdict(s) for s in samples]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
