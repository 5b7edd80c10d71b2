"""The plugin through real pytest runs: enabling, inertness, history, report and prediction."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = """
import time
import pytest

@pytest.mark.parametrize("n", range(4))
def test_quick(n):
    time.sleep(0.002 * n)

def test_slow():
    time.sleep(0.3)

def test_fails():
    assert 1 == 2

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert 0

def test_skipped():
    pytest.skip("not here")
"""


def _normalise(output: str) -> list[str]:
    """Drop the lines that differ between any two runs (timings, plugin list, paths)."""
    lines = []
    for line in output.splitlines():
        if line.startswith(("plugins:", "rootdir:", "platform ", "cachedir:")):
            continue
        lines.append(re.sub(r"in \d+\.\d+s", "in Xs", line))
    return lines


def _history(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


class TestEnabling:
    def test_installed_but_not_named_the_plugin_is_inert(self, suite: pytest.Pytester) -> None:
        """Without -p shadowfarm the output equals -p no:shadowfarm and nothing is written."""
        plain = suite.runpytest("-p", "no:shadowfarm", "-v")
        installed = suite.runpytest("-v")
        assert _normalise(installed.stdout.str()) == _normalise(plain.stdout.str())
        assert not (suite.path / ".shadowfarm").exists()
        installed.assert_outcomes(passed=5, failed=1, skipped=1, xfailed=1)

    def test_named_with_p_it_records_history(self, suite: pytest.Pytester) -> None:
        """-p shadowfarm writes a history with one run and every test."""
        result = suite.runpytest("-p", "shadowfarm")
        result.stdout.fnmatch_lines(["shadowfarm: new history at *history.sqlite*"])
        db = _history(suite.path / ".shadowfarm" / "history.sqlite")
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        assert db.execute("SELECT count(DISTINCT nodeid) FROM results").fetchone() == (8,)

    def test_enabled_from_addopts(self, suite: pytest.Pytester) -> None:
        """`addopts = -p shadowfarm` in the project config enables it."""
        suite.makeini("[pytest]\naddopts = -p shadowfarm\n")
        result = suite.runpytest()
        result.stdout.fnmatch_lines(["*shadowfarm: new history*"])

    def test_enabled_with_plugin_autoload_disabled(
        self, suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 with -p shadowfarm still loads and records."""
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        result = suite.runpytest_subprocess("-p", "shadowfarm")
        result.stdout.fnmatch_lines(["shadowfarm: new history at *", "*- shadowfarm -*"])
        assert (suite.path / ".shadowfarm" / "history.sqlite").exists()

    def test_the_marker_is_accepted_by_strict_markers_even_when_inert(
        self, pytester: pytest.Pytester
    ) -> None:
        """@pytest.mark.shadowfarm passes --strict-markers without -p shadowfarm."""
        pytester.makepyfile(
            "import pytest\n@pytest.mark.shadowfarm(priority='high')\ndef test_x(): pass\n"
        )
        pytester.runpytest("--strict-markers").assert_outcomes(passed=1)

    def test_a_bad_setting_is_a_usage_error_naming_the_source(
        self, suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bad env value stops the run with the variable's name and the fix."""
        monkeypatch.setenv("SHADOWFARM_HISTORY_KEEP", "lots")
        result = suite.runpytest("-p", "shadowfarm")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*SHADOWFARM_HISTORY_KEEP='lots' is not valid: expected a whole number >= 1*"]
        )


