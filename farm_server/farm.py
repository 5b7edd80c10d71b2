"""The farm facade: the one object the HTTP API and the daemon's main loop talk to.

It owns the running farm's pool, database and token, and turns API calls into pool
operations plus their record in the store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable
from typing import Any

from farm_server.config import FarmConfig
from farm_server.disk import DiskHealth
from farm_server.interpreters import Interpreters
from farm_server.learning import Learned, learn
from farm_server.pool import ClaimResult, Pool, Worker
from farm_server.status import PoolCollector, status
from farm_server.store import FarmStore
from shadowfarm_wire.endings import WorkerEnding
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import Profile

__all__ = ["KEEP_CRASH_LOGS", "Farm"]

#: logs of workers that died on their own are kept for a post-mortem, the newest few
KEEP_CRASH_LOGS = 50


class Farm:
    """The running farm: pool, database and token, as the API sees them."""

    def __init__(
        self,
        home: FarmHome,
        token: str,
        store: FarmStore,
        pool: Pool,
        interpreters: Interpreters | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry

        self.home = home
        self.token = token
        self.store = store
        self.pool = pool
        self.interpreters = interpreters or Interpreters(home.root)
        self.disk = DiskHealth(home.root)
        self.clock = pool.clock
        self.pid = os.getpid()
        self.started = self.clock()
        self.url = ""
        self.registry = CollectorRegistry()
        self.registry.register(PoolCollector(pool, self.learned_all))

    def claim(
        self,
        profile: Profile,
        count: int,
        modules: Iterable[str],
        shadow_tests: Iterable[str],
        client: dict[str, Any],
        plugins: Iterable[str] | None = None,
    ) -> ClaimResult:
        """Claim warm workers; InterpreterRejected (nothing registered) for a bad interpreter."""
        self.interpreters.verify(profile)
        result = self.pool.claim(profile, count, modules, shadow_tests, plugins)
        self._write(
            "recording a claim",
            self.store.record_claim,
            result.claim_id,
            result.profile_key,
            count,
            len(result.workers),
            client,
            self.clock(),
        )
        return result

    def release(self, worker_id: str, ending: WorkerEnding | None = None) -> Worker | None:
        """The run is done with ``worker_id``; ``ending`` (how it ended) feeds its profile's
        history, once per worker, and only for a worker that was claimed. None: unknown."""
        worker = self.pool.release(worker_id)
        if worker is None or ending is None:
            return worker
        with self.pool.lock:
            if worker.claim_id is None or worker.ending_reported:
                return worker
            worker.ending_reported = True
        self._write(
            f"recording how worker {worker.id} ended",
            self.store.record_ending,
            worker.profile_key,
            worker.id,
            self.clock(),
            ending,
        )
        return worker

    def record_endings(self, profile_key: str, endings: list[WorkerEnding]) -> bool:
        """Endings of a run's workers the farm did not provide; False: no such live profile."""
        with self.pool.lock:
            entry = self.pool.profiles.get(profile_key)
            if entry is None or entry.retired is not None:
                return False
        for ending in endings:
            self._write(
                "recording how a run's worker ended",
                self.store.record_ending,
                profile_key,
                "",
                self.clock(),
                ending,
            )
        return True

    def learned(self, profile_key: str) -> Learned:
        """What the farm learned of ``profile_key``'s workers: its max age, from the store."""
        try:
            endings = self.store.endings(profile_key)
        except (sqlite3.Error, OSError) as exc:
            self.disk.failed("reading worker endings", exc)
            endings = []
        return learn(endings, self.clock())

    def learned_all(self) -> dict[str, Learned]:
        return {entry.key: self.learned(entry.key) for entry in self.pool.find_profiles("all")}

    def health(self) -> dict[str, Any]:
        """``ok`` and, when not, the ``problems`` (full disk, failed writes)."""
        problems = self.disk.problems()
        return {"ok": not problems, "pid": self.pid, "problems": problems}

    def _write(self, what: str, write: Any, *args: Any) -> None:
        """A database write; a failure (full disk) is reported, never raised into a thread."""
        try:
            write(*args)
        except (sqlite3.Error, OSError) as exc:
            self.disk.failed(what, exc)
        else:
            self.disk.succeeded()

    def status(self) -> dict[str, Any]:
        now = self.clock()
        extra = {
            "health": self.health(),
            "pid": self.pid,
            "url": self.url,
            "home": str(self.home.root),
            "uptime_s": round(now - self.started, 3),
        }
        learned = {key: value.to_dict() for key, value in self.learned_all().items()}
        return status(
            self.pool, now=now, totals=self.store.claim_totals(), extra=extra, learned=learned
        )

    def set_config(self, config: FarmConfig) -> None:
        with self.pool.lock:
            self.pool.config = config
            self.pool.wake.notify_all()
        self._write("saving the config", self.store.save_config, config.model_dump())

    def persist(self, kind: str, obj: Any) -> None:
        if kind == "profile":
            self._write(f"saving profile {obj.key}", self.store.save_profile, obj)
        elif kind == "worker":
            self._write(f"saving worker {obj.id}", self.store.save_worker, obj)
            if obj.state == "gone":
                self._tidy_log(obj)

    def _tidy_log(self, worker: Any) -> None:
        """Keep the logs of workers that died on their own (the newest few), drop the rest."""
        crashed = worker.end_reason.startswith(("exited", "could not start"))
        if not crashed:
            for name in (f"{worker.id}.log", f"{worker.id}.log.1"):
                with contextlib.suppress(OSError):
                    (self.home.logs / name).unlink()
            return
        logs = sorted(self.home.logs.glob("w-*.log"), key=lambda p: p.stat().st_mtime)
        for old in logs[:-KEEP_CRASH_LOGS]:
            with contextlib.suppress(OSError):
                old.unlink()
