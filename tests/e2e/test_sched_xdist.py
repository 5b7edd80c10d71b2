"""The scheduler in real ``-n 2`` runs: exactly one report per test, crashes, rejection, modes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SUITE = """
import time
import pytest

@pytest.mark.parametrize("i", range(12))
def test_short(i):
    time.sleep(0.01)

def test_long():
    time.sleep(0.3)
"""

CRASH_ONCE = """
import os
from pathlib import Path

def test_crashes_once():
    flag = Path(__file__).with_name("crashed.flag")
    if not flag.exists():
        flag.write_text("x")
        os._exit(1)
"""

CRASH_ALWAYS = """
import os

def test_crashes_always():
    os._exit(1)
"""

# Flag files make the worker timing deterministic (every wait bounded): a worker writes
# "collected-<id>" once its collection is sent to the controller (trylast: after xdist's
# own pytest_collection_finish sent it).
SYNC = """
import os
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def wait_for(*names, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not all((HERE / n).exists() for n in names):
        assert time.monotonic() < deadline, f"{names} never appeared"
        time.sleep(0.02)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    (HERE / f"collected-{WORKER}").write_text("x")
"""

# gw1 collects one test fewer; no test runs before both collections reached the controller.
DIFFERENT = (
    SYNC
    + """

def pytest_collection_modifyitems(items):
    if WORKER == "gw1":
        del items[-1]


@pytest.fixture(autouse=True, scope="session")
def both_collected():
    wait_for("collected-gw0", "collected-gw1")
"""
)

# gw1 collects only once a test has started on gw0, and test_long waits for gw1's
# collection: gw1 joins while gw0 is still running.
LATE = (
    SYNC
    + """

def pytest_collection_modifyitems(items):
    if WORKER == "gw1":
        wait_for("started")


@pytest.fixture(autouse=True)
def started(request):
    (HERE / "started").write_text("x")
    if request.node.name == "test_long":
        wait_for("collected-gw1")
"""
)


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = pytester.runpytest_subprocess(
        "-p", "shadowfarm", "-n", "2", "--sf-report-json=report.json", *args, timeout=240
    )
    report_file = pytester.path / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return result, report


def reported(result: pytest.RunResult) -> Counter[str]:
    """How many final outcome lines (-rA) each test got."""
    counts: Counter[str] = Counter()
    for line in result.outlines:
        for word in ("PASSED ", "FAILED ", "ERROR "):
            if line.startswith(word):
                counts[line[len(word) :].split(" - ")[0].strip()] += 1
    return counts


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    """The final summary line's counts, including pytest-less outcomes like 'rerun'."""
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("warnings", "warning")}


def event(report: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e for e in report["events"] if e["event"] == kind)


class TestExactlyOnce:
    def test_every_test_gets_one_report_and_runs_where_the_report_says(self, pytester):
        """-n 2: each test is reported once, by our scheduler, inside its worker's life."""
        pytester.makepyfile(test_suite=SUITE)
        result, report = run(pytester, "-rA", "-v")
        result.assert_outcomes(passed=13)
        result.stdout.fnmatch_lines(["*scheduling tests via ShadowFarmScheduling*"])
        assert set(reported(result).values()) == {1}
        assert len(reported(result)) == 13
        spans = {w["id"]: w for w in report["workers"]}
        assert set(spans) == {"gw0", "gw1"}
        for test in report["tests"]:
            span = spans[test["worker"]]
            assert span["joined_s"] <= test["start_s"] <= span["left_s"]
        assert event(report, "scheduler")["tests"] == 13

    def test_a_worker_that_joins_late_shares_the_work_without_repeats(self, pytester):
        """gw1 joins while gw0 runs: accepted, and every test still runs exactly once."""
        pytester.makepyfile(test_suite=SUITE)
        pytester.makeconftest(LATE)
        result, report = run(pytester, "-rA")
        result.assert_outcomes(passed=13)
        assert set(reported(result).values()) == {1}
        assert len(report["tests"]) == 13
        assert event(report, "scheduler")["rejected"] == []
        assert {w["id"] for w in report["workers"]} == {"gw0", "gw1"}

    def test_stopping_at_the_first_failure_reports_no_test_twice(self, pytester):
        """-x: the run stops after the failure and no test is reported twice."""
        pytester.makepyfile(test_suite=SUITE + "\ndef test_fails():\n    assert False\n")
        result, _ = run(pytester, "-rA", "-x")
        assert result.ret == pytest.ExitCode.INTERRUPTED  # xdist's way of stopping early
        counts = reported(result)
        assert counts["test_suite.py::test_fails"] == 1
        assert set(counts.values()) == {1}
        result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


class TestRejection:
    def test_a_worker_with_a_different_collection_runs_nothing(self, pytester):
        """gw1 collects one test fewer: one worker is rejected and the reference runs all."""
        pytester.makepyfile(test_suite=SUITE)
        pytester.makeconftest(DIFFERENT)
        result, report = run(pytester, "-rA", "-W", "default::UserWarning")
        rejected = event(report, "scheduler")["rejected"]
        assert len(rejected) == 1
        result.stdout.fnmatch_lines(["*collected different tests*"])
        ran_on = {t["worker"] for t in report["tests"]}
        assert rejected[0] not in ran_on
        expected = 12 if rejected == ["gw0"] else 13  # the first collection is the reference
        assert len(report["tests"]) == expected
        assert set(reported(result).values()) == {1}