class TestPrediction:
    def test_second_run_predicts_from_the_first(self, suite: pytest.Pytester) -> None:
        """After one run the header knows the history and the summary compares prediction."""
        suite.runpytest("-p", "shadowfarm")
        result = suite.runpytest("-p", "shadowfarm")
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: history knows 1 runs, 8 tests (*)",
                "shadowfarm: 8 tests, 8 with history; predicted total *",
                "predicted *s of test time, actual *s (*%); wall *",
                "history: * (2 runs, 8 tests)",
            ]
        )

    def test_a_run_is_predicted_from_runs_with_its_worker_count(
        self, pytester: pytest.Pytester
    ) -> None:
        """A history of one run without xdist (0.5 s a test) and one at -n 2 (2 s): each
        kind of run predicts from its own kind (tests are slower beside other workers)."""
        from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord

        pytester.makepyfile(test_a="def test_one(): pass\ndef test_two(): pass\n")
        ids = ["test_a.py::test_one", "test_a.py::test_two"]
        history = pytester.path / "h.sqlite"
        with HistoryStore.open(history) as store:
            for n, (workers, call_s) in enumerate([(0, 0.5), (2, 2.0)]):
                store.record_run(
                    RunRecord(started=n, finished=n + 1.0, workers=workers),
                    [ResultRecord(nodeid, "passed", 0.0, call_s, 0.0) for nodeid in ids],
                )
        plain = pytester.runpytest("-p", "shadowfarm", f"--sf-history={history}")
        plain.stdout.fnmatch_lines(
            [
                "shadowfarm: 2 tests, 2 with history; predicted total 1.00s "
                "(2 timed in earlier runs without xdist only)"
            ]
        )
        pair = pytester.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "2", f"--sf-history={history}"
        )
        pair.stdout.fnmatch_lines(
            [
                "shadowfarm: 2 tests, 2 with history; predicted total 4.00s "
                "(2 timed in earlier -n 2 runs only)"
            ]
        )

    def test_a_test_far_slower_than_its_history_is_an_anomaly(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A test taking over 3x its estimate and over 0.5 s is listed as an anomaly."""
        pytester.makepyfile(
            "import os, time\n"
            "def test_grows():\n"
            "    time.sleep(float(os.environ.get('NAP', '0.1')))\n"
        )
        pytester.runpytest("-p", "shadowfarm")
        monkeypatch.setenv("NAP", "0.7")
        result = pytester.runpytest("-p", "shadowfarm")
        result.stdout.fnmatch_lines(
            [
                "1 anomalies (test body more than 3x*",
                "  test_*.py::test_grows: 0.7*s (expected 0.1*",
            ]
        )


class TestRunReport:
    def test_report_json_has_the_documented_fields(self, suite: pytest.Pytester) -> None:
        """--sf-report-json writes version 1 with tests, times relative to session start."""
        suite.runpytest("-p", "shadowfarm", "--sf-report-json", "report.json")
        report = json.loads((suite.path / "report.json").read_text())
        assert report["version"] == 1
        assert {"wall_s", "predicted_total_s", "actual_total_s", "first_failure_s"} <= set(report)
        assert report["workers"] == []
        assert report["events"] == []
        tests = {t["nodeid"]: t for t in report["tests"]}
        assert len(tests) == 8
        assert tests["test_suite.py::test_fails"]["outcome"] == "failed"
        assert tests["test_suite.py::test_expected_failure"]["outcome"] == "xfailed"
        assert tests["test_suite.py::test_slow"]["duration_s"] >= 0.3
        assert sorted(t["order"] for t in tests.values()) == list(range(8))
        assert 0 < report["first_failure_s"] <= report["wall_s"]
        assert all(0 <= t["start_s"] <= report["wall_s"] for t in tests.values())

    def test_an_unwritable_report_path_warns_and_the_run_still_passes(
        self, pytester: pytest.Pytester
    ) -> None:
        """A report path inside a file is a warning, not a failed run."""
        pytester.makepyfile("def test_ok(): pass\n")
        (pytester.path / "blocker").write_text("a file, not a directory")
        result = pytester.runpytest("-p", "shadowfarm", "--sf-report-json", "blocker/r.json")
        assert result.ret == 0
        result.stdout.fnmatch_lines(["*ShadowFarmWarning: cannot write the run report*"])


class TestHistoryRobustness:
    def test_a_corrupt_history_is_moved_aside_and_the_run_passes(
        self, pytester: pytest.Pytester
    ) -> None:
        """Garbage in the history file: a warning, the file moved aside, a fresh history."""
        pytester.makeini("[pytest]\nfilterwarnings = error\n")
        pytester.makepyfile("def test_ok(): pass\n")
        history = pytester.path / ".shadowfarm" / "history.sqlite"
        history.parent.mkdir()
        history.write_bytes(b"\x00garbage" * 512)
        result = pytester.runpytest("-p", "shadowfarm")
        assert result.ret == 0
        result.stdout.fnmatch_lines(["*ShadowFarmWarning: *history.sqlite: not a readable SQLite*"])
        assert list(history.parent.glob("history.sqlite.corrupt-*"))
        assert _history(history).execute("SELECT count(*) FROM runs").fetchone() == (1,)

    @pytest.mark.slow
    def test_two_concurrent_runs_on_one_history_lose_nothing(
        self, pytester: pytest.Pytester
    ) -> None:
        """Two real pytest processes finishing together both land in the same history."""
        history = pytester.path / "shared.sqlite"
        for name, other in (("a", "b"), ("b", "a")):
            suite = pytester.mkpydir(f"suite_{name}")
            (suite / f"test_{name}.py").write_text(
                "import pathlib, time\n"
                "import pytest\n"
                f"@pytest.mark.parametrize('i', range(300))\ndef test_{name}(i): pass\n"
                "def test_zz_meet():\n"
                f"    here = pathlib.Path(__file__).parent\n"
                f"    (here.parent / 'started_{name}').touch()\n"
                "    deadline = time.monotonic() + 30\n"
                f"    while not (here.parent / 'started_{other}').exists():\n"
                "        assert time.monotonic() < deadline, 'the other run never started'\n"
                "        time.sleep(0.01)\n"
            )
        cmd = [sys.executable, "-m", "pytest", "-p", "shadowfarm", "-q", "-p", "no:cacheprovider"]
        runs = [
            subprocess.Popen(
                [*cmd, "--sf-history", str(history), f"suite_{name}"],
                cwd=pytester.path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for name in ("a", "b")
        ]
        outputs = [p.communicate(timeout=120)[0].decode() for p in runs]
        assert [p.returncode for p in runs] == [0, 0], outputs
        db = _history(history)
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (2,)
        assert db.execute("SELECT count(*) FROM results").fetchone() == (602,)


class TestXdist:
    @pytest.mark.slow
    def test_under_xdist_only_the_controller_records(self, suite: pytest.Pytester) -> None:
        """With -n 2 one run is recorded, with every test's worker and start offset."""
        result = suite.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "2", "--sf-report-json", "report.json"
        )
        result.assert_outcomes(passed=5, failed=1, skipped=1, xfailed=1)
        db = _history(suite.path / ".shadowfarm" / "history.sqlite")
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        workers = {w for (w,) in db.execute("SELECT DISTINCT worker FROM results")}
        assert workers <= {"gw0", "gw1"}
        assert workers
        report = json.loads((suite.path / "report.json").read_text())
        assert {w["id"] for w in report["workers"]} == {"gw0", "gw1"}
        assert all(w["left_s"] >= w["joined_s"] for w in report["workers"])
        assert all(t["worker"] in {"gw0", "gw1"} for t in report["tests"])
