"""Tests for pytest_shadowfarm.history.store: the SQLite history on real files."""

from __future__ import annotations

import gc
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import pytest_shadowfarm
from pytest_shadowfarm.errors import HistoryError, ShadowFarmWarning
from pytest_shadowfarm.history import HistoryStore, PastResult, ResultRecord, RunRecord
from pytest_shadowfarm.history import opening as opening_module
from pytest_shadowfarm.history import store as store_module
from pytest_shadowfarm.history.schema import APPLICATION_ID, SCHEMA_VERSION, migrate
from pytest_shadowfarm.history.store import RecentHistory

#: upper bound for any wait on another process
TIMEOUT_S = 120.0


def run_at(started: float, **kwargs) -> RunRecord:
    return RunRecord(started=started, finished=started + 2.5, **kwargs)


def passed(nodeid: str, call_s: float) -> ResultRecord:
    return ResultRecord(nodeid, "passed", setup_s=0.25, call_s=call_s, teardown_s=0.0)


def pragma(path: Path, name: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        db.close()


def moved_to(message: str, directory: Path) -> Path:
    found = re.search(r"moved it to (\S+) and", message)
    assert found, message
    return directory / found.group(1)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".shadowfarm" / "history.sqlite"


class TestOpen:
    def test_open_creates_the_file_and_its_directory(self, path):
        """Opening a path that does not exist creates an empty, current-schema history."""
        with HistoryStore.open(path) as store:
            summary = store.summary()
        assert (summary.path, summary.runs, summary.tests) == (str(path), 0, 0)
        assert pragma(path, "user_version") == SCHEMA_VERSION
        assert pragma(path, "application_id") == APPLICATION_ID

    def test_reopening_finds_what_was_recorded(self, path):
        """A run recorded and closed is there when the file is opened again."""
        with HistoryStore.open(path) as store:
            store.record_run(run_at(100.0), [passed("t.py::a", 1.0)])
        with HistoryStore.open(path) as store:
            assert store.summary().runs == 1
            assert store.durations() == {"t.py::a": [1.25]}

    def test_an_empty_file_is_taken_as_a_new_history(self, path):
        """A zero-byte file (e.g. from touch) becomes a history without a warning."""
        path.parent.mkdir(parents=True)
        path.touch()
        with HistoryStore.open(path, warn=pytest.fail) as store:
            assert store.summary().runs == 0


class TestRecordAndRead:
    def test_a_recorded_run_reads_back_unchanged(self, path):
        """runs() returns the RunRecord that was stored, with its id."""
        run = RunRecord(
            started=1000.0,
            finished=1012.5,
            argv=("-x", "tests"),
            git_commit="abc123",
            git_branch="main",
            workers=4,
            counts={"passed": 1, "failed": 1},
            source="pytest",
        )
        with HistoryStore.open(path) as store:
            run_id = store.record_run(run, [passed("t.py::a", 1.0)])
            assert store.runs() == [(run_id, run)]

    def test_every_result_field_reads_back_unchanged(self, path):
        """last_results() returns each ResultRecord exactly as it was recorded."""
        results = [
            ResultRecord("t.py::a", "failed", 0.1, 2.0, 0.3, "gw1", 5.5, 2048, 1.75),
            ResultRecord("t.py::b", "skipped", 0.0, None, None),
        ]
        with HistoryStore.open(path) as store:
            store.record_run(run_at(1.0), results)
            assert store.last_results() == {r.nodeid: r for r in results}

    def test_results_by_test_lists_each_result_oldest_first_with_its_commit(self, path):
        """results_by_test() groups by node id, in recording order, with the run's commit."""
        with HistoryStore.open(path) as store:
            first = store.record_run(run_at(1.0, git_commit="c1"), [passed("t.py::a", 1.0)])
            second = store.record_run(
                run_at(2.0, git_commit="c2"),
                [ResultRecord("t.py::a", "failed", 0.0, 3.0, 0.0)],
            )
            assert store.results_by_test() == {
                "t.py::a": [
                    PastResult(first, "passed", 1.25, "c1"),
                    PastResult(second, "failed", 3.0, "c2"),
                ]
            }

    def test_results_without_times_are_left_out_of_durations(self, path):
        """A result whose phases are all unknown has no duration for the estimator."""
        unknown = ResultRecord("t.py::a", "failed", None, None, None)
        with HistoryStore.open(path) as store:
            store.record_run(run_at(1.0), [unknown, passed("t.py::b", 1.0)])
            assert store.durations() == {"t.py::b": [1.25]}
            assert store.summary().tests == 2

    def test_last_results_holds_the_newest_result_of_each_test(self, path):
        """After two runs, last_results() reports the second run's outcome."""
        with HistoryStore.open(path) as store:
            store.record_run(run_at(1.0), [passed("t.py::a", 1.0)])
            store.record_run(run_at(2.0), [ResultRecord("t.py::a", "error", 0.5, None, None)])
            assert store.last_results()["t.py::a"].outcome == "error"

    def test_a_run_that_fails_to_write_leaves_no_trace(self, path):
        """When one result cannot be stored, the whole run is rolled back."""
        broken = ResultRecord(None, "passed")
        with HistoryStore.open(path) as store:
            with pytest.raises(sqlite3.IntegrityError):
                store.record_run(run_at(1.0), [passed("t.py::a", 1.0), broken])
            assert (store.summary().runs, store.summary().tests) == (0, 0)


class TestPruning:
    def test_pruning_keeps_exactly_the_last_n_results_per_test(self, path):
        """With keep=3, five runs leave the three newest durations of each test."""
        with HistoryStore.open(path, keep=3) as store:
            for n in range(1, 6):
                store.record_run(run_at(n), [passed("t.py::a", n), passed("t.py::b", 10 * n)])
            durations = store.durations()
        assert durations == {
            "t.py::a": [3.25, 4.25, 5.25],
            "t.py::b": [30.25, 40.25, 50.25],
        }

    def test_pruning_deletes_through_the_per_test_index(self, path):
        """Pruning is one index range per test, never a scan of every result."""
        with HistoryStore.open(path) as store:
            store.record_run(run_at(0), [passed("t.py::a", 1.0)])
        plan = query_plan(path, store_module._PRUNE, (1, 49))
        assert "results_by_test" in plan
        assert "SCAN" not in plan, plan

    def test_runs_whose_results_were_all_pruned_are_dropped(self, path):
        """Old runs that no kept result refers to are deleted with their results."""
        with HistoryStore.open(path, keep=2) as store:
            ids = [store.record_run(run_at(n), [passed("t.py::a", n)]) for n in range(4)]
            assert [run_id for run_id, _ in store.runs()] == ids[2:]

    def test_tests_absent_from_new_runs_keep_their_results(self, path):
        """Pruning only touches the tests of the run being recorded."""
        with HistoryStore.open(path, keep=1) as store:
            store.record_run(run_at(0), [passed("t.py::old", 7.0)])
            for n in range(1, 4):
                store.record_run(run_at(n), [passed("t.py::a", n)])
            assert store.durations()["t.py::old"] == [7.25]


class TestRecent:
    """What a run reads at its start: newest durations of all, results of failed tests."""

    def test_each_test_gets_its_newest_durations_and_a_failed_test_its_results(self, path):
        """12 runs, per_test=3: every test its newest 3 durations and runs; the test that
        failed once (in run 2, long ago) its newest 10 whole results."""
        with HistoryStore.open(path, keep=50) as store:
            ids = []
            for n in range(12):
                outcome = "failed" if n == 2 else "passed"
                ids.append(
                    store.record_run(
                        run_at(n, git_commit=f"c{n}"),
                        [
                            passed("t.py::ok", n),
                            ResultRecord("t.py::flip", outcome, setup_s=0, call_s=n, teardown_s=0),
                        ],
                    )
                )
            recent = store.recent(per_test=3, per_failing_test=10)
            full = store.results_by_test()
        assert recent.durations["t.py::ok"] == (9.25, 10.25, 11.25)
        assert recent.call_durations["t.py::ok"] == (9.0, 10.0, 11.0)
        assert recent.runs == {"t.py::ok": tuple(ids[-3:]), "t.py::flip": tuple(ids[-3:])}
        assert recent.failures == {"t.py::flip": full["t.py::flip"][-10:]}
        assert recent.failures["t.py::flip"][0].outcome == "failed"

    def test_results_without_times_count_as_known_but_not_as_durations(self, path):
        """A result with no time still makes the test known (not new), without a duration."""
        with HistoryStore.open(path) as store:
            run = store.record_run(
                run_at(0), [ResultRecord("t.py::x", "skipped", None, None, None)]
            )
            recent = store.recent(per_test=8, per_failing_test=30)
        assert recent.runs == {"t.py::x": (run,)}
        assert "t.py::x" not in recent.durations
        assert "t.py::x" not in recent.call_durations

    def test_what_a_run_keeps_costs_the_garbage_collector_nothing(self, path):
        """The per-test sequences are held for the whole run: after one collection the
        garbage collector no longer tracks them, so they do not lengthen full collections
        (as lists, a 5,000-test history made each one of them slower)."""
        with HistoryStore.open(path) as store:
            for n in range(3):
                store.record_run(run_at(n), [passed(f"t.py::t{i}", n) for i in range(5)])
            recent = store.recent(per_test=8, per_failing_test=30)
        gc.collect()
        kept = [*recent.durations.values(), *recent.call_durations.values()]
        kept += recent.runs.values()
        assert len(kept) == 15
        assert not any(gc.is_tracked(seq) for seq in kept)
        assert not any(gc.is_tracked(d) for d in (recent.durations, recent.runs))

    def test_an_empty_history_reads_empty(self, path):
        with HistoryStore.open(path) as store:
            recent = store.recent(per_test=8, per_failing_test=30)
        assert recent == RecentHistory(durations={}, call_durations={}, runs={}, failures={})

    def test_a_run_reads_durations_from_runs_with_its_own_worker_count(self, path):
        """A history of -n 0 and -n 2 runs: at -n 2 a test timed in a -n 2 run is
        estimated from those runs alone, one never timed there keeps all its durations,
        and which runs a test was in (the failure signal's input) is unchanged."""
        with HistoryStore.open(path) as store:
            solo = [store.record_run(run_at(n), [passed("t.py::a", 1.0)]) for n in range(2)]
            pair = store.record_run(
                run_at(2, workers=2), [passed("t.py::a", 2.0), passed("t.py::b", 2.0)]
            )
            store.record_run(run_at(3), [passed("t.py::b", 1.0)])
            at_two = store.recent(per_test=8, per_failing_test=8, workers=2)
            at_zero = store.recent(per_test=8, per_failing_test=8, workers=0)
            at_four = store.recent(per_test=8, per_failing_test=8, workers=4)
            unfiltered = store.recent(per_test=8, per_failing_test=8)
        assert at_two.durations == {"t.py::a": (2.25,), "t.py::b": (2.25,)}
        assert at_two.call_durations == {"t.py::a": (2.0,), "t.py::b": (2.0,)}
        assert at_two.like_this_run == 2
        assert at_two.runs == unfiltered.runs
        assert at_two.runs["t.py::a"] == (*solo, pair)
        assert at_zero.durations == {"t.py::a": (1.25, 1.25), "t.py::b": (1.25,)}
        assert at_zero.like_this_run == 2
        # No -n 4 run in the history: everything is read as it is.
        assert at_four.durations == unfiltered.durations
        assert at_four.like_this_run == unfiltered.like_this_run == 0
        assert unfiltered.durations["t.py::a"] == (1.25, 1.25, 2.25)

    def test_a_history_of_one_worker_count_is_read_as_it_is(self, path):
        """A CI job's history (always -n 2) reads the same with or without the filter."""
        with HistoryStore.open(path) as store:
            for n in range(3):
                store.record_run(run_at(n, workers=2), [passed("t.py::a", n)])
            at_two = store.recent(per_test=8, per_failing_test=8, workers=2)
            unfiltered = store.recent(per_test=8, per_failing_test=8)
        assert at_two == unfiltered
        assert at_two.like_this_run == 0

    def test_failed_tests_are_found_through_the_partial_index(self, path):
        """No scan of every result: SQLite's plan for the failing tests' results goes
        through the index of failing results, then the per-test index."""
        with HistoryStore.open(path) as store:
            store.record_run(run_at(0), [passed("t.py::a", 1.0)])
        plan = query_plan(path, store_module._NEWEST_OF_FAILED, {"per_test": 30})
        scans = [step for step in plan.splitlines() if "SCAN" in step]
        assert scans == ["SCAN results USING INDEX results_failing"], plan
        assert "SEARCH results USING COVERING INDEX results_by_test" in plan

    def test_ranks_from_the_recent_slice_equal_ranks_from_the_whole_history(self, path):
        """The slice loses nothing the priority engine uses (recent failures, flips, new
        tests): 200 tests, 25 runs, random failures and commits."""
        from pytest_shadowfarm.estimate import WINDOW
        from pytest_shadowfarm.priority import rank
        from pytest_shadowfarm.priority.signals import failure_window

        rng = random.Random(7)
        tests = [f"t.py::test_{i}" for i in range(200)]
        with HistoryStore.open(path, keep=50) as store:
            for n in range(25):
                results = [
                    ResultRecord(t, rng.choice(["passed"] * 30 + ["failed", "skipped"]), 0, 0.1, 0)
                    for t in tests[: 150 + n]
                ]
                store.record_run(run_at(n, git_commit=f"c{n // 4}"), results)
            full = store.results_by_test()
            recent = store.recent(per_test=WINDOW, per_failing_test=failure_window(5.0))
        now = [*tests, "t.py::brand_new"]
        args = {"etc": {}, "marker_priority": {}, "changed": None}
        from_recent = rank(now, history=recent.failures, known=recent.runs, **args)
        assert from_recent == rank(now, history=full, **args)
        assert any(r.likely_failure for r in from_recent.values())
        assert any(r.flaky for r in from_recent.values())


class TestDeferredCheckpoint:
    """A run's write stays in the write-ahead log until the close, which a thread does."""

    def test_a_large_write_stays_in_the_log_until_the_close_copies_it(self, path, tmp_path):
        big = large_run()
        with HistoryStore.open(path) as store:
            store.record_run(run_at(0), big[:1])
        main_only = tmp_path / "main-only.sqlite"
        store = HistoryStore.open(path)
        store.defer_checkpoints()
        store.record_run(run_at(1), big)
        shutil.copy(path, main_only)  # what the database file holds without its log
        assert runs_in(main_only) == 1, "the commit checkpointed (it should have waited)"
        closing = store.close_in_background()
        closing.join(timeout=TIMEOUT_S)
        assert not closing.is_alive()
        assert not Path(f"{path}-wal").exists(), "the last close leaves no log behind"
        shutil.copy(path, main_only)
        assert runs_in(main_only) == 2

    def test_without_deferring_a_large_commit_checkpoints_as_sqlite_does(self, path, tmp_path):
        big = large_run()
        with HistoryStore.open(path) as store:
            store.record_run(run_at(0), big)
            shutil.copy(path, tmp_path / "main-only.sqlite")
        assert runs_in(tmp_path / "main-only.sqlite") == 1


def large_run() -> list[ResultRecord]:
    """Results whose write takes more than SQLite's 1,000-page checkpoint threshold."""
    return [passed(f"tests/test_{'long_name_' * 20}.py::test_{i}", 0.5) for i in range(12_000)]


def query_plan(path: Path, sql: str, params: object = ()) -> str:
    """SQLite's plan for ``sql`` on the history at ``path``, one step per line."""
    db = sqlite3.connect(path)
    try:
        return "\n".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        db.close()


def runs_in(main_file: Path) -> int:
    db = sqlite3.connect(main_file)
    try:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        db.close()


class TestMigration:
    def test_a_version_1_file_is_migrated_and_keeps_its_rows(self, path):
        """Opening a schema-1 history upgrades it to the current schema with its data."""
        path.parent.mkdir(parents=True)
        db = sqlite3.connect(path, isolation_level=None)
        assert migrate(db, upto=1) == 0
        db.execute(
            "INSERT INTO runs (id, started, finished, wall_s, git_commit) "
            "VALUES (1, 10.0, 12.0, 2.0, 'v1commit')"
        )
        db.execute(
            "INSERT INTO results (run_id, nodeid, outcome, setup_s, call_s, teardown_s, "
            "duration_s) VALUES (1, 't.py::a', 'passed', 0.5, 1.0, 0.5, 2.0)"
        )
        db.close()
        assert pragma(path, "user_version") == 1

        with HistoryStore.open(path, warn=pytest.fail) as store:
            assert store.results_by_test() == {
                "t.py::a": [PastResult(1, "passed", 2.0, "v1commit")]
            }
            result = store.last_results()["t.py::a"]
        assert (result.peak_rss_kb, result.cpu_s) == (None, None)
        assert pragma(path, "user_version") == SCHEMA_VERSION

    def test_a_version_3_file_gets_a_row_per_test_and_an_integer_per_test_index(self, path):
        """Version 4 indexes results by test id, not by nodeid text; the migrated rows
        keep their nodeids, read back the same, and prune as before."""
        path.parent.mkdir(parents=True)
        db = sqlite3.connect(path, isolation_level=None)
        migrate(db, upto=3)
        db.execute("INSERT INTO runs (id, started, finished, wall_s) VALUES (1, 1.0, 2.0, 1.0)")
        db.execute("INSERT INTO runs (id, started, finished, wall_s) VALUES (2, 3.0, 4.0, 1.0)")
        db.executemany(
            "INSERT INTO results (run_id, nodeid, outcome, duration_s) VALUES (?, ?, ?, ?)",
            [
                (1, "t.py::a", "passed", 1.0),
                (1, "t.py::b", "failed", 2.0),
                (2, "t.py::a", "passed", 1.5),
                (2, "t.py::b", "passed", 2.5),
            ],
        )
        db.close()

        with HistoryStore.open(path, keep=2, warn=pytest.fail) as store:
            assert store.summary().tests == 2
            assert store.durations() == {"t.py::a": [1.0, 1.5], "t.py::b": [2.0, 2.5]}
            store.record_run(run_at(3), [passed("t.py::a", 3.0), passed("t.py::c", 4.0)])
            assert store.durations() == {
                "t.py::a": [1.5, 3.25],  # pruned to the newest two
                "t.py::b": [2.0, 2.5],
                "t.py::c": [4.25],
            }
            recent = store.recent(per_test=8, per_failing_test=8)
            assert recent.runs == {"t.py::a": (2, 3), "t.py::b": (1, 2), "t.py::c": (3,)}
            assert [r.outcome for r in recent.failures["t.py::b"]] == ["failed", "passed"]
        db = sqlite3.connect(path)
        try:
            indexes = {
                name
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'results'"
                )
            }
            orphans = db.execute("SELECT count(*) FROM results WHERE test_id IS NULL").fetchone()
        finally:
            db.close()
        assert indexes == {"results_by_test", "results_by_run", "results_failing"}
        assert orphans == (0,)

    def test_a_newer_schema_raises_and_leaves_the_file_alone(self, path):
        """A history written by a newer pytest-shadowfarm is refused, not rewritten."""
        HistoryStore.open(path).close()
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
        before = path.read_bytes()
        with pytest.raises(HistoryError, match=r"newer than this pytest-shadowfarm understands"):
            HistoryStore.open(path, warn=pytest.fail)
        assert path.read_bytes() == before
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


