"""The farm's logs stay bounded, a worker's stderr and the daemon's own included."""

from __future__ import annotations

import pytest

from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts, wait_until

pytestmark = pytest.mark.slow

LIMIT = 64 << 10

#: a warm-up hook that writes 1 MB to the worker's stderr (its log), as a noisy suite does
NOISY = """
import sys

def pytest_shadowfarm_warmup(config):
    for _ in range(1024):
        sys.stderr.write("x" * 1023 + "\\n")
    sys.stderr.flush()
"""


def test_worker_and_daemon_logs_are_rotated(start_farm, farm_project):
    """1 MB into a worker's log and into daemon.out: both end under the limit, a .1 kept."""
    (farm_project / "conftest.py").write_text(NOISY)
    farm = start_farm(default_min_warm=1, default_max_warm=1, log_max_bytes=LIMIT)
    profile = current_profile(str(farm_project), ["idna"])
    farm.claim(profile, 1, modules=["idna"])
    farm.wait_status(lambda s: counts(s, profile.key).get("warm", 0) >= 1, "a warm worker")
    with (farm.home.logs / "daemon.out").open("ab") as out:
        out.write(b"y" * (1 << 20))
    logs = farm.home.logs

    def bounded() -> bool:
        files = [p for p in logs.iterdir() if p.is_file()]
        return all(p.stat().st_size <= LIMIT for p in files)

    assert wait_until(bounded, 30), {p.name: p.stat().st_size for p in logs.iterdir()}
    assert (logs / "daemon.out.1").stat().st_size == LIMIT
    rotated = list(logs.glob("w-*.log.1"))
    assert rotated, sorted(p.name for p in logs.iterdir())
    assert all(b"x" * 1023 in p.read_bytes() for p in rotated)
