"""Helpers of the farm tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Imported here, at collection: pytester's sys.modules snapshot would otherwise drop
# requests after a test and leave a half re-imported copy for the next one.
import requests

from farm_server.worker import WorkerSpec
from pytest_shadowfarm.farm.handoff import WarmSlot
from shadowfarm_wire.profile import current_profile

#: every wait on a farm process is bounded by this (a loaded CI box warms slowly)
WAIT_S = 90.0
REPO = Path(__file__).resolve().parents[1]


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def make_spec(rootdir: Path, sockets: Path, worker_id: str, **overrides: Any) -> WorkerSpec:
    """A spec like the pool writes: the project's profile, one cheap shadow test, no nice."""
    import secrets

    warm = overrides.pop("warm_modules", ["idna"])
    values: dict[str, Any] = {
        "id": worker_id,
        "token": secrets.token_urlsafe(16),
        "socket": str(sockets / f"{worker_id}.sock"),
        "rootdir": str(rootdir),
        "profile_key": current_profile(str(rootdir), warm).key,
        "warm_modules": warm,
        "shadow_tests": ["tests/test_lib.py::test_version"],
        "nice": 0,
    }
    values.update(overrides)
    return WorkerSpec(**values)


@dataclass
class SpawnedWorker:
    """A worker process started the way the pool starts one, with its status events."""

    proc: subprocess.Popen[bytes]
    spec: WorkerSpec
    log: Path
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    pump: threading.Thread | None = None

    def start_pump(self) -> None:
        self.pump = threading.Thread(
            target=_pump, args=(self.proc.stdout, self.events), daemon=True
        )
        self.pump.start()

    def wait_for(self, name: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """The next event called ``name``; fails with the worker's log on timeout or exit."""
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {name!r} event within {timeout}s; log:\n{self.log.read_text()}")
            self.seen.append(event)
            if event["event"] == name:
                return event
            if event["event"] == "eof":
                pytest.fail(f"worker ended before {name!r}; log:\n{self.log.read_text()}")

    def slot(self, token: str | None = None) -> WarmSlot:
        return WarmSlot(
            self.spec.id, self.spec.socket, token or self.spec.token, self.spec.profile_key
        )

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.pump is not None:
            self.pump.join(5)


def _pump(stream: Any, events: queue.Queue[dict[str, Any]]) -> None:
    with stream:
        for line in stream:
            with contextlib.suppress(ValueError):
                events.put(json.loads(line))
    events.put({"event": "eof"})


def gone(pid: int) -> bool:
    """The process ended (a zombie waiting for a reaper counts as ended)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class RunningFarm:
    """A daemon started with ``farm_server.daemon.start`` on a temporary home."""

    home: Any
    url: str
    pid: int
    token: str
    seen_pids: set[int] = field(default_factory=set)

    def api(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        return requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def status(self) -> dict[str, Any]:
        data = self.api("GET", "/api/swarm/status").json()
        self.seen_pids.update(w["pid"] for w in data["workers"] if w["pid"])
        return data

    def claim(self, profile: Any, count: int, **extra: Any) -> dict[str, Any]:
        response = self.api(
            "POST",
            "/api/workers/claim",
            json={"profile": profile.to_dict(), "count": count, **extra},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll the status until ``predicate`` holds (bounded by WAIT_S)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            data = self.status()
            if predicate(data):
                return data
            if time.monotonic() > deadline:
                logs = sorted(self.home.logs.glob("*.log"))
                tail = "\n".join(p.read_text(errors="replace")[-1500:] for p in logs)
                pytest.fail(f"farm never reached: {what}; status: {data}\nlogs:\n{tail}")
            time.sleep(0.1)


def counts(status: dict[str, Any], key: str) -> dict[str, int]:
    """Workers per state of profile ``key`` ({} if the profile is not live)."""
    for profile in status["profiles"]:
        if profile["key"] == key:
            return profile["counts"]
    return {}


def slot_of(worker: dict[str, Any], profile_key: str) -> WarmSlot:
    return WarmSlot(worker["id"], worker["socket"], worker["token"], profile_key)
