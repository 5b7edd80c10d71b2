"""A warm worker process: ``python -m farm_server.worker`` (started by the pool).

Protocol with the daemon: the daemon writes one JSON line (:class:`WorkerSpec`) to the
worker's stdin and keeps that pipe open; EOF on it means the daemon died, and an unclaimed
worker then exits (so does ``PR_SET_PDEATHSIG``). The worker writes JSON lines on its
stdout: ``started`` (pid, profile key), ``progress`` (the warm-up's step: importing,
collecting, warm-up hook, shadow tests k of n, settling), ``ready`` (the readiness
report), ``rejected`` (a refused connection), ``claimed``; everything else it prints
goes to its log (stderr).

Life: warm up at low priority -> listen -> admit one authenticated client -> take the
client's cwd, environment, umask and stderr -> serve one execnet session in the main
thread (``main_thread_only``, like xdist's popen workers) -> exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from farm_server.context import apply_context, as_popen_worker
from farm_server.gate import Admitted, accept_client, listen
from farm_server.staleness import changed_files
from shadowfarm_wire.context import hashseed
from shadowfarm_wire.protocol import ACK, UnixIO, send_refusal

if TYPE_CHECKING:
    from farm_server.collection.context import RunContext

__all__ = ["ParentWatch", "StatusPipe", "WorkerSpec", "main"]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSpec:
    """What the daemon asks one worker to be."""

    id: str
    token: str
    socket: str
    rootdir: str
    profile_key: str
    warm_modules: list[str] = field(default_factory=list)
    shadow_tests: list[str] = field(default_factory=list)
    #: the runs' ``-p`` options (plugin names), for a warm-up with no ``context``
    plugins: list[str] = field(default_factory=list)
    budget_s: float = 5.0
    nice: int = 10
    #: the context of the profile's last run (collection.context.RunContext.to_dict):
    #: the worker collects for a run like it before it is offered
    context: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_json(cls, line: bytes) -> WorkerSpec:
        data = json.loads(line)
        return cls(**data)


class StatusPipe:
    """JSON lines to the daemon; a dead daemon is not this process's problem to report."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def send(self, event: str, **fields: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(json.dumps({"event": event, **fields}).encode() + b"\n")
            self.stream.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()


class ParentWatch:
    """Exit when the daemon dies, until :meth:`disarm` (a claimed worker ends with its run).

    Two signals, because each has a gap: ``PR_SET_PDEATHSIG`` fires when the parent's
    *thread* that forked us exits (the pool spawns from one long-lived thread), and EOF
    on the stdin pipe covers platforms without prctl.
    """

    def __init__(self, parent_pid: int, on_death: Any) -> None:
        self.parent_pid = parent_pid
        self.on_death = on_death
        self.armed = True
        self._set_pdeathsig(signal.SIGKILL)
        if os.getppid() != parent_pid:  # died before prctl took effect
            on_death()
        self._fd = os.dup(0)
        threading.Thread(target=self._watch, name="shadowfarm-parent", daemon=True).start()

    @staticmethod
    def _set_pdeathsig(sig: int) -> None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    def _watch(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._fd, 4096):
                pass
        if self.armed:
            self.on_death()

    def disarm(self) -> None:
        self.armed = False
        self._set_pdeathsig(0)


def _die(socket_path: Path) -> None:
    with contextlib.suppress(OSError):
        socket_path.unlink()
    os._exit(0)


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _retarget(log: tuple[int, int] | None, stderr_fd: int) -> None:
    """Every descriptor (2 and up) that points at the warm-up's log gets the run's stderr.

    pytest's capture and faulthandler keep duplicates of stderr from a prepared
    configuration (:mod:`farm_server.collection`); what they write belongs to the run.
    """
    if log is None:
        return
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= 2 and fd != stderr_fd and _identity(fd) == log:
                os.dup2(stderr_fd, fd)


