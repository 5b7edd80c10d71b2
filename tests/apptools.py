"""An in-process farm for fast tests: a real Farm, store and home, a launcher that starts
no process, and the real HTTP API served by uvicorn on a loopback port in a thread.

The API, the FarmClient and the CLI's farm commands are tested against it without a
daemon process; what needs real processes is in tests/e2e. The farm is a security
boundary: :class:`ApiClient` proves the farm and signs its requests with the plugin's own
client code, :func:`serve_farm` gives the farm its URL (the Host header must name it),
and :class:`WorkerDoors` admits hand-offs with the warm worker's own door.
"""

from __future__ import annotations

import contextlib
import json
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

from farm_server.api import create_app
from farm_server.config import FarmConfig
from farm_server.farm import Farm
from farm_server.gate import accept_client, listen
from farm_server.pool import Pool
from farm_server.store import FarmStore
from farm_server.worker import WorkerSpec
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint
from shadowfarm_wire.home import DaemonInfo, FarmHome
from shadowfarm_wire.protocol import ACK
from shadowfarm_wire.trust import SCHEME, request_mac

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


@contextlib.contextmanager
def serve_farm(api_server: Mount, farm: Farm) -> Iterator[str]:
    """Serve ``farm``'s real app at ``api_server``; ``farm.url`` is that URL, as the daemon
    sets it (the farm admits only requests whose Host header names its port)."""
    with api_server.mount(create_app(farm)) as url:
        farm.url = url
        yield url


@dataclass
class ApiClient:
    """Raw requests to the served API, with the credentials ``auth`` names.

    ``auth=True``: as the plugin and the CLI, the farm proves it holds the token (the
    FarmClient's challenge) and the request is signed with that session's key; the token
    is never sent. ``auth="bearer"``: the token itself, as a tool such as Prometheus sends
    it. ``auth=False``: no credentials.
    """

    url: str
    token: str
    prover: FarmClient = field(init=False, repr=False)
    seq: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.prover = FarmClient(FarmEndpoint(self.url, self.token), timeout=SERVER_WAIT_S)

    def signature(self, method: str, path: str, body: bytes) -> str:
        """The ``Authorization`` of one request in this client's proved session."""
        if self.prover._session is None:
            self.prover.prove()
        assert self.prover._session is not None
        session, key = self.prover._session
        self.seq += 1
        mac = request_mac(key, self.seq, method, path, body)
        return f"{SCHEME} session={session}, seq={self.seq}, mac={mac}"

    def request(self, method: str, path: str, *, auth: bool | str = True, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        body = kwargs.pop("data", None)
        if "json" in kwargs:  # serialised here: the signature covers the bytes sent
            body = json.dumps(kwargs.pop("json")).encode()
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if auth == "bearer":
            headers.setdefault("Authorization", f"Bearer {self.token}")
        elif auth:
            headers.setdefault("Authorization", self.signature(method, path, body or b""))
        return requests.request(
            method, self.url + path, headers=headers, data=body, timeout=SERVER_WAIT_S, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)


@dataclass
class WorkerDoors:
    """The sockets of a farm's NoProcess workers, each behind the warm worker's own door
    (farm_server.gate: 0600 in the private sockets directory, the peer's uid, the worker's
    token and profile); an admitted client gets ACK and keeps its connection until it
    closes it. ``admitted`` holds the hellos, in order."""

    farm: Farm
    admitted: list[dict[str, Any]] = field(default_factory=list)
    servers: list[socket.socket] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def open(self, *worker_ids: str) -> None:
        for worker_id in worker_ids:
            worker = self.farm.pool.workers[worker_id]
            server = listen(Path(worker.socket))
            server.settimeout(SERVER_WAIT_S)
            thread = threading.Thread(
                target=self._serve, args=(server, worker.token, worker.profile_key), daemon=True
            )
            thread.start()
            self.servers.append(server)
            self.threads.append(thread)

    def _serve(self, server: socket.socket, token: str, profile_key: str) -> None:
        with contextlib.suppress(OSError):
            client = accept_client(server, token.encode(), profile_key=profile_key)
            for fd in client.fds:
                os.close(fd)
            self.admitted.append(client.hello)
            with client.conn as conn:
                conn.sendall(ACK)
                conn.settimeout(SERVER_WAIT_S)
                conn.recv(1)  # until the client closes

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes a pending accept
            server.close()
        for thread in self.threads:
            thread.join(SERVER_WAIT_S)


def pretend_running(home: FarmHome, url: str) -> None:
    """daemon.json naming this process (alive, same start time) as the daemon at ``url``."""
    import psutil

    pid = os.getpid()
    home.write_daemon(DaemonInfo(pid, psutil.Process(pid).create_time(), url))


def private(path: Path) -> FarmHome:
    return FarmHome(path).create()
