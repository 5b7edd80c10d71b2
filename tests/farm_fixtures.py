"""Fixtures of the farm tests: a tiny project, real worker processes, bounded waits.

Loaded by tests/conftest.py (``pytest_plugins``) for every folder of the suite.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_shadowfarm.farm.handoff import WarmSlot
from tests.farmtools import (
    REPO,
    RunningFarm,
    SpawnedWorker,
    gone,
    make_spec,
    private_dir,
    wait_until,
)

PYPROJECT = """
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]
filterwarnings = ["error"]
"""

TESTS = """
import certifi
import mylib


def test_version():
    assert mylib.VERSION >= 1


def test_where():
    assert certifi.where()
"""


@pytest.fixture
def farm_project(tmp_path: Path) -> Path:
    """A project whose tests import a third-party module (certifi) and its own mylib."""
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "src" / "mylib.py").write_text("VERSION = 1\n")
    (root / "tests" / "test_lib.py").write_text(TESTS)
    return root


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., SpawnedWorker]]:
    """Start warm workers for a project; every one is stopped at teardown."""
    started: list[SpawnedWorker] = []
    sockets = private_dir(tmp_path / "sockets")

    def spawn(rootdir: Path, **overrides: Any) -> SpawnedWorker:
        worker_id = f"w{len(started)}"
        spec = make_spec(rootdir, sockets, worker_id, **overrides)
        log = tmp_path / f"{worker_id}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "farm_server.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=tmp_path,
                env=env,
                start_new_session=True,
            )
        assert proc.stdin is not None
        proc.stdin.write(spec.to_json())
        proc.stdin.flush()
        worker = SpawnedWorker(proc, spec, log)
        worker.start_pump()
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.stop()


@pytest.fixture
def open_gateway() -> Iterator[Callable[..., Any]]:
    """Hand a warm worker to a fresh execnet group, as the plugin does; groups end at teardown."""
    import execnet

    from pytest_shadowfarm.farm.handoff import connect_worker, make_gateway

    groups: list[Any] = []

    def open_(slot: WarmSlot, **context: Any) -> Any:
        group = execnet.Group(execmodel="main_thread_only")
        groups.append(group)
        spec = execnet.XSpec("execmodel=main_thread_only//popen")
        group.allocate_id(spec)
        sock = connect_worker(slot, spec.id, **context)
        return make_gateway(group, spec, sock)

    yield open_
    for group in groups:
        group.terminate(5)


@pytest.fixture
def start_farm(tmp_path: Path) -> Iterator[Callable[..., RunningFarm]]:
    """Start real farm daemons on a temporary home; each is stopped, and checked, at teardown."""
    from farm_server import daemon
    from shadowfarm_wire.home import FarmHome

    started: list[RunningFarm] = []

    def start(name: str = "home", env: dict[str, str] | None = None, **config: Any) -> RunningFarm:
        home = FarmHome(tmp_path / name)
        run_env = {**os.environ, **(env or {})}
        info, _ = daemon.start(home, env=run_env)
        assert info.url is not None
        farm = RunningFarm(home, info.url, info.pid, home.read_token() or "")
        started.append(farm)
        farm.seen_pids.add(info.pid)
        if config:
            response = farm.api("PUT", "/api/swarm/config", json=config)
            assert response.status_code == 200, response.text
        return farm

    yield start
    for farm in started:
        with contextlib.suppress(Exception):
            farm.status()
        daemon.stop(farm.home)
        leftovers = [pid for pid in farm.seen_pids if not wait_until(lambda p=pid: gone(p), 10)]
        for pid in leftovers:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        assert not leftovers, f"processes left behind by the farm: {leftovers}"
