"""The history database schema and its migrations.

The file is marked with SQLite's ``application_id`` so that a foreign SQLite file is
recognised and never written into; ``user_version`` holds the schema version. Each
migration takes the database from version ``n`` to ``n + 1`` inside one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from pytest_shadowfarm.history.records import FAILING

__all__ = ["APPLICATION_ID", "FAILED_RESULT", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

#: the WHERE clause of a failing result: queries must spell it exactly so, for SQLite to
#: use the partial index ``results_failing`` (https://sqlite.org/partialindex.html)
FAILED_RESULT = "outcome IN ({})".format(", ".join(f"'{o}'" for o in sorted(FAILING)))

#: "SFRM" as a 32-bit big-endian integer: marks the file as ours (PRAGMA application_id)
APPLICATION_ID = 0x5346524D


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, and we run inside BEGIN IMMEDIATE.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started REAL NOT NULL,
            finished REAL NOT NULL,
            wall_s REAL NOT NULL,
            git_commit TEXT,
            git_branch TEXT,
            argv TEXT NOT NULL DEFAULT '[]',
            workers INTEGER NOT NULL DEFAULT 0,
            counts TEXT NOT NULL DEFAULT '{}',
            source TEXT NOT NULL DEFAULT 'pytest'
        );
        CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            nodeid TEXT NOT NULL,
            outcome TEXT NOT NULL,
            setup_s REAL,
            call_s REAL,
            teardown_s REAL,
            duration_s REAL,
            worker TEXT,
            start_s REAL
        );
        CREATE INDEX results_by_nodeid ON results(nodeid, id);
        CREATE INDEX results_by_run ON results(run_id);
        """,
    )


def _v2(db: sqlite3.Connection) -> None:
    # Per-test resource use, filled from worker telemetry.
    _run_script(
        db,
        """
        ALTER TABLE results ADD COLUMN peak_rss_kb INTEGER;
        ALTER TABLE results ADD COLUMN cpu_s REAL;
        """,
    )


def _v3(db: sqlite3.Connection) -> None:
    # The few tests that ever failed, without a scan of every result (RecentHistory).
    db.execute(f"CREATE INDEX results_failing ON results(nodeid, id) WHERE {FAILED_RESULT}")


def _v4(db: sqlite3.Connection) -> None:
    # One row per test, and the per-test index on its integer id instead of the nodeid
    # text: a run inserts one entry per test at a random place in that index, and with
    # 30-100 byte keys (50 results of 5,000 tests: ~10 MB of index) every insert dirtied
    # its own page. Integer keys make the index a quarter of the size and the write of a
    # 5,000-test run about 0.08 s cheaper (benchmarks/bench_overhead.py). ``results``
    # keeps its nodeid column: every reader and exporter still reads it directly.
    _run_script(
        db,
        """
        CREATE TABLE tests (id INTEGER PRIMARY KEY, nodeid TEXT NOT NULL UNIQUE);
        INSERT INTO tests (nodeid) SELECT DISTINCT nodeid FROM results ORDER BY nodeid;
        ALTER TABLE results ADD COLUMN test_id INTEGER REFERENCES tests(id);
        UPDATE results SET test_id = (SELECT id FROM tests WHERE tests.nodeid = results.nodeid);
        CREATE INDEX results_by_test ON results(test_id, id);
        DROP INDEX results_by_nodeid
        """,
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, *, upto: int = SCHEMA_VERSION) -> int:
    """Bring ``db`` to schema version ``upto``; return the version it had before.

    Runs under ``BEGIN IMMEDIATE`` so that two processes opening a new file at once
    do not both create the tables.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        for version in range(found, upto):
            MIGRATIONS[version](db)
        if found < upto:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {upto}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return int(found)