class TestDamagedFiles:
    def test_a_corrupt_file_is_moved_aside_and_a_new_history_starts(self, path):
        """Random bytes are renamed with a warning naming both files; the new history works."""
        path.parent.mkdir(parents=True)
        garbage = random.Random(0).randbytes(4096)
        path.write_bytes(garbage)
        with pytest.warns(ShadowFarmWarning) as record:
            store = HistoryStore.open(path)
        with store:
            store.record_run(run_at(1.0), [passed("t.py::a", 1.0)])
            assert store.summary().runs == 1
        message = str(record[0].message)
        assert str(path) in message
        assert "not a readable SQLite database" in message
        aside = moved_to(message, path.parent)
        assert aside.read_bytes() == garbage

    def test_a_foreign_sqlite_file_is_moved_aside_untouched(self, path):
        """Another application's database is renamed, its tables intact, never written into."""
        path.parent.mkdir(parents=True)
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE accounts (name TEXT)")
        db.execute("INSERT INTO accounts VALUES ('alice')")
        db.commit()
        db.close()
        with pytest.warns(ShadowFarmWarning, match="foreign SQLite file") as record:
            store = HistoryStore.open(path)
        with store:
            assert store.summary().runs == 0
        message = str(record[0].message)
        assert str(path) in message
        aside = moved_to(message, path.parent)
        db = sqlite3.connect(aside)
        assert db.execute("SELECT name FROM accounts").fetchall() == [("alice",)]
        db.close()

    def test_two_bad_files_in_one_second_get_distinct_names(self, path):
        """A second corrupt file does not overwrite the first one's moved-aside copy."""
        path.parent.mkdir(parents=True)
        messages: list[str] = []
        for content in (b"first garbage " * 100, b"second garbage " * 100):
            path.write_bytes(content)
            HistoryStore.open(path, warn=messages.append).close()
        asides = [moved_to(m, path.parent) for m in messages]
        assert asides[0] != asides[1]
        assert [a.read_bytes()[:6] for a in asides] == [b"first ", b"second"]

    def test_with_repair_off_a_corrupt_file_raises_and_stays(self, path):
        """repair=False refuses a damaged file instead of moving it."""
        path.parent.mkdir(parents=True)
        path.write_bytes(b"not a database" * 100)
        with pytest.raises(HistoryError, match="expected a pytest-shadowfarm history"):
            HistoryStore.open(path, warn=pytest.fail, repair=False)
        assert path.read_bytes() == b"not a database" * 100
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]

    def test_a_locked_history_raises_instead_of_being_moved_aside(self, path, monkeypatch):
        """ "database is locked" is not damage: the file stays and HistoryError says why."""
        HistoryStore.open(path).close()
        monkeypatch.setattr(opening_module, "BUSY_TIMEOUT_S", 0.05)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(HistoryError, match="database is locked"):
                HistoryStore.open(path, warn=pytest.fail)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert not list(path.parent.glob("*.corrupt-*"))
        with HistoryStore.open(path, warn=pytest.fail) as store:
            assert store.summary().runs == 0


