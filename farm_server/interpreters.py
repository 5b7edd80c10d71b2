"""Which programs the farm runs as workers: only Python interpreters it verified itself.

A claim names its run's interpreter (the profile's ``interpreter``), and the farm starts
its workers with it. Without a check, anyone holding the token could make the farm run
any program (a script called ``python3``), and again after every restart, since profiles
are kept. So an interpreter is used only when:

1. its real file (symbolic links resolved, as a virtual environment's ``bin/python`` is a
   link to its base interpreter) is on the allow-list: the daemon's own interpreter and
   its base, plus what the farm's owner lists in ``<home>/interpreters.allow`` (one
   absolute path per line: an interpreter, or a directory holding interpreters). The
   file is read only if it is the owner's and nobody else can write to it; the HTTP API
   cannot change it, so the token alone does not widen it;
2. that real file belongs to root or to the farm's user and nobody else can write to it;
3. started in isolated mode with no ``site`` (``-I -S``: no environment variables, no
   ``.pth`` files, nothing from the current directory), it reports the claimed path as
   its ``sys.executable`` and the claimed version.

Verdicts are remembered per path, inode and mtime; :meth:`Interpreters.allowed` (the
allow-list part only, no process) is checked again before every worker start.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from farm_server.errors import InterpreterRejected
from farm_server.procs import Handle, Launcher, OnEvent, OnExit, run_helper
from farm_server.worker import WorkerSpec
from shadowfarm_wire.profile import Profile

__all__ = ["ALLOW_FILE", "CheckedLauncher", "InterpreterRejected", "Interpreters"]

ALLOW_FILE = "interpreters.allow"
PROBE = (
    "import json, sys; print(json.dumps([sys.executable, "
    "'.'.join(map(str, sys.version_info[:3])), sys.implementation.name]))"
)
PROBE_TIMEOUT_S = 10.0


def _real(path: str) -> str:
    return os.path.realpath(path)


class Interpreters:
    """The allow-list and the verdicts on the interpreters claims named."""

    def __init__(self, home_root: Path, defaults: Iterable[str] | None = None) -> None:
        self.allow_file = home_root / ALLOW_FILE
        base = getattr(sys, "_base_executable", sys.executable)
        self.defaults = {_real(p) for p in (defaults or (sys.executable, base)) if p}
        self._verdicts: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    # --- the allow-list -------------------------------------------------------------------

    def configured(self) -> list[str]:
        """The owner's entries in ``interpreters.allow`` (ignored, with none, if unsafe)."""
        try:
            info = self.allow_file.lstat()
        except OSError:
            return []
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            return []
        lines = self.allow_file.read_text(errors="replace").splitlines()
        return [line.strip() for line in lines if line.strip().startswith("/")]

    def allowed(self, interpreter: str) -> None:
        """InterpreterRejected unless ``interpreter``'s real file is on the allow-list."""
        if not os.path.isabs(interpreter):
            self._reject(interpreter, "is not an absolute path")
        real = _real(interpreter)
        entries = {_real(e) for e in self.configured()} | self.defaults
        if not any(real == e or real.startswith(e.rstrip("/") + "/") for e in entries):
            self._reject(
                interpreter,
                f"(really {real}) is not on the farm's allow-list; its owner can add it as "
                f"a line of {self.allow_file}",
            )
        try:
            info = os.stat(real)
        except OSError as exc:
            self._reject(interpreter, f"cannot be read ({exc.strerror})")
        if not stat.S_ISREG(info.st_mode) or not os.access(real, os.X_OK):
            self._reject(interpreter, "is not an executable file")
        if info.st_uid not in (0, os.getuid()) or info.st_mode & 0o022:
            self._reject(interpreter, f"(really {real}) could be replaced by another user")

    # --- the full check -------------------------------------------------------------------

    def verify(self, profile: Profile) -> None:
        """InterpreterRejected unless the profile's interpreter is allowed and is what it says."""
        path = profile.interpreter
        self.allowed(path)
        info = os.stat(path)
        cache_key = (path, info.st_ino, info.st_mtime_ns)
        with self._lock:
            known = self._verdicts.get(cache_key)
        if known is None:
            known = self._probe(path)
            with self._lock:
                self._verdicts[cache_key] = known
        if known != profile.python_version:
            self._reject(path, f"is Python {known}, not {profile.python_version}")

    def _probe(self, path: str) -> str:
        try:
            # Not subprocess.run: the pool's orphan sweep would kill the probe as an orphan.
            done = run_helper(
                [path, "-I", "-S", "-c", PROBE],
                timeout=PROBE_TIMEOUT_S,
                env={},
                cwd="/",
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._reject(path, f"did not run as a Python interpreter ({exc})")
        try:
            executable, version, _impl = json.loads(done.stdout.decode()[:4096])
        except (ValueError, TypeError, UnicodeDecodeError):
            said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["nothing"]
            self._reject(
                path,
                "did not answer as a Python interpreter "
                f"(exit status {done.returncode}; stderr: {said[0][:200]})",
            )
        if executable != path:
            self._reject(path, f"reports itself as {executable!r}")
        return str(version)

    @staticmethod
    def _reject(path: str, why: str) -> NoReturn:
        msg = f"interpreter {path!r} {why}"
        raise InterpreterRejected(msg)


class CheckedLauncher:
    """A launcher that starts only allowed interpreters (checked again at every start)."""

    def __init__(self, launcher: Launcher, interpreters: Interpreters) -> None:
        self.launcher = launcher
        self.interpreters = interpreters

    def launch(
        self, spec: WorkerSpec, interpreter: str, on_event: OnEvent, on_exit: OnExit
    ) -> Handle:
        self.interpreters.allowed(interpreter)  # an OSError: the pool records "could not start"
        return self.launcher.launch(spec, interpreter, on_event, on_exit)
