"""The daemon: ``serve`` (foreground), ``start`` (background, returns when ready), ``stop``.

``serve`` binds the HTTP API (uvicorn, loopback and a free port by default), starts the
pool's supervisor, and writes ``daemon.json`` (pid, start time, URL) once uvicorn
accepts requests: that file is how ``start``, the CLI and the pytest plugin find a ready
farm. SIGTERM or SIGINT shut it down gracefully: every worker is ended (SIGTERM, then
SIGKILL), orphans are swept, the database is closed and ``daemon.json`` removed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from farm_server.config import FarmConfig, ValidationError
from farm_server.errors import FarmDaemonError, InterpreterRejected
from farm_server.farm import Farm
from farm_server.forecast.book import PolicyBook
from farm_server.forecast.models import default_forecaster
from farm_server.forecast.planner import ForecastPolicy
from farm_server.interpreters import CheckedLauncher, Interpreters
from farm_server.limits import BoundedH11Protocol, quiet_accept_errors, raise_fd_limit
from farm_server.logs import LogKeeper, setup_logging
from farm_server.pool import Pool, ProfileEntry
from farm_server.procs import ProcessLauncher, become_subreaper
from farm_server.store import FarmStore
from shadowfarm_wire.home import DaemonInfo, FarmHome
from shadowfarm_wire.profile import Profile

__all__ = ["FarmDaemonError", "serve", "start", "stop"]

log = logging.getLogger("shadowfarm.daemon")

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def _load_config(store: FarmStore) -> FarmConfig:
    try:
        return FarmConfig().updated(store.load_config())
    except ValidationError as exc:
        log.warning("stored config ignored (%s); using defaults", exc)
        return FarmConfig()


def _restore_profiles(pool: Pool, store: FarmStore, interpreters: Interpreters) -> None:
    for row in store.load_profiles():
        try:
            profile = Profile.from_dict(row["profile"])
            # A profile stored before the allow-list existed (or with an interpreter
            # since replaced) must not start a program at every restart.
            interpreters.verify(profile)
        except (ValueError, InterpreterRejected) as exc:
            log.warning("stored profile %s ignored: %s", row["key"], exc)
            continue
        pool.profiles[profile.key] = ProfileEntry(
            profile,
            registered=row["registered"],
            shadow_tests=row["shadow_tests"],
            min_warm=row["min_warm"],
            max_warm=row["max_warm"],
            last_claim=row["last_claim"],
            drained=row["drained"],
            health=row["health"],
        )


def policy_book(store: FarmStore, config: Callable[[], FarmConfig]) -> PolicyBook:
    """The forecast policies of the pool, taught from the store's claim log."""

    def make() -> ForecastPolicy:
        cfg = config()
        return ForecastPolicy(
            default_forecaster(), objective=cfg.forecast_objective, cap=cfg.default_max_warm
        )

    return PolicyBook(store.claim_log, make)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    home: FarmHome,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "info",
    on_ready: Callable[[str], None] = lambda url: None,
) -> int:
    """Run the farm in the foreground until SIGTERM/SIGINT; return the exit status."""
    import uvicorn

    from farm_server.api import create_app

    home.create()
    running = home.running_daemon()
    if running is not None and running.pid != os.getpid():
        msg = f"a farm already runs from {home.root} (pid {running.pid}, {running.url})"
        raise FarmDaemonError(msg)
    lock = _lock_home(home)
    log_handler = setup_logging(home.logs, log_level)
    soft, _hard = raise_fd_limit()
    log.info("file descriptor limit %d", soft)
    quiet_accept_errors()
    token = home.ensure_token()
    become_subreaper()
    for stale in home.sockets.glob("*.sock"):  # left by a daemon that was killed
        stale.unlink()
    store = FarmStore.open(home.database)
    store.prune_workers()
    pruned = store.prune_profiles(time.time())
    if pruned:
        log.info("forgot %d profiles retired or unclaimed for 30 days", pruned)
    interpreters = Interpreters(home.root)
    launcher = CheckedLauncher(ProcessLauncher(home.logs, cwd=home.root), interpreters)
    pool = Pool(_load_config(store), launcher, home.sockets)
    pool.book = policy_book(store, lambda: pool.config)
    farm = Farm(home, token, store, pool, interpreters)
    pool.on_change = farm.persist
    _restore_profiles(pool, store, interpreters)
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("the API listens on %s: reachable beyond this host", host)
    sock = socket.create_server(
        (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
    )
    farm.url = _url(host, sock.getsockname()[1])

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # accepting requests: now the farm may be found
                home.write_daemon(DaemonInfo(farm.pid, _create_time(farm.pid), farm.url))
                log.info("farm ready at %s (pid %d)", farm.url, farm.pid)
                on_ready(farm.url)

    config = uvicorn.Config(
        create_app(farm),
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=BoundedH11Protocol,  # a connection cap and a deadline for the headers
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=64 << 10,  # request line and headers
    )
    # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal to the handler it
    # found: with the default SIGTERM handler the process would die before the cleanup
    # below, leaving workers to their parent-death signal. A no-op handler lets it run.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    keeper = LogKeeper(home.logs, lambda: pool.config.log_max_bytes, log_handler)
    keeper.start()
    pool.start()
    try:
        Server(config).run(sockets=[sock])
    finally:
        keeper.stop()
        killed = pool.stop()
        if killed:
            log.warning("workers that ignored SIGTERM were killed: %s", killed)
        home.clear_daemon(farm.pid)
        store.close()
        sock.close()
        log.info("farm stopped")
        os.close(lock)
    return 0


def _lock_home(home: FarmHome) -> int:
    """Hold the home's lock for the daemon's life; FarmDaemonError if another daemon does.

    daemon.json alone cannot say it: two daemons started at once both find none.
    """
    import fcntl

    fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        msg = (
            f"another farm daemon serves {home.root} (it holds {home.lock_file}); "
            f"stop it first: shadowfarm farm stop --home {home.root}"
        )
        raise FarmDaemonError(msg) from None
    return fd


def _create_time(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).create_time())


