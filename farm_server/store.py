"""The farm's database (SQLite, WAL): config, profiles, claims, worker lives and endings,
telemetry.

Only the daemon writes it, from the API's threads and the pool's; one connection behind
a lock is enough for that traffic. Profiles survive a restart, so a restarted farm warms
the projects it knew without waiting for their next run.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from farm_server.learning import StoredEnding
from shadowfarm_wire.endings import WorkerEnding

__all__ = ["SCHEMA_VERSION", "FarmStore"]

SCHEMA_VERSION = 1
#: worker rows kept after they are gone (for ``farm workers --all`` and warm-up times)
KEEP_GONE_WORKERS = 1000
#: a profile retired, or unclaimed, this long is forgotten (30 days)
PROFILE_MAX_AGE_S = 30 * 86400.0
#: telemetry posts kept, the newest (the database must not grow with every run forever)
KEEP_TELEMETRY_POSTS = 5000
#: worker endings kept per profile, the newest (what the max age is learned from)
KEEP_ENDINGS = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (
    key TEXT PRIMARY KEY, profile TEXT NOT NULL, shadow_tests TEXT NOT NULL,
    min_warm INTEGER, max_warm INTEGER, registered REAL NOT NULL, last_claim REAL,
    retired REAL, drained INTEGER NOT NULL DEFAULT 0, health TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY, profile_key TEXT NOT NULL, requested INTEGER NOT NULL,
    granted INTEGER NOT NULL, client TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, profile_key TEXT NOT NULL, claim_id TEXT, pid INTEGER,
    state TEXT NOT NULL, spawned REAL NOT NULL, ready REAL, claimed REAL, released REAL,
    ended REAL, end_reason TEXT NOT NULL DEFAULT '', report TEXT
);
CREATE TABLE IF NOT EXISTS telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL, claim_id TEXT,
    worker_id TEXT, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, profile_key TEXT NOT NULL, worker_id TEXT NOT NULL,
    at REAL NOT NULL, ended TEXT NOT NULL, cause TEXT NOT NULL, tests INTEGER NOT NULL,
    seconds REAL NOT NULL, reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS endings_by_profile ON endings (profile_key, at);
"""


