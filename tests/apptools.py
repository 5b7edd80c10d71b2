"""An in-process farm for fast tests: a real Farm, store and home, a launcher that starts
no process, and the real HTTP API served by uvicorn on a loopback port in a thread.

The API, the FarmClient and the CLI's farm commands are tested against it without a
daemon process; what needs real processes is in tests/e2e.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Imported at collection, as in tests/farmtools.py (pytester's sys.modules snapshot).
import pytest
import requests

from farm_server.config import FarmConfig
from farm_server.farm import Farm
from farm_server.pool import Pool
from farm_server.store import FarmStore
from farm_server.worker import WorkerSpec
from shadowfarm_wire.home import DaemonInfo, FarmHome

#: every wait on the in-process server is bounded by this
SERVER_WAIT_S = 10.0


class Clock:
    """A hand-driven clock (seconds)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class NoProcess:
    """A launched worker that is no process: alive until terminated, then it 'exits'."""

    pid: int
    worker_id: str
    pool: Pool
    running: bool = True

    def alive(self) -> bool:
        return self.running

    def terminate(self) -> None:
        if self.running:
            self.running = False
            self.pool.on_exit(self.worker_id, -15)

    kill = terminate

    def wait(self, timeout: float) -> int | None:
        return None if self.running else -15


@dataclass
class NoProcessLauncher:
    """Records what the pool asked to launch; starts nothing."""

    pool: Pool | None = None
    launched: list[WorkerSpec] = field(default_factory=list)

    def launch(self, spec: WorkerSpec, interpreter: str, on_event: Any, on_exit: Any) -> NoProcess:
        assert self.pool is not None
        self.launched.append(spec)
        return NoProcess(2000 + len(self.launched), spec.id, self.pool)


def make_farm(home: FarmHome, clock: Clock, **config: Any) -> Farm:
    """A Farm over a real store and home, whose pool launches nothing."""
    home.create()
    store = FarmStore.open(home.database)
    launcher = NoProcessLauncher()
    settings = {"default_min_warm": 1, "default_max_warm": 2, "max_warming": 4, **config}
    pool = Pool(
        FarmConfig(**settings), launcher, home.sockets, clock=clock, idle=lambda: 8.0, cores=8
    )
    launcher.pool = pool
    farm = Farm(home, home.ensure_token(), store, pool)
    pool.on_change = farm.persist
    return farm


def warm_all(farm: Farm, modules: tuple[str, ...] = ()) -> list[str]:
    """One supervisor pass, then every warming worker reports ready; their ids."""
    farm.pool.reconcile()
    ids = [w.id for w in farm.pool.live("warming")]
    for worker_id in ids:
        farm.pool.on_event(
            worker_id, {"event": "ready", "report": {"ok": True, "modules": list(modules)}}
        )
    return ids


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) in a thread; yield its URL."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_WAIT_S
    while not server.started:
        assert time.monotonic() < deadline, "the in-process API did not start"
        assert thread.is_alive(), "the in-process API thread died"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(SERVER_WAIT_S)
        sock.close()


class Mount:
    """One server for the session (uvicorn takes 0.2 s to stop); each test mounts its app."""

    def __init__(self) -> None:
        self.app: Any = None
        self.url = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "no app mounted"
        await self.app(scope, receive, send)

    @contextlib.contextmanager
    def mount(self, app: Any) -> Iterator[str]:
        """Serve ``app`` at :attr:`url` for the ``with`` block; yield the URL."""
        self.app = app
        try:
            yield self.url
        finally:
            self.app = None


@pytest.fixture(scope="session")
def api_server() -> Iterator[Mount]:
    """An in-process HTTP server for the session; ``api_server.mount(app)`` per test."""
    mount = Mount()
    with serve(mount) as url:
        mount.url = url
        yield mount


@dataclass
class ApiClient:
    """Requests to the served API; ``auth=False`` leaves the bearer token out."""

    url: str
    token: str

    def request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return requests.request(
            method, self.url + path, headers=headers, timeout=SERVER_WAIT_S, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)


def pretend_running(home: FarmHome, url: str) -> None:
    """daemon.json naming this process (alive, same start time) as the daemon at ``url``."""
    import psutil

    pid = os.getpid()
    home.write_daemon(DaemonInfo(pid, psutil.Process(pid).create_time(), url))


def private(path: Path) -> FarmHome:
    return FarmHome(path).create()
