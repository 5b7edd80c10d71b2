"""Replay a plain xdist run's recorded RSS through the health monitor: when would it have acted?

``bench_health.py`` records, in every process of a plain xdist run, "tests done, wall
time, RSS, peak" after each test (one CSV per process: ``gw0.csv``... and ``main.csv``
for the controller). A worker the OOM killer took ends its file at the test before the
one that crashed, and xdist starts its replacement under a new id. Replaying the files
in time order through :class:`HealthMonitor` (no pytest, as the controller would feed
it) says, before the monitor is wired into the plugin, how early it warned of each OOM
kill, and whether it told a worker to swap that then finished (on the healthy suite a
false alarm; on the leaking one a leaking worker the suite's end saved).

The warning of an OOM kill is the earliest swap decision standing for a worker still
alive at the kill: the cgroup's limit is shared, and the kernel kills the largest
process, which need not be the one that grew fastest. Draining the worker told to swap
would have freed its memory before the kill. The lead is counted in tests the killed
worker ran between that decision and its death (the one it died in included), and in
seconds. A replay has no feedback: after the first swap a real run would differ.

On a project's own suite (no cgroup: nothing is killed), it shows false alarms:

    python benchmarks/_health_replay.py PROJECT_DIR [--workers 2] [--limit 600M] [-- ARGS]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pytest_shadowfarm.sizes import parse_size
from pytest_shadowfarm.workers.health import HealthMonitor, Sample

__all__ = ["ReplayResult", "replay_run"]


@dataclass
class ReplayResult:
    """What the monitor would have said over one recorded run."""

    #: per crashed worker: tests it ran from the warning to its death (None: no warning)
    leads: dict[str, int | None] = field(default_factory=dict)
    #: the same in seconds
    lead_s: dict[str, float | None] = field(default_factory=dict)
    #: workers that were told to swap although they finished
    false_alarms: list[str] = field(default_factory=list)
    #: the first swap reason per worker
    reasons: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> list[tuple[float, Sample]]:
    rows: list[tuple[float, Sample]] = []
    with path.open() as f:
        for line in csv.reader(f):
            done, t, rss, peak = int(line[0]), float(line[1]), int(line[2]), int(line[3])
            rows.append((t, Sample(done, t, rss, peak or None)))
    return rows


def replay_run(
    rss_dir: Path, *, limit_bytes: int, crashed: set[str], startup_s: float
) -> ReplayResult:
    """Replay ``rss_dir``'s files; ``crashed``: the worker ids xdist reported as crashed."""
    series = {p.stem: _read(p) for p in sorted(rss_dir.glob("gw*.csv"))}
    controller = _read(rss_dir / "main.csv") if (rss_dir / "main.csv").exists() else []
    events = sorted((t, worker, s) for worker, rows in series.items() for t, s in rows)
    last_t = {worker: rows[-1][0] for worker, rows in series.items() if rows}
    monitor = HealthMonitor(limit_bytes, startup_s=startup_s)
    swaps: dict[str, float] = {}  # worker -> time of its first swap decision
    result = ReplayResult()
    for t, worker, sample in events:
        monitor.observe(worker, sample)
        for gone in [w for w, end in last_t.items() if end < t]:
            monitor.forget(gone)
            del last_t[gone]
        outside = max((s.rss_bytes for ct, s in controller if ct <= t), default=45 << 20)
        for a in monitor.assess(t, outside_bytes=outside):
            if a.decision == "swap" and a.worker not in swaps:
                swaps[a.worker] = t
                result.reasons[a.worker] = a.reason
    for worker in sorted(crashed & series.keys(), key=lambda w: series[w][-1][0]):
        rows = series[worker]
        died_t = rows[-1][0]
        alive = [w for w, r in series.items() if r and r[0][0] <= died_t <= r[-1][0]]
        warned = [swaps[w] for w in alive if w in swaps and swaps[w] <= died_t]
        if warned:
            first = min(warned)
            result.leads[worker] = 1 + sum(1 for t, _ in rows if t > first)
            result.lead_s[worker] = round(died_t - first, 2)
        else:
            result.leads[worker] = result.lead_s[worker] = None
    result.false_alarms = sorted(w for w in swaps if w not in crashed)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Replay a project's worker RSS through the monitor"
    )
    parser.add_argument("project", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", default="600M", help="the ceiling to judge against")
    parser.add_argument("--startup", type=float, default=1.5, help="worker start-up, s")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    here = str(Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="rss-") as rss:
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "SF_RSS_DIR": rss, "PYTHONPATH": path}
        cmd = [sys.executable, "-m", "pytest", "-q", "-n", str(args.workers), "-p", "xdist"]
        cmd += ["-p", "_rss_recorder", "-p", "no:shadowfarm", *extra]
        done = subprocess.run(
            cmd, cwd=args.project, env=env, capture_output=True, text=True, timeout=1800
        )
        print((done.stdout.strip().splitlines() or ["(no output)"])[-1])
        limit = parse_size(args.limit, source="--limit")
        result = replay_run(Path(rss), limit_bytes=limit, crashed=set(), startup_s=args.startup)
    print(f"swaps of workers that finished (false alarms): {result.false_alarms or 'none'}")
    for worker, reason in result.reasons.items():
        print(f"  {worker}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
