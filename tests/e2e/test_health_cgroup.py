"""A leaking suite under a real memory cgroup: plain xdist loses workers to the OOM killer.

Needs root and the cgroup memory controller (CI runs as root on Linux with cgroup v1 or
v2); skipped with the reason otherwise. Each run is bounded by a timeout (an OOM can
hang xdist: pytest-xdist#658).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory cgroups are Linux"),
]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
MIB = 1 << 20
LIMIT = 600 * MIB
TESTS = 100  # ~1.2 GB of leaks over 2 workers: past a 600 MiB limit twice or more
RUN_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def bench(monkeypatch_module: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/bench_health.py (it imports its sibling _cgroup by plain name)."""
    monkeypatch_module.syspath_prepend(str(BENCHMARKS))
    import bench_health

    return bench_health


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def leaking_suite(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leaking")
    bench.write_suite(root, "leaking", tests=TESTS)
    return root


def _cell(bench: ModuleType, suite: Path, *, shadowfarm: bool) -> Any:
    from _cgroup import CgroupError

    try:
        return bench.run_cell(
            suite,
            TESTS,
            workers=2,
            limit_bytes=LIMIT,
            shadowfarm=shadowfarm,
            timeout_s=RUN_TIMEOUT_S,
        )
    except CgroupError as exc:
        pytest.skip(f"no memory cgroup here: {exc}")


@pytest.fixture(scope="module")
def plain(bench: ModuleType, leaking_suite: Path) -> Any:
    """One plain xdist run of the leaking suite in the cgroup, shared by the tests below."""
    return _cell(bench, leaking_suite, shadowfarm=False)


def test_plain_xdist_gets_oom_kills_and_loses_tests(plain: Any) -> None:
    """-n 2 in a 600 MiB cgroup: the kernel kills leaking workers, their tests crash."""
    outcome = plain
    assert outcome.oom_kills >= 1, outcome
    assert outcome.lost >= 1, outcome
    assert outcome.crashed >= 1, outcome


def test_the_monitor_replayed_on_that_run_warns_of_each_oom_kill(plain: Any) -> None:
    """The RSS each worker had after each test, replayed through HealthMonitor: a swap
    decision came >= 3 of the killed worker's tests before every OOM kill."""
    replayed = plain.replay
    assert not isinstance(replayed, str), replayed
    assert replayed.leads, plain
    assert all(lead is not None and lead >= 3 for lead in replayed.leads.values()), replayed


def _shadowfarm_run(bench: ModuleType, suite: Path, limit: int) -> tuple[Any, dict[str, Any]]:
    """-p shadowfarm at -n 2 in a fresh cgroup; (the cgroup's figures, the run report)."""
    import json
    import subprocess

    from _cgroup import CgroupError, memory_cgroup

    report = suite / "run.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        "2",
        "-p",
        "xdist",
        "-p",
        "shadowfarm",
        f"--sf-report-json={report}",
        "--sf-history=.shadowfarm/history.sqlite",
    ]
    try:
        with memory_cgroup(limit) as group:
            try:
                done = group.run(cmd, cwd=suite, timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the run did not end within {RUN_TIMEOUT_S:.0f} s")
            figures = {"oom_kills": group.oom_kills(), "output": done.stdout + done.stderr}
    except CgroupError as exc:
        pytest.skip(f"no memory cgroup here: {exc}")
    return figures, json.loads(report.read_text())


def test_shadowfarm_replaces_leaking_workers_before_the_oom_killer(
    bench: ModuleType, leaking_suite: Path
) -> None:
    """The same suite and limit with -p shadowfarm: no OOM kill, every test passes once and
    is never rerun, and each replaced worker says why."""
    figures, report = _shadowfarm_run(bench, leaking_suite, LIMIT)
    output = figures["output"]
    assert figures["oom_kills"] == 0, output
    assert report["counts"] == {"passed": TESTS}, output
    assert not any(t.get("reruns") for t in report["tests"]), output
    health = report["health"]
    replaced = [w for w in report["workers"] if w["ended"] == "replaced"]
    assert health["replacements"] >= 1
    assert health["replacements"] == len(replaced)
    assert all("memory would reach" in w["reason"] for w in replaced), replaced
    assert health["crashes"] == 0
    assert "replaced after" in output


def test_a_healthy_suite_near_the_limit_has_no_replacement(
    bench: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """25 MiB kept per module and per-test allocations freed (about 72% of the limit at the
    peak): no worker is replaced, every one finishes."""
    root = tmp_path_factory.mktemp("healthy")
    tests = bench.write_suite(root, "healthy", tests=TESTS)
    figures, report = _shadowfarm_run(bench, root, LIMIT)
    assert figures["oom_kills"] == 0, figures["output"]
    assert report["counts"] == {"passed": tests}, figures["output"]
    assert report["health"]["replacements"] == 0, report["health"]
    assert {w["ended"] for w in report["workers"]} == {"finished"}