def start(
    home: FarmHome,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    timeout: float = START_TIMEOUT_S,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> tuple[DaemonInfo, bool]:
    """Start the daemon in the background; return (its info, whether it was started now).

    The launched process forks the daemon and exits (so the daemon is nobody's child),
    and the daemon says READY or ERROR on the inherited pipe once it knows.
    """
    home.create()
    running = home.running_daemon()
    if running is not None and running.url:
        return running, False
    out = home.logs / "daemon.out"
    with out.open("ab") as fh:
        proc = subprocess.Popen(
            [
                python,
                "-m",
                "farm_server.daemon",
                "--daemonize",
                "--home",
                str(home.root),
                "--host",
                host,
                "--port",
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=fh,
            cwd=home.root,
            env=None if env is None else dict(env),
            start_new_session=True,  # outlives this command and its terminal
        )
    assert proc.stdout is not None
    with proc.stdout as pipe:
        ready, _, _ = select.select([pipe], [], [], timeout)
        line = pipe.readline().decode(errors="replace").strip() if ready else ""
    proc.wait(timeout)
    info = home.running_daemon()
    if line.startswith("READY") and info is not None and info.url:
        return info, True
    tail = "\n".join(out.read_text(errors="replace").strip().splitlines()[-5:])
    reason = line.removeprefix("ERROR ") if line else f"not ready within {timeout:.0f}s"
    msg = f"the farm daemon did not start: {reason}; see {out}:\n{tail}"
    raise FarmDaemonError(msg)


def stop(home: FarmHome, timeout: float = STOP_TIMEOUT_S) -> DaemonInfo | None:
    """Stop the running daemon (SIGTERM, then SIGKILL); None if none was running."""
    import psutil

    info = home.running_daemon()
    if info is None:
        stale = home.read_daemon()
        if stale is not None:
            home.clear_daemon(stale.pid)
        return None
    process = psutil.Process(info.pid)
    # No client may find the farm from now on: while the daemon winds down (up to
    # STOP_TIMEOUT_S) and after, its port is free for anyone to bind. Clients verify
    # whoever answers there anyway (shadowfarm_wire.trust); this shortens the window.
    home.clear_daemon(info.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        # Its workers watch it (PR_SET_PDEATHSIG, stdin EOF): they go down with it.
        process.kill()
        process.wait(timeout)
        home.clear_daemon(info.pid)
    return info


class _Notifier:
    """The pipe to ``start``: one line, READY <url> or ERROR <why>, then closed."""

    def __init__(self, fd: int | None) -> None:
        self.stream = os.fdopen(fd, "w") if fd is not None else None

    def say(self, line: str) -> None:
        if self.stream is not None:
            with contextlib.suppress(OSError):
                self.stream.write(line + "\n")
                self.stream.close()
            self.stream = None

    def ready(self, url: str) -> None:
        self.say(f"READY {url}")

    def failed(self, exc: BaseException) -> None:
        self.say(f"ERROR {exc}")


def _daemonize() -> _Notifier:
    """Fork; the parent exits, the child goes on (nobody's child, in its own session)."""
    if os.fork():
        os._exit(0)
    notifier = _Notifier(os.dup(1))
    os.dup2(2, 1)  # prints go to the log; the pipe carries only READY/ERROR
    return notifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farm_server.daemon")
    parser.add_argument("--home", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--daemonize", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    home = FarmHome.resolve(args.home, os.environ)
    notifier = _daemonize() if args.daemonize else _Notifier(None)
    try:
        return serve(home, args.host, args.port, args.log_level, on_ready=notifier.ready)
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        notifier.failed(exc)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
