"""A fault campaign against a real farm: no test lost, none reported twice, no orphan.

A small project (24 tests, 0.05-0.2 s each) runs at ``-n 2`` with a private farm, N
times. Before each run one fault is drawn (or taken in turn with ``--quick``) and
injected at a random moment of the run:

- ``kill-worker``: SIGKILL a farm worker (warm, or claimed by the run);
- ``kill-daemon``: SIGKILL the daemon (restarted after the run);
- ``slowloris``: 300 connections that never finish their headers, held through the run;
- ``concurrent``: a second run of the suite at the same time (two claims at once);
- ``full-disk``: the farm's home on a small tmpfs, filled during the run (needs root to
  mount one; otherwise counted as skipped);
- ``none``.

A conftest records, in each controller, every test's final report. It prints the runs,
the faults injected, the tests lost (collected, no final report), duplicated (more than
one final report) and orphans (farm processes alive after ``farm stop``); the exit status
is 1 unless all three are 0.

    python benchmarks/bench_faults.py              # 20 runs, random faults
    python benchmarks/bench_faults.py --runs 50 --seed 7
    python benchmarks/bench_faults.py --quick      # CI smoke: each fault once
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from farm_server import daemon  # noqa: E402
from shadowfarm_wire.home import FarmHome  # noqa: E402

FAULTS = ("kill-worker", "kill-daemon", "slowloris", "concurrent", "full-disk", "none")
TESTS = 24
RUN_TIMEOUT_S = 300

TEST_MODULE = """
import time

import pytest


@pytest.mark.parametrize("i", range({n}))
def test_work(i):
    time.sleep(0.05 + (i % 4) * 0.05)
"""

#: the controller of each run appends one line per final report to $FAULTS_REPORTS
CONFTEST = """
import json
import os


class Recorder:
    def pytest_runtest_logreport(self, report):
        final = report.outcome != "rerun" and (
            report.when in ("call", "???") or (report.when == "setup" and not report.passed)
        )
        if final:
            with open(os.environ["FAULTS_REPORTS"], "a") as fh:
                fh.write(json.dumps([os.environ["FAULTS_RUN"], report.nodeid]) + "\\n")


def pytest_configure(config):
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):
        config.pluginmanager.register(Recorder())
