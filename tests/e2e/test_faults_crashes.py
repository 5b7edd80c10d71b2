"""Workers killed by their own tests never cost the rest of the run (real xdist runs).

25 tests, 5 of which SIGKILL their worker, at ``-n 2``: every test ends with exactly one
final report; a crasher is rerun once on a fresh worker and then fails with the crash
message; the 20 others pass. With cold workers and with warm farm workers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 240

TESTS = """
import os
import signal

import pytest


@pytest.mark.parametrize("i", range(25))
def test_it(i):
    if i % 5 == 2:
        os.kill(os.getpid(), signal.SIGKILL)
"""

#: records, in the controller, every report of every test (rerun ones included)
CONFTEST = """
import json
import os


class Recorder:
    def pytest_runtest_logreport(self, report):
        with open(os.environ["REPORTS_FILE"], "a") as fh:
            fh.write(json.dumps([report.nodeid, report.when, report.outcome,
                                 str(report.longrepr or "")[:300]]) + "\\n")


def pytest_configure(config):
    # Only the controller of the -n run: not its workers, nor a farm worker's warm-up
    # (which runs a shadow test in a session of its own).
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):
        config.pluginmanager.register(Recorder())
"""


@pytest.fixture
def crashing(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(test_crash=TESTS)
    pytester.makeconftest(CONFTEST)
    monkeypatch.setenv("REPORTS_FILE", str(tmp_path / "reports.jsonl"))
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "farm-home"))
    return pytester


def final_reports(path: Path) -> list[list[str]]:
    """One entry per test's final report: its call, a failed setup/teardown, or a crash."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    final = []
    for nodeid, when, outcome, text in rows:
        if outcome == "rerun":
            continue
        if when == "call" or when == "???" or (when != "teardown" and outcome != "passed"):
            final.append([nodeid, when, outcome, text])
    return final


def check(result: pytest.RunResult, reports: Path) -> None:
    final = final_reports(reports)
    per_test = Counter(nodeid for nodeid, *_ in final)
    assert len(per_test) == 25, sorted(per_test)
    assert set(per_test.values()) == {1}, per_test
    failed = {nodeid: text for nodeid, _when, outcome, text in final if outcome == "failed"}
    assert sorted(failed) == sorted(f"test_crash.py::test_it[{i}]" for i in (2, 7, 12, 17, 22))
    for text in failed.values():
        assert "crashed while running" in text
    result.stdout.no_fnmatch_line("*maximum crashed workers reached*")
    result.assert_outcomes(passed=20, failed=5)
    result.stdout.fnmatch_lines(["*5 failed, 20 passed, 5 rerun*"])


class TestCrashingTests:
    def test_cold_workers_lose_no_test(self, crashing, tmp_path):
        """--sf-farm off: 25 reports, 20 passed, 5 failed after one rerun each."""
        result = crashing.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "2", "--sf-farm", "off", "-p", "no:cacheprovider",
            timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        check(result, tmp_path / "reports.jsonl")

    def test_warm_farm_workers_lose_no_test(self, crashing, tmp_path, start_farm):
        """The same with warm farm workers (replacements claimed mid-run, warm or cold)."""
        farm = start_farm(name="farm-home", default_min_warm=2)
        key = current_profile(str(crashing.path), []).key
        crashing.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "2", "-p", "no:cacheprovider", "-k", "test_it and 0]",
            timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        farm.wait_status(lambda s: counts(s, key).get("warm", 0) >= 2, "2 warm workers")
        (tmp_path / "reports.jsonl").unlink(missing_ok=True)
        result = crashing.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "2", "-p", "no:cacheprovider", timeout=RUN_TIMEOUT_S
        )
        result.stdout.fnmatch_lines(["shadowfarm: 2 warm workers (farm), 0 cold"])
        check(result, tmp_path / "reports.jsonl")

    def test_an_explicit_restart_limit_is_kept(self, crashing, tmp_path):
        """--max-worker-restart 1 is the user's choice: xdist stops the run as asked."""
        result = crashing.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "2", "--sf-farm", "off", "-p", "no:cacheprovider",
            "--max-worker-restart", "1", timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        result.stdout.fnmatch_lines(["*maximum crashed workers reached: 1*"])
