"""The Farm facade: persisting pool changes, crash logs kept for a post-mortem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farm_server import farm as farm_module
from farm_server.entries import Worker
from shadowfarm_wire.home import FarmHome
from tests.apptools import Clock, make_farm


@pytest.fixture
def farm(tmp_path: Path):
    farm = make_farm(FarmHome(tmp_path / "home"), Clock())
    yield farm
    farm.store.close()


def gone(worker_id: str, reason: str) -> Worker:
    return Worker(worker_id, "k", "t", "/s", 1.0, state="gone", end_reason=reason)


class TestFarm:
    def test_the_log_of_a_served_worker_is_removed(self, farm):
        """A worker that ended normally leaves no log behind."""
        log = farm.home.logs / "w-1.log"
        log.write_text("fine")
        farm.persist("worker", gone("w-1", "served"))
        assert not log.exists()
        assert farm.store._exec("SELECT id FROM workers") == [("w-1",)]

    def test_crash_logs_are_kept_the_newest_few(self, farm, monkeypatch):
        """Logs of crashed workers stay, up to KEEP_CRASH_LOGS, the oldest dropped."""
        monkeypatch.setattr(farm_module, "KEEP_CRASH_LOGS", 2)
        for i in range(3):
            log = farm.home.logs / f"w-{i}.log"
            log.write_text("traceback")
            os.utime(log, (100.0 + i, 100.0 + i))
        farm.persist("worker", gone("w-2", "exited 1"))
        assert sorted(p.name for p in farm.home.logs.glob("w-*.log")) == ["w-1.log", "w-2.log"]

    def test_a_config_change_reaches_the_pool_and_the_store(self, farm):
        """set_config swaps the pool's config and saves it."""
        new = farm.pool.config.updated({"tick_s": 2.0})
        farm.set_config(new)
        assert farm.pool.config is new
        assert farm.store.load_config()["tick_s"] == 2.0