class FarmStore:
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> FarmStore:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            db.close()
            msg = f"{path} has farm schema {version}, newer than this farm ({SCHEMA_VERSION})"
            raise sqlite3.DatabaseError(msg)
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # Workers of an earlier daemon life are gone whatever their last recorded state.
        db.execute(
            "UPDATE workers SET state='gone', end_reason='daemon restarted' WHERE state != 'gone'"
        )
        return cls(db, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- config ----------------------------------------------------------------------------

    def load_config(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._exec("SELECT key, value FROM config")}

    def save_config(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM config")
            self._db.executemany(
                "INSERT INTO config VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
            )
            self._db.execute("COMMIT")

    # --- profiles --------------------------------------------------------------------------

    def save_profile(self, entry: Any) -> None:
        self._exec(
            "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.key,
                json.dumps(entry.profile.to_dict()),
                json.dumps(entry.shadow_tests),
                entry.min_warm,
                entry.max_warm,
                entry.registered,
                entry.last_claim,
                entry.retired,
                int(entry.drained),
                entry.health,
            ),
        )

    def load_profiles(self) -> list[dict[str, Any]]:
        """Profiles not retired, as dicts of their columns (JSON decoded)."""
        rows = self._exec(
            "SELECT key, profile, shadow_tests, min_warm, max_warm, registered, last_claim, "
            "drained, health FROM profiles WHERE retired IS NULL"
        )
        names = (
            "key",
            "profile",
            "shadow_tests",
            "min_warm",
            "max_warm",
            "registered",
            "last_claim",
            "drained",
            "health",
        )
        found = []
        for row in rows:
            data = dict(zip(names, row, strict=True))
            data["profile"] = json.loads(data["profile"])
            data["shadow_tests"] = json.loads(data["shadow_tests"])
            data["drained"] = bool(data["drained"])
            found.append(data)
        return found

    # --- claims and workers ----------------------------------------------------------------

    def record_claim(
        self,
        claim_id: str,
        profile_key: str,
        requested: int,
        granted: int,
        client: dict[str, Any],
        created: float,
    ) -> None:
        self._exec(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
            (claim_id, profile_key, requested, granted, json.dumps(client), created),
        )

    def claim_totals(self) -> tuple[int, int, int]:
        """(claims, workers requested, workers granted) over the farm's whole life."""
        row = self._exec(
            "SELECT count(*), coalesce(sum(requested), 0), coalesce(sum(granted), 0) FROM claims"
        )[0]
        return (int(row[0]), int(row[1]), int(row[2]))

    def claim_log(self, profile_key: str) -> list[tuple[float, int]]:
        """(time, workers requested) of every claim of ``profile_key``, oldest first: the
        demand history the forecast policy learns from across restarts."""
        rows = self._exec(
            "SELECT created, requested FROM claims WHERE profile_key = ? ORDER BY created",
            (profile_key,),
        )
        return [(float(t), int(n)) for t, n in rows]

    def save_worker(self, worker: Any) -> None:
        self._exec(
            "INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                worker.id,
                worker.profile_key,
                worker.claim_id,
                worker.pid,
                worker.state,
                worker.spawned,
                worker.ready,
                worker.claimed,
                worker.released,
                worker.ended,
                worker.end_reason,
                json.dumps(worker.report) if worker.report is not None else None,
            ),
        )

    def prune_profiles(self, now: float, max_age_s: float = PROFILE_MAX_AGE_S) -> int:
        """Forget profiles retired, or not claimed, for ``max_age_s``; return how many.

        A project that moved, an interpreter that was removed, a lineage replaced by a
        newer profile: without this the farm would keep (and restore) them for ever.
        """
        cutoff = now - max_age_s
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM profiles WHERE (retired IS NOT NULL AND retired < ?) "
                "OR COALESCE(last_claim, registered) < ?",
                (cutoff, cutoff),
            )
            return int(cursor.rowcount)

    def prune_workers(self, keep: int = KEEP_GONE_WORKERS) -> None:
        self._exec(
            "DELETE FROM workers WHERE state = 'gone' AND id NOT IN "
            "(SELECT id FROM workers WHERE state = 'gone' ORDER BY spawned DESC LIMIT ?)",
            (keep,),
        )

    # --- worker endings (what the farm learns each profile's max age from) -----------------

    def record_ending(
        self, profile_key: str, worker_id: str, at: float, ending: WorkerEnding
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO endings (profile_key, worker_id, at, ended, cause, tests, seconds, "
                "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    profile_key,
                    worker_id,
                    at,
                    ending.ended,
                    ending.cause,
                    ending.tests,
                    ending.seconds,
                    ending.reason,
                ),
            )
            self._db.execute(
                "DELETE FROM endings WHERE profile_key = ? AND id NOT IN (SELECT id FROM endings "
                "WHERE profile_key = ? ORDER BY id DESC LIMIT ?)",
                (profile_key, profile_key, KEEP_ENDINGS),
            )

    def endings(self, profile_key: str) -> list[StoredEnding]:
        """The kept endings of ``profile_key``'s workers, oldest first."""
        rows = self._exec(
            "SELECT at, worker_id, ended, cause, tests, seconds, reason FROM endings "
            "WHERE profile_key = ? ORDER BY id",
            (profile_key,),
        )
        found = []
        for at, worker, ended, cause, tests, seconds, reason in rows:
            try:
                ending = WorkerEnding(ended, cause, int(tests), float(seconds), reason)
            except (TypeError, ValueError):
                continue  # a row this farm cannot read (a newer cause): it learns without it
            found.append(StoredEnding(float(at), str(worker), ending))
        return found

    # --- telemetry -------------------------------------------------------------------------

    def add_telemetry(
        self, received: float, claim_id: str | None, worker_id: str | None, payload: Any
    ) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO telemetry (received, claim_id, worker_id, payload) "
                "VALUES (?, ?, ?, ?)",
                (received, claim_id, worker_id, json.dumps(payload, allow_nan=False)),
            )
            row = int(cursor.lastrowid or 0)
            if row % 100 == 0:
                self._db.execute(
                    "DELETE FROM telemetry WHERE id <= ?", (row - KEEP_TELEMETRY_POSTS,)
                )
            return row

    def recent_telemetry(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` telemetry posts, newest first."""
        rows = self._exec(
            "SELECT id, received, claim_id, worker_id, payload FROM telemetry "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": row_id,
                "received": received,
                "claim_id": claim_id,
                "worker_id": worker_id,
                "samples": json.loads(payload),
            }
            for row_id, received, claim_id, worker_id, payload in rows
        ]

    def telemetry_count(self) -> int:
        return int(self._exec("SELECT count(*) FROM telemetry")[0][0])
