"""Scaling the xdist swarm mid-run, through real pytest runs (subprocesses, bounded)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytest_shadowfarm.cli.main import main as shadowfarm_cli

#: every run below ends well within this, or the test fails instead of hanging
RUN_TIMEOUT_S = 180
SHORT, LONG, N_SHORT = 0.3, 4.0, 40

#: sleeps stand for network waits: many short ones and one long one
SUITE = f"""
import time
import pytest

@pytest.mark.parametrize("i", range({N_SHORT}))
def test_wait(i):
    time.sleep({SHORT})

def test_long_wait():
    time.sleep({LONG})
"""

CRASH_LATE_WORKERS = """
import os

# Every worker but the first dies while it starts (before it is ready).
if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
    os._exit(3)
"""

BAD_SOURCE = """
from pytest_shadowfarm.workers.source import PopenSource

def pytest_sessionstart(session):
    swarm = session.config.pluginmanager.getplugin("shadowfarm-swarm")
    if swarm is not None:  # a new worker's interpreter that does not exist
        swarm.source = PopenSource("popen//python=/nonexistent/python3")
"""

HALF_STARTED = """
import execnet
from xdist.workermanage import WorkerController


class HalfStarted:
    # gets as far as pytest_configure_node, then fails as a remote_exec could
    name = "half"

    def start(self, nodemanager, putevent):
        spec = execnet.XSpec("execmodel=main_thread_only//popen")
        nodemanager.group.allocate_id(spec)
        gateway = nodemanager.group.makegateway(spec)
        node = WorkerController(nodemanager, gateway, nodemanager.config, putevent)
        nodemanager.config.hook.pytest_configure_node(node=node)
        gateway.exit()
        raise RuntimeError("remote_exec failed")


def pytest_sessionstart(session):
    swarm = session.config.pluginmanager.getplugin("shadowfarm-swarm")
    if swarm is not None:
        swarm.source = HalfStarted()
