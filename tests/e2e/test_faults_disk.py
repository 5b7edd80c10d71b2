"""A full disk under a real daemon (a small tmpfs): reported unhealthy, recovered from."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs at ``tmp_path/disk`` (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> Path:
    """Write ``path`` until the disk is full."""
    chunk = b"\0" * (1 << 20)
    with path.open("wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(chunk)
            fh.flush()
    return path


def test_a_full_disk_is_reported_and_recovered_from(small_disk, start_farm, farm_project):
    """Disk full: health 503 and the status says why; workers still get warm; space back: ok."""
    farm = start_farm(name="disk/home", default_min_warm=1, default_max_warm=1)
    assert farm.api("GET", "/api/health", auth=False).json()["ok"] is True
    filler = fill(small_disk / "filler")
    profile = current_profile(str(farm_project), ["idna"])
    response = farm.api(
        "POST", "/api/workers/claim", json={"profile": profile.to_dict(), "count": 1}
    )
    assert response.status_code == 200, response.text  # no 500 for a failed write
    status = farm.wait_status(lambda s: not s["health"]["ok"], "the farm unhealthy")
    assert any("disk nearly full" in p for p in status["health"]["problems"])
    health = farm.api("GET", "/api/health", auth=False)
    assert health.status_code == 503
    assert health.json()["problems"]
    # The threads that follow the workers survive the failed writes: warm-ups finish.
    farm.wait_status(
        lambda s: counts(s, profile.key).get("warm", 0) >= 1, "a warm worker on a full disk"
    )
    filler.unlink()
    farm.wait_status(lambda s: s["health"]["ok"], "the farm healthy again")
    assert farm.api("GET", "/api/health", auth=False).status_code == 200
    assert farm.claim(profile, 1)["workers"]
