"""The farm's SQLite store: schema version, workers across restarts, pruning, claims."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from farm_server.entries import ProfileEntry, Worker
from farm_server.store import FarmStore
from shadowfarm_wire.profile import current_profile

PROFILE = current_profile("/src/proj", distributions=[("numpy", "1")], executable="/py")


def worker(worker_id: str, spawned: float, state: str = "gone") -> Worker:
    return Worker(worker_id, PROFILE.key, "tok", f"/s/{worker_id}.sock", spawned, state=state)


def worker_rows(store: FarmStore) -> list[tuple[str, str, str]]:
    return store._exec("SELECT id, state, end_reason FROM workers ORDER BY spawned")


class TestFarmStore:
    def test_a_database_of_a_newer_farm_is_refused(self, tmp_path: Path):
        """A schema newer than this farm's: DatabaseError naming both versions."""
        path = tmp_path / "farm.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA user_version=7")
        with pytest.raises(sqlite3.DatabaseError, match="farm schema 7, newer than this farm"):
            FarmStore.open(path)

    def test_workers_of_an_earlier_life_are_gone_after_a_restart(self, tmp_path: Path):
        """Reopening marks every worker not gone as gone, 'daemon restarted'."""
        path = tmp_path / "farm.sqlite"
        store = FarmStore.open(path)
        store.save_worker(worker("w-1", 1.0, state="warm"))
        store.close()
        store = FarmStore.open(path)
        assert worker_rows(store) == [("w-1", "gone", "daemon restarted")]
        store.close()

    def test_pruning_keeps_the_newest_gone_workers(self, tmp_path: Path):
        """Only the newest ``keep`` gone workers stay; live ones are never pruned."""
        store = FarmStore.open(tmp_path / "farm.sqlite")
        for i in range(4):
            store.save_worker(worker(f"w-{i}", float(i)))
        store.save_worker(worker("w-live", 0.5, state="warm"))
        store.prune_workers(keep=2)
        assert [row[0] for row in worker_rows(store)] == ["w-live", "w-2", "w-3"]
        store.close()

    def test_retired_profiles_are_not_loaded(self, tmp_path: Path):
        """load_profiles returns the live ones, JSON decoded."""
        store = FarmStore.open(tmp_path / "farm.sqlite")
        store.save_profile(ProfileEntry(PROFILE, registered=1.0, shadow_tests=["t::a"]))
        other = current_profile("/src/b", distributions=[("x", "1")], executable="/py")
        store.save_profile(ProfileEntry(other, registered=2.0, retired=3.0))
        [row] = store.load_profiles()
        assert (row["key"], row["shadow_tests"], row["drained"]) == (PROFILE.key, ["t::a"], False)
        assert row["profile"] == PROFILE.to_dict()
        store.close()

    def test_claim_totals_sum_every_claim(self, tmp_path: Path):
        """(claims, requested, granted) over the farm's life; zeros when there are none."""
        store = FarmStore.open(tmp_path / "farm.sqlite")
        assert store.claim_totals() == (0, 0, 0)
        store.record_claim("c-1", PROFILE.key, 4, 1, {"pid": 1}, 1.0)
        store.record_claim("c-2", PROFILE.key, 2, 2, {}, 2.0)
        assert store.claim_totals() == (2, 6, 3)
        store.close()