def _quiet_stdio() -> None:
    """fd 0 and 1 on /dev/null, as execnet's ``init_popen_io`` leaves a popen worker's."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # prints must not reach the daemon's pipes
    os.close(devnull)


def start_session(admitted: Admitted, session_id: str, log: tuple[int, int] | None = None) -> None:
    """Become the client's worker: its context, popen-like stdio, then execnet's serve()."""
    from execnet.gateway_base import get_execmodel, serve

    hello = admitted.hello
    os.chdir(hello["cwd"])  # the environment and the rest of the context: apply_context
    os.umask(hello.get("umask", 0o022))
    if _identity(1) == log or log is None:
        _quiet_stdio()
    for fd in admitted.fds[:1]:
        _retarget(log or _identity(2), fd)  # the client's stderr, where a popen worker's would go
    for fd in admitted.fds:
        os.close(fd)
    io = UnixIO(admitted.conn, get_execmodel("main_thread_only"))
    io.write(ACK)
    serve(io, id=session_id)


def main(stdin: BinaryIO | None = None) -> int:
    from farm_server.collection.context import RunContext
    from farm_server.collection.prepare import untested
    from farm_server.idle import lowered_priority
    from farm_server.project_code import forget_own_modules
    from farm_server.warmup import warm_up
    from shadowfarm_wire.plugins import as_options
    from shadowfarm_wire.profile import current_profile

    own_hashseed = hashseed(os.environ)  # what this interpreter's str hashes were seeded with
    log = _identity(2)
    spec = WorkerSpec.from_json((stdin or sys.stdin.buffer).readline())
    socket_path = Path(spec.socket)
    watch = ParentWatch(os.getppid(), on_death=lambda: _die(socket_path))
    # The status pipe keeps its own descriptor; fd 1 becomes the log, so whatever the
    # warm-up prints cannot corrupt the JSON lines.
    status = StatusPipe(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    key = current_profile(spec.rootdir, spec.warm_modules).key
    status.send("started", pid=os.getpid(), profile=key)
    if key != spec.profile_key:
        status.send("mismatch", expected=spec.profile_key, found=key)
        return 3
    srv = listen(socket_path)
    context = RunContext.from_dict(spec.context) if spec.context else None
    # pytest and xdist outside the range the prepared session's code was checked on
    untested_why = untested() if context is not None else ""
    tmpdir = Path(tempfile.mkdtemp(prefix="shadowfarm-warm-"))
    try:
        with lowered_priority(spec.nice) as restorable:
            report = warm_up(
                rootdir=Path(spec.rootdir),
                warm_modules=spec.warm_modules,
                shadow_tests=spec.shadow_tests,
                budget_s=spec.budget_s,
                tmpdir=tmpdir,
                on_step=lambda step, done, total: status.send(
                    "progress", step=step, done=done, total=total
                ),
                plugin_args=context.plugin_args() if context else as_options(spec.plugins),
            )
            reuse = _prepare_for_run(spec, context, untested_why, report, status)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    sys.stdout.flush()
    status.send("ready", report=report.to_dict(), nice_restored=restorable)
    admitted = accept_client(
        srv,
        spec.token.encode(),
        profile_key=key,
        on_reject=lambda reason: status.send("rejected", reason=reason),
    )
    srv.close()
    with contextlib.suppress(OSError):
        socket_path.unlink()
    stale = changed_files(report.kept_files)
    # Kept project code cannot be unloaded, nor a hash seed changed: the run is told why
    # and starts a cold worker instead.
    problem = f"project code it keeps loaded changed since its warm-up: {stale}" if stale else ""
    problem = problem or apply_context(admitted.hello, own_hashseed)
    if problem:
        send_refusal(admitted.conn, problem)
        admitted.conn.close()
        for fd in admitted.fds:
            os.close(fd)
        status.send("refused", reason=problem)
        return 4
    watch.disarm()
    own_main = as_popen_worker()  # noqa: F841 - this code's module stays alive
    status.send("claimed", session=admitted.hello.get("id", "gw"))
    reuse.install()  # it reports the run's context on the status pipe, then closes it
    forget_own_modules(keep=reuse.imported)  # imported since the warm-up dropped them
    start_session(admitted, f"{admitted.hello.get('id', 'gw')}-worker", log)
    return 0


def _prepare_for_run(
    spec: WorkerSpec,
    context: RunContext | None,
    untested_why: str,
    report: Any,
    status: StatusPipe,
) -> Any:
    """Collect for the profile's next run now, if the farm knows what it looks like
    (``context``: the profile's last run; ``untested_why``: why pytest or xdist is out of
    the range the prepared session's code was checked on)."""
    from farm_server.collection.prepare import prepare
    from farm_server.collection.reuse import Reuse
    from farm_server.heap import settle
    from farm_server.project_code import ProjectCode, forget_own_modules
    from farm_server.warmup import installed_code_dirs

    code = ProjectCode.of(Path(spec.rootdir), report)

    def on_context(context: RunContext, outcome: str) -> None:
        status.send("context", context=context.to_dict(), collection=outcome)
        status.close()

    # A failing shadow subset does not matter here (the worker is offered anyway); a
    # purge that could not be made consistent does: nothing of the project may stay.
    why = untested_why or (f"the warm-up's purge: {report.unfit}" if report.unfit else "")
    if context is None:
        why = "no earlier run to prepare for"
    if not why and context is not None:
        status.send("progress", step="collecting for the run", done=None, total=None)
        _quiet_stdio()  # as a popen worker's are when pytest starts capturing them
        forget_own_modules()
        found = prepare(context, code.modules, installed_code_dirs())
        if not isinstance(found, str):
            report.prepared = found.tests
            report.heap = settle().to_dict()
            reuse = Reuse(found, purge=code.purge, on_context=on_context)
            reuse.imported = frozenset(sys.modules)
            return reuse
        code.purge(report.test_modules)
        report.heap = settle().to_dict()  # what the failed collection left
        why = found
    report.prepared_error = why if context is not None else ""
    return Reuse(None, purge=code.purge, on_context=on_context, why_not=f"collected: {why}")


if __name__ == "__main__":
    raise SystemExit(main())
