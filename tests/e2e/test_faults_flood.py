"""A flood of half-open connections (slowloris) against a real daemon started under 1,024 fds."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from farm_server.limits import HEADER_TIMEOUT_S
from shadowfarm_wire.home import FarmHome
from tests.farmtools import REPO, gone, wait_until

pytestmark = pytest.mark.slow

FLOOD = 1200


def _low_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


@pytest.fixture
def low_limit_farm(tmp_path: Path) -> Iterator[tuple[FarmHome, str, int, Path]]:
    """``farm serve`` started with a soft limit of 1,024 descriptors; its stderr in a file."""
    home = FarmHome(tmp_path / "home")
    out = tmp_path / "serve.out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "farm_server.daemon", "--home", str(home.root)],
            stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_low_fd_limit,
        )  # fmt: skip
    try:
        assert wait_until(lambda: home.running_daemon() is not None, 60), out.read_text()
        info = home.running_daemon()
        assert info is not None
        assert info.url is not None
        yield home, info.url, proc.pid, out
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        assert wait_until(lambda: gone(proc.pid), 10)


def _soft_nofile(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no Max open files line")


def test_the_farm_answers_through_a_slowloris_flood(low_limit_farm):
    """1,200 half-open connections: health answers, slow ones are cut, the log stays small."""
    home, url, pid, out = low_limit_farm
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < FLOOD + 200:
        pytest.skip(f"the hard fd limit ({hard}) is too low to open {FLOOD} connections")
    assert _soft_nofile(pid) == hard  # raised at start
    host, port = url.removeprefix("http://").rsplit(":", 1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never finished
            flood.append(sock)
        started = time.monotonic()
        response = requests.get(url + "/api/health", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 5
        # Slow clients are cut after the header deadline (bounded wait).
        first = flood[0]
        first.settimeout(HEADER_TIMEOUT_S + 20)
        with contextlib.suppress(ConnectionResetError):
            assert first.recv(1) == b""
    finally:
        for sock in flood:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert requests.get(url + "/api/health", timeout=5).ok
    logged = out.stat().st_size + (home.logs / "daemon.log").stat().st_size
    assert logged < 100_000, out.read_text()[-2000:]


def test_a_client_that_never_finishes_its_headers_is_cut(low_limit_farm):
    """One half-open connection is closed by the farm after the header deadline."""
    _home, url, _pid, _out = low_limit_farm
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\n")
        started = time.monotonic()
        sock.settimeout(HEADER_TIMEOUT_S + 20)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""
        assert time.monotonic() - started > HEADER_TIMEOUT_S - 1
