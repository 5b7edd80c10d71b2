"""The history database: SQLite in WAL mode, safe for concurrent runs, bounded in size.

Only the controller process writes (xdist workers never open it). A run is written in
one ``BEGIN IMMEDIATE`` transaction at session end, so two runs writing the same file at
once serialise on SQLite's lock (busy timeout) and lose nothing. A file that is not ours,
or is corrupt, is moved aside with a :class:`ShadowFarmWarning`; a run never fails
because of its history.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from pytest_shadowfarm.errors import HistoryError, ShadowFarmWarning
from pytest_shadowfarm.history.opening import (
    BUSY_TIMEOUT_S,
    NotOurs,
    connect_checked,
    move_aside,
    opening,
)
from pytest_shadowfarm.history.records import (
    HistorySummary,
    Overheads,
    PastResult,
    RecentHistory,
    ResultRecord,
    RunRecord,
)
from pytest_shadowfarm.history.schema import (
    FAILED_RESULT,
)

__all__ = ["BUSY_TIMEOUT_S", "HistoryStore", "PastResult", "RecentHistory"]

#: the write-ahead log's bound, in pages, for a connection that defers checkpoints to
#: its close (larger than any one run's write: 5,000 tests write about 1,400 since schema 4)
DEFERRED_CHECKPOINT_PAGES = 10_000

#: delete the results of test ``?1`` older than its newest ``?2 + 1``
_PRUNE = (
    "DELETE FROM results WHERE test_id = ?1 AND id < "
    "(SELECT id FROM results WHERE test_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)"
)


def _warn(message: str) -> None:
    warnings.warn(message, ShadowFarmWarning, stacklevel=3)


#: the newest ``:per_test`` results of each test whose nodeid the subquery ``tests``
#: names, oldest first (through the per-test index ``results_by_test``)
_NEWEST_OF = (
    "SELECT t.nodeid, {columns} FROM tests AS t "
    "JOIN results r ON r.id IN "
    " (SELECT id FROM results WHERE test_id = t.id ORDER BY id DESC LIMIT :per_test) "
    "{join} WHERE t.nodeid IN ({tests}) ORDER BY r.id"
)

#: the newest results of every test that failed at least once: the partial index
#: ``results_failing`` finds those tests without a scan of every result
_NEWEST_OF_FAILED = _NEWEST_OF.format(
    columns="r.run_id, r.outcome, r.duration_s, runs.git_commit",
    tests=f"SELECT nodeid FROM results WHERE {FAILED_RESULT}",
    join="JOIN runs ON runs.id = r.run_id",
)


class HistoryStore:
    """A handle on one history file. Use :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path, db: sqlite3.Connection, keep: int) -> None:
        self.path = path
        self.keep = keep
        self._db = db

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        keep: int = 50,
        warn: Callable[[str], None] = _warn,
        repair: bool = True,
    ) -> HistoryStore:
        """Open (creating or migrating) the history at ``path``.

        A corrupt or foreign file is renamed to ``<name>.corrupt-<time>`` and a new
        history starts, after ``warn`` said so; with ``repair=False`` it raises
        :class:`HistoryError` instead and is left alone (for files the user named as
        input, e.g. ``shadowfarm history merge`` sources). A file written by a newer
        schema, or one SQLite cannot lock or open, raises :class:`HistoryError` (it is
        left alone: a newer pytest-shadowfarm or another run owns it).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        with opening(path):
            try:
                return cls(path, connect_checked(path), keep)
            except NotOurs as exc:
                if not repair:
                    msg = f"{path}: {exc}; expected a pytest-shadowfarm history file"
                    raise HistoryError(msg) from None
                aside = move_aside(path)
                warn(
                    f"{path}: {exc}; moved it to {aside.name} and started a new history "
                    "(delete the moved file if you do not need it)"
                )
                return cls(path, connect_checked(path), keep)

    def close(self) -> None:
        self._db.close()

    def defer_checkpoints(self) -> None:
        """Leave this connection's commits in the write-ahead log until it closes.

        SQLite copies the log into the database file (a checkpoint) at the commit that
        makes it longer than 1,000 pages, which a large run's write always does:
        0.06-0.1 s of a 5,000-test run's end. Deferred, the last connection's close
        does it (see :meth:`close_in_background`); the log stays bounded
        (:data:`DEFERRED_CHECKPOINT_PAGES`) even if some connection never closes.
        """
        self._db.execute(f"PRAGMA wal_autocheckpoint = {DEFERRED_CHECKPOINT_PAGES}")

    def close_in_background(self) -> threading.Thread:
        """Close on a thread of its own, returned started; this handle is done with.

        The last connection's close checkpoints the log into the database file, which
        runs in SQLite's C code without the GIL: here it overlaps the rest of the
        session's end (the terminal summary). The thread is not a daemon: the
        interpreter waits for it at exit, so the checkpoint is never cut short (an
        interrupted one would be safe, only redone by the next close).
        """
        thread = threading.Thread(target=self._db.close, name="shadowfarm-history-close")
        thread.start()
        return thread

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------

    def summary(self, *, tests: int | None = None) -> HistorySummary:
        """How many runs and tests the history holds (``tests``: already known)."""
        runs = self._db.execute("SELECT count(*) FROM runs").fetchone()[0]
        if tests is None:
            tests = self._db.execute("SELECT count(*) FROM tests").fetchone()[0]
        return HistorySummary(path=str(self.path), runs=runs, tests=tests)

    def results_by_test(self) -> dict[str, list[PastResult]]:
        """Every kept result, grouped by nodeid, oldest first."""
        rows = self._db.execute(
            "SELECT r.nodeid, r.run_id, r.outcome, r.duration_s, runs.git_commit "
            "FROM results r JOIN runs ON runs.id = r.run_id ORDER BY r.id"
        )
        grouped: dict[str, list[PastResult]] = defaultdict(list)
        for nodeid, run_id, outcome, duration, commit in rows:
            grouped[nodeid].append(PastResult(run_id, outcome, duration, commit))
        return dict(grouped)

    def recent(
        self, *, per_test: int, per_failing_test: int, workers: int | None = None
    ) -> RecentHistory:
        """The newest results of every test (see :class:`RecentHistory`).

        ``workers`` is the number of xdist workers this run starts (0 without xdist).
        Tests run slower beside other workers on the same CPUs (``-n 2`` on 2 cores:
        +10-20% on example_project), so when the history mixes worker counts, a test
        whose newest results include some from runs with ``workers`` workers takes its
        durations from those alone; the others keep all of theirs. A history of one
        worker count (a CI job's) is read as it is, at no cost.
        """
        durations: dict[str, tuple[float, ...]] = {}
        calls: dict[str, tuple[float, ...]] = {}
        runs: dict[str, tuple[int, ...]] = {}
        like = self._runs_like(workers)
        matched = 0
        by_test: dict[str, list[tuple[int, float | None, float | None]]] = defaultdict(list)
        for nodeid, run_id, duration, call in self._newest(per_test):
            by_test[nodeid].append((run_id, duration, call))
        for nodeid, results in by_test.items():
            results = results[-per_test:]
            runs[nodeid] = tuple([run_id for run_id, _, _ in results])
            if like is not None and (same := [r for r in results if r[0] in like]):
                matched += len(same) < len(results)
                results = same
            if total := tuple([d for _, d, _ in results if d is not None]):
                durations[nodeid] = total
            if body := tuple([c for _, _, c in results if c is not None]):
                calls[nodeid] = body
        failures: dict[str, list[PastResult]] = defaultdict(list)
        for nodeid, run_id, outcome, duration, commit in self._db.execute(
            _NEWEST_OF_FAILED, {"per_test": per_failing_test}
        ):
            failures[nodeid].append(PastResult(run_id, outcome, duration, commit))
        return RecentHistory(
            durations=durations,
            call_durations=calls,
            runs=runs,
            failures=dict(failures),
            like_this_run=matched,
        )

    def _runs_like(self, workers: int | None) -> set[int] | None:
        """The runs with ``workers`` workers; None when that filters nothing out."""
        if workers is None:
            return None
        counts = self._db.execute("SELECT DISTINCT workers FROM runs").fetchall()
        if len(counts) < 2 or (workers,) not in counts:
            return None
        return {
            run_id
            for (run_id,) in self._db.execute("SELECT id FROM runs WHERE workers = ?", (workers,))
        }

    def _newest(self, per_test: int) -> list[tuple[str, int, float | None, float | None]]:
        """(nodeid, run_id, duration_s, call_s) of at least the newest ``per_test`` results
        of every test, oldest first.

        Most runs run most tests, so the newest ``per_test`` runs hold most tests' newest
        results: one range of the run index reads them. Only the tests with fewer results
        there (not run lately, or new) are looked up by test.
        """
        columns = "SELECT nodeid, run_id, duration_s, call_s FROM results"
        oldest = self._db.execute(
            "SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?", (per_test - 1,)
        ).fetchone()
        if oldest is None:  # fewer runs than per_test: read everything
            return self._db.execute(f"{columns} ORDER BY id").fetchall()
        rows = self._db.execute(f"{columns} WHERE run_id >= ? ORDER BY id", oldest).fetchall()
        seen: dict[str, int] = {}
        for row in rows:
            seen[row[0]] = seen.get(row[0], 0) + 1
        short = [
            nodeid
            for (nodeid,) in self._db.execute("SELECT nodeid FROM tests")
            if seen.get(nodeid, 0) < per_test
        ]
        if not short:
            return rows
        lookup = _NEWEST_OF.format(
            columns="r.run_id, r.duration_s, r.call_s",
            tests="SELECT value FROM json_each(:nodeids)",
            join="",
        )
        wanted = set(short)
        kept = [row for row in rows if row[0] not in wanted]
        found = self._db.execute(lookup, {"nodeids": json.dumps(short), "per_test": per_test})
        return kept + found.fetchall()

    def durations(self, phase: Literal["total", "call"] = "total") -> dict[str, list[float]]:
        """nodeid -> known durations in seconds, oldest first (the estimator's input).

        ``total`` is setup + call + teardown; ``call`` is the test body alone, free of the
        module- and session-scoped fixtures that land in whichever test runs first.
        """
        column = {"total": "duration_s", "call": "call_s"}[phase]
        rows = self._db.execute(
            f"SELECT nodeid, {column} FROM results WHERE {column} IS NOT NULL ORDER BY id"
        )
        grouped: dict[str, list[float]] = defaultdict(list)
        for nodeid, duration in rows:
            grouped[nodeid].append(duration)
        return dict(grouped)

    def overheads(self, *, workers: int = 0, runs: int = 3) -> Overheads | None:
        """The time outside test durations of the newest ``runs`` pytest runs with
        ``workers`` workers (medians), or None when no such run recorded test start times.
        """
        rows = self._db.execute(
            "SELECT r.wall_s, COUNT(*), TOTAL(x.duration_s), MIN(x.start_s), "
            "MAX(x.start_s + x.duration_s) FROM runs r JOIN results x ON x.run_id = r.id "
            "WHERE r.source = 'pytest' AND r.workers = ? AND x.start_s IS NOT NULL "
            "GROUP BY r.id ORDER BY r.id DESC LIMIT ?",
            (workers, runs),
        ).fetchall()
        if not rows:
            return None
        # With workers, tests overlap and the gaps are not per test: only the time
        # before the first test and after the last one are read then.
        found = [
            Overheads(
                before_s=max(0.0, first),
                per_test_s=0.0 if workers else max(0.0, (last - first - total) / count),
                after_s=max(0.0, wall - last),
            )
            for wall, count, total, first, last in rows
        ]
        return Overheads(
            before_s=statistics.median(o.before_s for o in found),
            per_test_s=statistics.median(o.per_test_s for o in found),
            after_s=statistics.median(o.after_s for o in found),
        )

    def runs(self) -> list[tuple[int, RunRecord]]:
        rows = self._db.execute(
            "SELECT id, started, finished, argv, git_commit, git_branch, workers, counts, source "
            "FROM runs ORDER BY id"
        )
        return [
            (
                run_id,
                RunRecord(
                    started=started,
                    finished=finished,
                    argv=tuple(json.loads(argv)),
                    git_commit=commit,
                    git_branch=branch,
                    workers=workers,
                    counts=json.loads(counts),
                    source=source,
                ),
            )
            for run_id, started, finished, argv, commit, branch, workers, counts, source in rows
        ]

    def last_results(self) -> dict[str, ResultRecord]:
        """The newest result of every test (what ``export`` writes)."""
        rows = self._db.execute(
            "SELECT nodeid, outcome, setup_s, call_s, teardown_s, worker, start_s, "
            "peak_rss_kb, cpu_s FROM results WHERE id IN "
            "(SELECT max(id) FROM results GROUP BY test_id) ORDER BY nodeid"
        )
        return {row[0]: ResultRecord(*row) for row in rows}

    # --- writing ------------------------------------------------------------------------

    def record_run(self, run: RunRecord, results: Iterable[ResultRecord]) -> int:
        """Store one run and its results in one transaction, prune old ones; return the run id."""
        rows = list(results)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            run_id = db.execute(
                "INSERT INTO runs (started, finished, wall_s, git_commit, git_branch, argv, "
                "workers, counts, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.started,
                    run.finished,
                    run.wall_s,
                    run.git_commit,
                    run.git_branch,
                    json.dumps(list(run.argv)),
                    run.workers,
                    json.dumps(run.counts, sort_keys=True),
                    run.source,
                ),
            ).lastrowid
            assert run_id is not None
            ids = self._test_ids([r.nodeid for r in rows])
            db.executemany(
                "INSERT INTO results (run_id, test_id, nodeid, outcome, setup_s, call_s, "
                "teardown_s, duration_s, worker, start_s, peak_rss_kb, cpu_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        ids[r.nodeid],
                        r.nodeid,
                        r.outcome,
                        r.setup_s,
                        r.call_s,
                        r.teardown_s,
                        r.duration_s,
                        r.worker,
                        r.start_s,
                        r.peak_rss_kb,
                        r.cpu_s,
                    )
                    for r in rows
                ],
            )
            self._prune(ids.values())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return run_id

    def _test_ids(self, nodeids: list[str]) -> dict[str, int]:
        """nodeid -> its row in ``tests``, for each of ``nodeids`` (new ones are added)."""
        unique = list(dict.fromkeys(nodeids))
        lookup = "SELECT nodeid, id FROM tests WHERE nodeid IN (SELECT value FROM json_each(?))"
        wanted = (json.dumps(unique),)
        ids = dict(self._db.execute(lookup, wanted).fetchall())
        if len(ids) < len(unique):
            new = [(nodeid,) for nodeid in unique if nodeid not in ids]
            self._db.executemany("INSERT INTO tests (nodeid) VALUES (?)", new)
            ids = dict(self._db.execute(lookup, wanted).fetchall())
        return ids

    def _prune(self, test_ids: Iterable[int]) -> None:
        """Keep the newest ``keep`` results of each of ``test_ids`` (the tests a run touched).

        One indexed range delete per test (``results_by_test`` is on (test_id, id)): a
        window function over every result would cost a large history most of a second.
        """
        self._db.executemany(_PRUNE, [(test_id, self.keep - 1) for test_id in test_ids])
        self._db.execute(
            "DELETE FROM runs WHERE id < (SELECT coalesce(min(run_id), 0) FROM results)"
        )

    def merge_from(self, other: HistoryStore) -> int:
        """Copy every run of ``other`` into this history; returns how many runs were copied.

        A run this history already holds (same start, end, source, argv and commit) is
        skipped: CI shards usually start from one restored history and each carries its
        old runs, which must not be counted once per shard.
        """
        known = {_run_key(run) for _, run in self.runs()}
        copied = 0
        by_run: dict[int, list[ResultRecord]] = defaultdict(list)
        rows = other._db.execute(
            "SELECT run_id, nodeid, outcome, setup_s, call_s, teardown_s, worker, start_s, "
            "peak_rss_kb, cpu_s FROM results ORDER BY id"
        )
        for run_id, *fields in rows:
            by_run[run_id].append(ResultRecord(*fields))
        for run_id, run in other.runs():
            if _run_key(run) in known:
                continue
            self.record_run(run, by_run.get(run_id, ()))
            known.add(_run_key(run))
            copied += 1
        return copied


def _run_key(run: RunRecord) -> tuple[object, ...]:
    return (run.started, run.finished, run.source, run.argv, run.git_commit, run.workers)
