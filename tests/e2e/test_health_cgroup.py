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
LIMIT = 300 * MIB
TESTS = 40  # ~480 MiB of leaks over 2 workers: past a 300 MiB limit at least once
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


def test_plain_xdist_gets_oom_kills_and_loses_tests(bench: ModuleType, leaking_suite: Path) -> None:
    """-n 2 in a 300 MiB cgroup: the kernel kills leaking workers, their tests crash."""
    outcome = _cell(bench, leaking_suite, shadowfarm=False)
    assert outcome.oom_kills >= 1, outcome
    assert outcome.lost >= 1, outcome
    assert outcome.crashed >= 1, outcome


def test_shadowfarm_health_replaces_workers_before_the_oom(
    bench: ModuleType, leaking_suite: Path
) -> None:
    """With --sf-health on: no OOM kill, no test lost (once the monitor is wired in)."""
    if not bench.has_health_option():
        pytest.skip("--sf-health is not integrated into the plugin yet")
    outcome = _cell(bench, leaking_suite, shadowfarm=True)
    assert (outcome.oom_kills, outcome.lost) == (0, 0), outcome
    assert outcome.replacements is not None
    assert outcome.replacements >= 1, outcome