"""


def make_project(root: Path) -> Path:
    project = root / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    (project / "tests" / "test_work.py").write_text(TEST_MODULE.format(n=TESTS))
    (project / "conftest.py").write_text(CONFTEST)
    return project


def mount_tmpfs(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(path)],
        capture_output=True, check=False,
    )  # fmt: skip
    return done.returncode == 0


def farm_pids(home: FarmHome) -> list[int]:
    """Processes of this farm: the daemon and workers (their cwd is the farm's home)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "farm_server." in cmd and str(proc.info["cwd"] or "").startswith(str(home.root)):
                found.append(proc.pid)
    return found


def worker_pids(home: FarmHome) -> list[int]:
    import psutil

    pids = []
    for pid in farm_pids(home):
        with contextlib.suppress(psutil.Error):
            if "farm_server.worker" in " ".join(psutil.Process(pid).cmdline()):
                pids.append(pid)
    return pids


class Campaign:
    def __init__(self, root: Path, rng: random.Random, faults: list[str]) -> None:
        self.root = root
        self.faults = faults
        self.total = len(faults)
        self.rng = rng
        self.project = make_project(root)
        self.disk = root / "disk"
        self.has_disk = mount_tmpfs(self.disk)
        self.home = FarmHome(self.disk / "home" if self.has_disk else root / "home")
        self.reports = root / "reports.jsonl"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "SHADOWFARM_HOME": str(self.home.root),
            "FAULTS_REPORTS": str(self.reports),
        }
        self.env.pop("PYTHONHASHSEED", None)
        self.injected: collections.Counter[str] = collections.Counter()
        self.skipped: collections.Counter[str] = collections.Counter()
        self.runs = 0
        self.seen_pids: set[int] = set()

    def start_farm(self) -> None:
        daemon.start(self.home, env=self.env)
        self.seen_pids.update(farm_pids(self.home))

    def run(self, run_id: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "shadowfarm", "-n", "2", "-q",
             "-p", "no:cacheprovider"],
            cwd=self.project, env={**self.env, "FAULTS_RUN": run_id},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def one(self, index: int, fault: str) -> None:
        if fault == "full-disk" and not self.has_disk:
            self.skipped[fault] += 1
            fault = "none"
        if self.home.running_daemon() is None:
            self.start_farm()
        procs = [self.run(f"r{index}")]
        if fault == "concurrent":
            procs.append(self.run(f"r{index}b"))
        time.sleep(self.rng.uniform(0.2, 2.5))  # a random point of the run
        cleanup = self.inject(fault)
        for proc in procs:
            proc.wait(RUN_TIMEOUT_S)
        cleanup()
        self.seen_pids.update(farm_pids(self.home))
        self.injected[fault] += 1

    def inject(self, fault: str) -> Callable[[], object]:
        if fault == "kill-worker":
            pids = worker_pids(self.home)
            if pids:
                with contextlib.suppress(OSError):
                    os.kill(self.rng.choice(pids), 9)
        elif fault == "kill-daemon":
            info = self.home.running_daemon()
            if info is not None:
                self.seen_pids.update(farm_pids(self.home))
                with contextlib.suppress(OSError):
                    os.kill(info.pid, 9)
        elif fault == "slowloris":
            return self.slowloris()
        elif fault == "full-disk":
            filler = self.disk / "filler"
            chunk = b"\0" * (1 << 20)
            with filler.open("wb") as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(chunk)
                    fh.flush()
            return lambda: filler.unlink(missing_ok=True)
        return lambda: None

    def slowloris(self) -> Callable[[], object]:
        info = self.home.running_daemon()
        if info is None or not info.url:
            return lambda: None
        host, port = info.url.removeprefix("http://").rsplit(":", 1)
        held: list[socket.socket] = []
        for _ in range(300):
            with contextlib.suppress(OSError):
                sock = socket.create_connection((host, int(port)), timeout=2)
                sock.sendall(b"GET /api/health HTTP/1.1\r\n")
                held.append(sock)

        def close() -> None:
            for sock in held:
                sock.close()

        return close

    def finish(self) -> tuple[int, int, int]:
        daemon.stop(self.home)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.alive(
            self.seen_pids | set(farm_pids(self.home))
        ):
            time.sleep(0.2)
        orphans = self.alive(self.all_pids())
        for pid in orphans:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        per_run: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        if self.reports.exists():
            for line in self.reports.read_text().splitlines():
                run_id, nodeid = json.loads(line)
                per_run[run_id][nodeid] += 1
        expected = {f"tests/test_work.py::test_work[{i}]" for i in range(TESTS)}
        lost = sum(len(expected - set(per_run.get(r, {}))) for r in self.run_ids())
        duplicated = sum(n - 1 for c in per_run.values() for n in c.values() if n > 1)
        return lost, duplicated, len(orphans)

    def all_pids(self) -> set[int]:
        return self.seen_pids | set(farm_pids(self.home))

    def run_ids(self) -> list[str]:
        ids = []
        for index in range(self.total):
            ids.append(f"r{index}")
            if self.faults[index] == "concurrent":
                ids.append(f"r{index}b")
        return ids

    @staticmethod
    def alive(pids: set[int]) -> list[int]:
        import psutil

        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    found.append(pid)
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of the suite (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--quick", action="store_true", help="each fault once (CI smoke)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    faults = list(FAULTS) if args.quick else [rng.choice(FAULTS) for _ in range(args.runs)]
    root = Path(tempfile.mkdtemp(prefix="shadowfarm-faults-"))
    campaign = Campaign(root, rng, faults)
    started = time.monotonic()
    try:
        campaign.start_farm()
        for index, fault in enumerate(faults):
            campaign.one(index, fault)
        lost, duplicated, orphans = campaign.finish()
    finally:
        with contextlib.suppress(Exception):
            daemon.stop(campaign.home)
        if campaign.has_disk:
            subprocess.run(["umount", "-l", str(campaign.disk)], check=False)
        shutil.rmtree(root, ignore_errors=True)
    injected = ", ".join(f"{k} {v}" for k, v in sorted(campaign.injected.items()))
    print(f"seed {seed}; {time.monotonic() - started:.0f} s")
    print(f"runs: {campaign.runs}")
    print(f"faults injected: {sum(v for k, v in campaign.injected.items() if k != 'none')} "
          f"({injected})")  # fmt: skip
    if campaign.skipped:
        print(f"skipped: {dict(campaign.skipped)} (a tmpfs needs root: those runs had no fault)")
    print(f"tests lost: {lost}")
    print(f"tests duplicated: {duplicated}")
    print(f"orphans: {orphans}")
    return 0 if lost == duplicated == orphans == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