class TestMerge:
    def test_merge_copies_every_run_with_its_results(self, tmp_path):
        """All runs of the other history, and their results, arrive in this one."""
        with HistoryStore.open(tmp_path / "a.sqlite") as a:
            a.record_run(run_at(1.0), [passed("t.py::a", 1.0)])
        with HistoryStore.open(tmp_path / "b.sqlite") as b:
            b.record_run(run_at(2.0, git_commit="b1"), [passed("t.py::a", 2.0)])
            b.record_run(run_at(3.0), [ResultRecord("t.py::b", "failed", None, None, None)])
        with (
            HistoryStore.open(tmp_path / "a.sqlite") as a,
            HistoryStore.open(tmp_path / "b.sqlite") as b,
        ):
            assert a.merge_from(b) == 2
            assert [run.started for _, run in a.runs()] == [1.0, 2.0, 3.0]
            assert a.durations() == {"t.py::a": [1.25, 2.25]}
            assert a.last_results()["t.py::b"].outcome == "failed"

    def test_merging_the_same_history_twice_copies_nothing_new(self, tmp_path):
        """Runs the target already holds are skipped."""
        with (
            HistoryStore.open(tmp_path / "a.sqlite") as a,
            HistoryStore.open(tmp_path / "b.sqlite") as b,
        ):
            b.record_run(run_at(2.0), [passed("t.py::a", 2.0)])
            assert a.merge_from(b) == 1
            assert a.merge_from(b) == 0
            assert a.summary().runs == 1

    def test_shards_from_one_restored_history_count_old_runs_once(self, tmp_path):
        """Two CI shards that start from the same history merge into base + one run each."""
        base = tmp_path / "base.sqlite"
        with HistoryStore.open(base) as store:
            store.record_run(run_at(1.0), [passed("t.py::a", 1.0)])
            store.record_run(run_at(2.0), [passed("t.py::a", 1.1)])
        shards = []
        for n in range(2):
            shard = tmp_path / f"shard{n}.sqlite"
            shard.write_bytes(base.read_bytes())
            with HistoryStore.open(shard) as store:
                store.record_run(run_at(10.0 + n), [passed(f"t.py::shard{n}", 1.0)])
            shards.append(shard)
        with HistoryStore.open(tmp_path / "merged.sqlite") as merged:
            for shard in shards:
                with HistoryStore.open(shard) as other:
                    merged.merge_from(other)
            assert [run.started for _, run in merged.runs()] == [1.0, 2.0, 10.0, 11.0]


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord

    path, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    Path(sys.argv[4]).touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal within 60 s")
        time.sleep(0.005)
    with HistoryStore.open(path) as store:
        for n in range(20):
            results = [ResultRecord("t.py::shared", "passed", 0.0, n, 0.0),
                       ResultRecord(f"t.py::{name}", "passed", 0.0, n, 0.0)]
            store.record_run(RunRecord(n, n + 1, source=name), results)
    """
)


class TestConcurrentWriters:
    def test_two_processes_writing_one_new_file_lose_nothing(self, tmp_path):
        """Two processes that create and fill the same history at once store all 40 runs."""
        path = tmp_path / "history.sqlite"
        go = tmp_path / "go"
        root = str(Path(pytest_shadowfarm.__file__).parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), name, str(go), str(tmp_path / name)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("w1", "w2")
        ]
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not all((tmp_path / name).exists() for name in ("w1", "w2")):
                assert time.monotonic() < deadline, "writers did not start"
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.01)
            go.touch()
            outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=TIMEOUT_S)
        assert [p.returncode for p in procs] == [0, 0], outputs
        with HistoryStore.open(path, warn=pytest.fail) as store:
            runs = store.runs()
            durations = store.durations()
        assert len(runs) == 40
        assert sorted(run.source for _, run in runs) == ["w1"] * 20 + ["w2"] * 20
        assert len(durations["t.py::shared"]) == 40
        assert sorted(durations["t.py::w1"]) == [float(n) for n in range(20)]
        assert sorted(durations) == ["t.py::shared", "t.py::w1", "t.py::w2"]
