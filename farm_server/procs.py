"""Worker processes as the daemon sees them: launch, status lines, termination, orphans.

Every worker is started from the pool's supervisor thread (``PR_SET_PDEATHSIG`` in the
worker fires when the *thread* that forked it ends, so that thread must live as long as
the daemon). The daemon is a child subreaper: processes a crashed worker leaves behind
are re-parented to the daemon, which kills them (:func:`sweep_orphans`), so no worker,
and nothing a worker started, outlives the farm.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from farm_server.worker import WorkerSpec

__all__ = [
    "Handle",
    "Launcher",
    "ProcessLauncher",
    "become_subreaper",
    "run_helper",
    "stop_processes",
    "sweep_orphans",
]

log = logging.getLogger("shadowfarm.procs")

_PR_SET_CHILD_SUBREAPER = 36

OnEvent = Callable[[str, dict[str, Any]], None]
OnExit = Callable[[str, int], None]


class Handle(Protocol):
    """A started worker process."""

    pid: int

    def alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float) -> int | None: ...


class Launcher(Protocol):
    """Starts worker processes; the pool gets their events through the callbacks."""

    def launch(
        self, spec: WorkerSpec, interpreter: str, on_event: OnEvent, on_exit: OnExit
    ) -> Handle: ...


class WorkerProcess:
    """A ``python -m farm_server.worker`` child and the thread that reads its status."""

    def __init__(self, popen: subprocess.Popen[bytes], worker_id: str) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.worker_id = worker_id

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def follow(self, on_event: OnEvent, on_exit: OnExit) -> None:
        """Read status lines until EOF, then wait for the exit (run in its own thread)."""
        assert self.popen.stdout is not None
        with self.popen.stdout as stream:
            for line in stream:
                try:
                    event = json.loads(line)
                    name = event.pop("event")
                except (ValueError, KeyError, TypeError, AttributeError):
                    log.warning("worker %s wrote a non-status line: %r", self.worker_id, line[:200])
                    continue
                on_event(self.worker_id, {"event": name, **event})
        # A claimed worker closed the pipe but lives on with its session: wait it out.
        returncode = self.popen.wait()
        with contextlib.suppress(OSError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()
        on_exit(self.worker_id, returncode)


class ProcessLauncher:
    """Launches real worker processes with their logs in ``logs``."""

    def __init__(self, logs: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None):
        self.logs = logs
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd or logs

    def launch(
        self, spec: WorkerSpec, interpreter: str, on_event: OnEvent, on_exit: OnExit
    ) -> WorkerProcess:
        log_path = self.logs / f"{spec.id}.log"
        with log_path.open("ab") as err:
            popen = subprocess.Popen(
                # -P: the worker's cwd is not put on sys.path (3.11+).
                [interpreter, "-P", "-m", "farm_server.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=self.cwd,
                env=self.env,
                # Own session: a Ctrl-C at the daemon's terminal must not reach workers
                # that serve other people's runs; the daemon ends them itself.
                start_new_session=True,
            )
        assert popen.stdin is not None
        try:
            popen.stdin.write(spec.to_json())
            popen.stdin.flush()  # the pipe stays open: its EOF tells the worker we died
        except OSError:
            pass  # it died at once; follow() reports the exit
        process = WorkerProcess(popen, spec.id)
        threading.Thread(
            target=process.follow,
            args=(on_event, on_exit),
            name=f"shadowfarm-follow-{spec.id}",
            daemon=True,
        ).start()
        return process


def become_subreaper() -> bool:
    """Adopt orphans of our descendants (Linux); False where not supported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def stop_processes(handles: Iterable[Handle], timeout: float = 5.0) -> list[int]:
    """SIGTERM every handle, SIGKILL those still alive after ``timeout``; return killed pids."""
    handles = [h for h in handles if h.alive()]
    for handle in handles:
        handle.terminate()
    deadline = time.monotonic() + timeout
    killed = []
    for handle in handles:
        if handle.wait(max(0.0, deadline - time.monotonic())) is None:
            handle.kill()
            handle.wait(timeout)
            killed.append(handle.pid)
    return killed


#: short-lived children of the daemon's own (an interpreter probe), spared by the sweep;
#: the lock covers a helper's fork and registration, and the sweep's look at the children
_HELPERS_LOCK = threading.Lock()
_HELPERS: set[int] = set()


def run_helper(argv: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a child the orphan sweep must not take for an orphan."""
    with _HELPERS_LOCK:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
        _HELPERS.add(proc.pid)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    finally:
        with _HELPERS_LOCK:
            _HELPERS.discard(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def sweep_orphans(tracked: set[int]) -> list[int]:
    """Kill and reap our children that are neither tracked workers nor helpers (orphans)."""
    swept = []
    with _HELPERS_LOCK:
        try:
            import psutil

            children = psutil.Process().children()
        except Exception:
            return []
        for child in children:
            if child.pid in tracked or child.pid in _HELPERS:
                continue
            with contextlib.suppress(Exception):
                child.send_signal(signal.SIGKILL)
                os.waitpid(child.pid, 0)
                swept.append(child.pid)
    return swept
