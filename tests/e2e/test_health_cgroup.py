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
