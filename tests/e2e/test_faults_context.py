"""Warm workers run with the run's context: TZ, warnings, rlimits, affinity; hash seed refused."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 180
NOFILE = 777

TESTS = """
import os
import resource
import time
import warnings


def test_timezone():
    assert time.localtime(0).tm_gmtoff == 9 * 3600  # TZ=Asia/Tokyo (UTC+9, no DST)


def test_warnings_from_pythonwarnings():
    assert any(f[0] == "error" and f[2] is UserWarning for f in warnings.filters)


def test_rlimit():
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == {nofile}


def test_affinity():
    assert os.sched_getaffinity(0) == {{0}}
"""


def _limit_the_run() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, hard))
    os.sched_setaffinity(0, {0})


def run(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "shadowfarm", "-n", "2", "-p", "no:cacheprovider"],
        cwd=path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        preexec_fn=_limit_the_run,
    )  # fmt: skip


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to see an affinity passed on")
    pytester.makepyfile(test_context=TESTS.format(nofile=NOFILE))
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "farm-home"))
    for name in ("TZ", "PYTHONWARNINGS", "PYTHONHASHSEED"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def warm(project: pytest.Pytester, start_farm) -> dict[str, str]:
    farm = start_farm(name="farm-home")
    key = current_profile(str(project.path), []).key
    env = {**os.environ}
    run(project.path, env)  # registers the profile
    farm.wait_status(lambda s: counts(s, key).get("warm", 0) >= 2, "2 warm workers")
    return env


class TestRunContext:
    def test_warm_workers_take_the_runs_context(self, project, start_farm):
        """TZ, PYTHONWARNINGS, RLIMIT_NOFILE and CPU affinity of the run reach warm workers."""
        env = warm(project, start_farm)
        env.update(TZ="Asia/Tokyo", PYTHONWARNINGS="error::UserWarning")
        done = run(project.path, env)
        assert "shadowfarm: 2 warm workers (farm), 0 cold" in done.stdout, done.stdout
        assert "4 passed" in done.stdout, done.stdout

    def test_another_hash_seed_gets_cold_workers_and_says_why(self, project, start_farm):
        """PYTHONHASHSEED=123 against workers seeded at random: refused, cold, a warning."""
        env = warm(project, start_farm)
        env.update(TZ="Asia/Tokyo", PYTHONWARNINGS="error::UserWarning", PYTHONHASHSEED="123")
        done = run(project.path, env)
        assert "shadowfarm: 0 warm workers (farm), 2 cold" in done.stdout, done.stdout
        assert "the run's PYTHONHASHSEED is 123, this worker's is random" in done.stdout
        assert "4 passed" in done.stdout, done.stdout
