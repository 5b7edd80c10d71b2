"""A real Dask cluster on this machine for tests and benchmarks: scheduler + N workers.

Each ``dask worker`` runs with its nanny in a process group of its own, so killing the
group is losing a host: worker, nanny and whatever they started. Every wait is bounded
and :meth:`DaskCluster.stop` kills every group it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def dask_available() -> str:
    """ "" if distributed imports, else why not."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        return f"distributed is not installed ({exc}); pip install 'pytest-shadowfarm[dask]'"
    return ""


@dataclass
class DaskCluster:
    root: Path
    workers: int = 2
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    address: str = ""

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115
        with log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                env=self.env(), cwd=self.root, start_new_session=True,
            )  # fmt: skip

    def start(self) -> DaskCluster:
        sched_file = self.root / "scheduler.json"
        self._spawn("scheduler", ["distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--no-show",
                                  "--scheduler-file", str(sched_file)])  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not sched_file.exists():
            self._check(deadline)
        while not self.address:
            with contextlib.suppress(ValueError):
                self.address = json.loads(sched_file.read_text())["address"]
            self._check(deadline)
        for i in range(self.workers):
            self.add_worker(f"w{i}")
        self.wait_for_workers(self.workers, deadline)
        return self

    def add_worker(self, name: str) -> Path:
        local = self.root / name
        local.mkdir(exist_ok=True)
        self._spawn(name, ["distributed.cli.dask_worker", self.address, "--nthreads", "1",
                           "--local-directory", str(local), "--name", name,
                           "--no-dashboard", "--memory-limit", "0"])  # fmt: skip
        return local

    def wait_for_workers(self, count: int, deadline: float) -> None:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=max(deadline - time.monotonic(), 1))

    def _check(self, deadline: float) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"dask {name} exited with {proc.returncode}:\n{log}")
        if time.monotonic() > deadline:
            raise TimeoutError("the Dask cluster did not start in time")
        time.sleep(0.1)

    def kill(self, name: str) -> None:
        """Lose a host: SIGKILL the worker's whole process group (nanny included)."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def pause(self, name: str) -> None:
        """A host cut off: its processes stop answering but no connection closes."""
        os.killpg(self.procs[name].pid, signal.SIGSTOP)

    def live_workers(self) -> list[str]:
        return [n for n, p in self.procs.items() if n != "scheduler" and p.poll() is None]

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
                os.killpg(proc.pid, signal.SIGCONT)  # a paused one must see the SIGTERM
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
