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


def make_tls_files(directory: Path) -> Path:
    """A self-signed key and certificate for every role, as ``Security.temporary()`` makes
    (in files: the ``dask`` command lines read files), with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=dask-internal", "-addext", "subjectAltName=DNS:dask-internal",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory


def tls_environ(directory: Path) -> dict[str, str]:
    """Dask's TLS configuration, as environment variables every process of ours reads."""
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    env = {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": cert,
           "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}  # fmt: skip
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] = cert
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] = key
    return env


@dataclass
class DaskCluster:
    root: Path
    workers: int = 2
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    address: str = ""
    #: a directory of make_tls_files(): the cluster speaks tls:// only
    tls: Path | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
        if self.tls is not None:
            env.update(tls_environ(self.tls))
        return env

    def security(self) -> object:
        from distributed.security import Security

        if self.tls is None:
            return Security()
        cert, key = str(self.tls / "cert.pem"), str(self.tls / "key.pem")
        return Security(tls_ca_file=cert, tls_client_cert=cert, tls_client_key=key,
                        require_encryption=True)  # fmt: skip

    @property
    def url(self) -> str:
        """The --sf-farm value for this cluster."""
        scheme, _, rest = self.address.partition("://")
        return f"{'dask+tls' if scheme == 'tls' else 'dask'}://{rest}"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115
        with log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                env=self.env(), cwd=self.root, start_new_session=True,
            )  # fmt: skip

    def start(self) -> DaskCluster:
        sched_file = self.root / "scheduler.json"
        protocol = ["--protocol", "tls"] if self.tls is not None else []
        self._spawn("scheduler", ["distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--no-show", *protocol,
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

        with Client(self.address, timeout=30, set_as_default=False,
                    security=self.security()) as client:  # fmt: skip
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