class TestCrash:
    def test_a_crashed_test_is_rerun_once_on_another_worker(self, pytester):
        """The in-flight test of a crashed worker reruns and passes, reported as a rerun."""
        pytester.makepyfile(test_suite=SUITE, test_crash=CRASH_ONCE)
        result, report = run(pytester, "-rA")
        assert outcomes(result) == {"passed": 14, "rerun": 1}
        result.stdout.fnmatch_lines(
            ["*rerun after worker crash: test_crash.py::test_crashes_once*"]
        )
        (crashed,) = [t for t in report["tests"] if t["nodeid"].endswith("test_crashes_once")]
        assert crashed["reruns"] == 1
        assert crashed["outcome"] == "passed"
        assert event(report, "crash_rerun")["nodeid"] == "test_crash.py::test_crashes_once"
        assert set(reported(result).values()) == {1}

    def test_a_test_that_crashes_twice_fails_with_the_crash_message(self, pytester):
        """A second crash of the same test is its final result: failed, saying so."""
        pytester.makepyfile(test_suite=SUITE, test_crash=CRASH_ALWAYS)
        result, report = run(pytester, "-rA")
        assert outcomes(result) == {"passed": 13, "failed": 1, "rerun": 1}
        result.stdout.fnmatch_lines(
            ["*crashed while running 'test_crash.py::test_crashes_always'*crashed again*"]
        )
        (crashed,) = [t for t in report["tests"] if t["nodeid"].endswith("test_crashes_always")]
        assert crashed["outcome"] == "failed"

    def test_no_rerun_when_worker_restarts_are_disabled(self, pytester):
        """--max-worker-restart=0: the crash is final and xdist stops replacing workers."""
        pytester.makepyfile(test_crash=CRASH_ONCE)
        result, _ = run(pytester, "-rA", "--max-worker-restart=0")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*worker gw* crashed and worker restarting disabled*"])
        assert "rerun after worker crash" not in result.stdout.str()


class TestModes:
    def test_loadfile_keeps_each_file_on_one_worker(self, pytester):
        """--dist loadfile: every test of a file runs on the same worker."""
        pytester.makepyfile(test_a=SUITE, test_b=SUITE, test_c=SUITE)
        result, report = run(pytester, "--dist", "loadfile", "-v")
        result.assert_outcomes(passed=39)
        result.stdout.fnmatch_lines(["*scheduling tests via ShadowFarmScheduling*"])
        workers: dict[str, set[str]] = {}
        for test in report["tests"]:
            workers.setdefault(test["nodeid"].split("::")[0], set()).add(test["worker"])
        assert all(len(w) == 1 for w in workers.values())

    def test_loadgroup_keeps_a_group_on_one_worker(self, pytester):
        """--dist loadgroup: tests marked with one xdist_group share a worker."""
        grouped = SUITE.replace(
            "@pytest.mark.parametrize", '@pytest.mark.xdist_group("g")\n@pytest.mark.parametrize'
        )
        pytester.makepyfile(test_suite=grouped)
        result, report = run(pytester, "--dist", "loadgroup")
        result.assert_outcomes(passed=13)
        # xdist 3.8's own loadgroup no longer groups on pytest 9.2 (pytest-xdist#1386)
        group = {t["worker"] for t in report["tests"] if "test_short" in t["nodeid"]}
        assert len(group) == 1
        assert event(report, "scheduler")["units"] == 2

    def test_dist_off_leaves_scheduling_to_xdist(self, pytester):
        """--sf-dist off: xdist's own LoadScheduling runs the tests."""
        pytester.makepyfile(test_suite=SUITE)
        result, _ = run(pytester, "--sf-dist", "off", "-v")
        result.assert_outcomes(passed=13)
        result.stdout.fnmatch_lines(["*scheduling tests via LoadScheduling*"])

    def test_dist_each_stays_with_xdist(self, pytester):
        """--dist each is not replaced: every worker runs every test."""
        pytester.makepyfile(test_suite=SUITE)
        result, _ = run(pytester, "--dist", "each", "-v")
        result.assert_outcomes(passed=26)
        result.stdout.fnmatch_lines(["*scheduling tests via EachScheduling*"])


class TestMarkers:
    def test_a_critical_test_reaches_the_controller_and_runs_first(self, pytester):
        """The worker sends marker priorities; a critical test last in the file starts first."""
        pytester.makepyfile(
            test_suite=SUITE
            + '\n@pytest.mark.shadowfarm("critical")\ndef test_critical():\n    pass\n'
        )
        result, report = run(pytester)
        result.assert_outcomes(passed=14)
        assert event(report, "scheduler")["markers"] == 1
        (critical,) = [t for t in report["tests"] if t["nodeid"].endswith("test_critical")]
        same_worker = [t for t in report["tests"] if t["worker"] == critical["worker"]]
        assert critical["start_s"] == min(t["start_s"] for t in same_worker)