"""

N_TESTS = N_SHORT + 1


def _teach(pytester: pytest.Pytester) -> None:
    """Give the history each test's duration, as pytest-split's .test_durations would."""
    durations = {f"test_io.py::test_wait[{i}]": SHORT for i in range(N_SHORT)}
    durations["test_io.py::test_long_wait"] = LONG
    path = pytester.path / ".test_durations"
    path.write_text(json.dumps(durations))
    code = shadowfarm_cli(
        ["history", "import", str(path), "--history", ".shadowfarm/history.sqlite"],
        cwd=pytester.path,
        out=io.StringIO(),
    )
    assert code == 0


@pytest.fixture
def project(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    pytester.makepyfile(test_io=SUITE)
    _teach(pytester)
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "no-farm"))  # never a real farm
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = pytester.runpytest_subprocess(
        "-p", "shadowfarm", "--sf-report-json", "report.json", *args, timeout=RUN_TIMEOUT_S
    )
    report = json.loads((pytester.path / "report.json").read_text())
    return result, report


def _scales(report: dict[str, Any]) -> list[tuple[int, int]]:
    return [(e["from"], e["to"]) for e in report["events"] if e.get("event") == "scale"]


def _assert_each_test_reported_once(result: pytest.RunResult, report: dict[str, Any]) -> None:
    result.assert_outcomes(passed=N_TESTS)
    seen = Counter(test["nodeid"] for test in report["tests"])
    assert len(seen) == N_TESTS
    assert set(seen.values()) == {1}
    assert {test["outcome"] for test in report["tests"]} == {"passed"}
    assert report["counts"] == {"passed": N_TESTS}
    assert not any(test.get("reruns") for test in report["tests"])


@pytest.mark.slow
class TestScaling:
    def test_it_grows_mid_run_with_every_test_reported_once(self, project: pytest.Pytester) -> None:
        """1:3, target 1 s (as soon as possible): starts with one worker, grows, each test once.

        The target makes growth independent of how slow a loaded test machine starts
        workers (without one, a worker must get 3 start-ups' worth of work: see
        test_swarm_policy for that rule).
        """
        result, report = _run(project, "--sf-workers", "1:3", "--sf-target", "1")
        _assert_each_test_reported_once(result, report)
        scales = _scales(report)
        assert scales[0][0] == 1
        assert any(to > frm for frm, to in scales), scales
        assert all(1 <= to <= 3 for _, to in scales)
        late = {w["id"] for w in report["workers"]} - {"gw0"}
        assert late
        assert late & {test["worker"] for test in report["tests"]}  # the new ones did work
        for worker in report["workers"]:
            assert worker["left_s"] >= worker["joined_s"]
        result.stdout.fnmatch_lines(
            [
                "swarm * 1 -> *: * s of work left*",
                "swarm: * worker-s over * s wall, * workers; baseline static -n auto (*): *",
                "telemetry: * samples from * workers; * (I/O-bound)",
            ]
        )
        assert "replacing crashed worker" not in result.stdout.str()
        assert report["swarm"]["workers"] == "1:3"

    def test_it_drains_busy_workers_mid_run_without_losing_a_test(
        self, project: pytest.Pytester
    ) -> None:
        """-n 3 under 1:3 with a far target: drained to 1 while tests are left, each test once."""
        result, report = _run(project, "-n", "3", "--sf-workers", "1:3", "--sf-target", "600")
        _assert_each_test_reported_once(result, report)
        drains = [e for e in report["events"] if e.get("event") == "scale" and e["to"] < e["from"]]
        assert drains, report["events"]
        first = drains[0]
        assert (first["from"], first["to"]) == (3, 1)
        assert "target 600 s" in first["reason"]
        # A drained worker runs what it held at the drain and takes nothing more: no
        # clock margin needed, the start times come from the same loop as the drain.
        held = first["held"]
        assert set(held) == set(first["workers"])
        later = [t for t in report["tests"] if t["start_s"] >= first["t"]]
        assert len(later) > sum(held.values())  # tests were left when it drained
        ran_after = Counter(t["worker"] for t in later)
        for worker, count in held.items():
            assert ran_after[worker] <= count, (worker, count, later)
        assert set(ran_after) - set(held)  # the worker kept ran the rest
        drained = {w for e in drains for w in e["workers"]}
        ends = {w["id"]: w["left_s"] for w in report["workers"]}
        assert all(ends[w] < report["wall_s"] for w in drained)

    def test_a_plain_n_keeps_a_fixed_swarm(self, project: pytest.Pytester) -> None:
        """-n 2 without --sf-workers: two workers throughout, no scaling event."""
        result, report = _run(project, "-n", "2")
        _assert_each_test_reported_once(result, report)
        assert _scales(report) == []
        assert sorted(w["id"] for w in report["workers"]) == ["gw0", "gw1"]


@pytest.mark.slow
class TestLateWorkerFailures:
    @pytest.mark.parametrize(
        "conftest", [CRASH_LATE_WORKERS, BAD_SOURCE, HALF_STARTED], ids=["crash", "spawn", "half"]
    )
    def test_a_late_worker_that_fails_to_start_does_not_hang_the_run(
        self, project: pytest.Pytester, conftest: str
    ) -> None:
        """It is reported and dropped (no xdist restart loop); the first worker runs everything."""
        project.makeconftest(conftest)
        # -n 1 under a minimum of 2: the swarm asks for a second worker at once.
        result, report = _run(project, "-n", "1", "--sf-workers", "2:3")
        _assert_each_test_reported_once(result, report)
        failed = [e for e in report["events"] if e.get("event") == "scale_failed"]
        assert len(failed) == 2, report["events"]  # then it stops trying
        assert {test["worker"] for test in report["tests"]} == {"gw0"}
        output = result.stdout.str()
        assert "replacing crashed worker" not in output
        assert "maximum crashed workers reached" not in output
        result.stdout.fnmatch_lines(["*swarm: a new worker failed to start*"])
        for worker in report["workers"]:  # a failed worker's cost ends when it failed
            assert worker["left_s"] is not None
            assert worker["left_s"] <= report["wall_s"]


@pytest.mark.slow
class TestLimits:
    def test_a_small_budget_holds_the_swarm_at_its_minimum(self, project: pytest.Pytester) -> None:
        """--sf-budget below what one worker needs: no worker is ever added."""
        result, report = _run(project, "--sf-workers", "1:3", "--sf-budget", "5")
        _assert_each_test_reported_once(result, report)
        assert not any(to > frm for frm, to in _scales(report))
        assert [w["id"] for w in report["workers"]] == ["gw0"]

    def test_a_generous_target_needs_no_second_worker(self, project: pytest.Pytester) -> None:
        """--sf-target 600 with ~16 s of work: one worker meets it, none added."""
        result, report = _run(project, "--sf-workers", "1:3", "--sf-target", "600")
        _assert_each_test_reported_once(result, report)
        assert not any(to > frm for frm, to in _scales(report))

    def test_below_the_minimum_it_grows_at_once(self, project: pytest.Pytester) -> None:
        """-n 1 under 2:3: a second worker is asked for as soon as the work is known."""
        result, report = _run(project, "-n", "1", "--sf-workers", "2:3", "--sf-target", "600")
        _assert_each_test_reported_once(result, report)
        scales = [e for e in report["events"] if e.get("event") == "scale"]
        assert scales, report["events"]
        assert (scales[0]["from"], scales[0]["to"]) == (1, 2)
        assert scales[0]["reason"] == "below the minimum of 2"


class TestOptions:
    def test_a_range_upside_down_is_a_usage_error(self, pytester: pytest.Pytester) -> None:
        """--sf-workers 3:1 stops the run and names the option and the form."""
        pytester.makepyfile(test_a="def test_a(): pass")
        result = pytester.runpytest("-p", "shadowfarm", "--sf-workers", "3:1")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*--sf-workers='3:1' is not valid: expected 1 <= MIN <= MAX*"])

    def test_thresholds_without_a_band_are_a_usage_error(self, pytester: pytest.Pytester) -> None:
        """scale_down above scale_up stops the run and names both options."""
        pytester.makepyfile(test_a="def test_a(): pass")
        result = pytester.runpytest(
            "-p", "shadowfarm", "--sf-workers", "1:2", "--sf-scale-up", "0.4"
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*--sf-scale-up / default: scale_down (0.5) must be below scale_up (0.4)*"]
        )

    def test_without_xdist_it_runs_in_process_and_says_so(self, pytester: pytest.Pytester) -> None:
        """-p no:xdist: the tests run, one warning names what is missing."""
        pytester.makepyfile(test_a="def test_a(): pass")
        result = pytester.runpytest("-p", "shadowfarm", "-p", "no:xdist", "--sf-workers", "1:2")
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(["*--sf-workers 1:2 needs pytest-xdist*"])

    def test_n_0_keeps_the_run_in_process(self, pytester: pytest.Pytester) -> None:
        """-n 0 wins over --sf-workers: no workers, one warning."""
        pytester.makepyfile(test_a="def test_a(): pass")
        result = pytester.runpytest("-p", "shadowfarm", "-n", "0", "--sf-workers", "1:2")
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(["*--sf-workers 1:2: needs pytest-xdist running*"])

    def test_the_settings_come_from_the_environment_too(self, tmp_path: Path) -> None:
        """SHADOWFARM_WORKERS / _BUDGET / _TARGET resolve like every other setting."""
        from pytest_shadowfarm.settings import resolve
        from pytest_shadowfarm.swarm.policy import WorkerRange

        env = {"SHADOWFARM_WORKERS": "2:5", "SHADOWFARM_BUDGET": "90", "SHADOWFARM_TARGET": "30"}
        settings = resolve(
            rootdir=tmp_path, invocation_dir=tmp_path, cli={}, env=env, toml={}, ini={}
        )
        assert settings.workers == WorkerRange(2, 5)
        assert (settings.budget, settings.target) == (90.0, 30.0)
        assert (settings.telemetry_interval, settings.scale_up, settings.scale_down) == (
            0.2,
            0.8,
            0.5,
        )
