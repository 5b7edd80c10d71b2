"""A claim cannot choose the program the farm executes: only interpreters it verified."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from farm_server import daemon
from farm_server.pool import ProfileEntry
from farm_server.store import FarmStore
from shadowfarm_wire.profile import current_profile
from tests.farmtools import gone, wait_until

pytestmark = pytest.mark.slow

VERSION = ".".join(map(str, sys.version_info[:3]))


def evil_python(tmp_path: Path) -> tuple[Path, Path]:
    """A shell script called python3 that leaves a marker file when anything runs it."""
    marker = tmp_path / "it-ran"
    script = tmp_path / "bin" / "python3"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho ran >> {marker}\nexec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return script, marker


def claim(farm, profile) -> object:
    return farm.api("POST", "/api/workers/claim", json={"profile": profile.to_dict(), "count": 1})


class TestInterpreterChecks:
    def test_a_script_named_python_is_refused_and_never_run(self, start_farm, tmp_path):
        """403 naming the allow-list; the script never runs; no profile is registered."""
        script, marker = evil_python(tmp_path)
        farm = start_farm(default_min_warm=1)
        profile = current_profile(str(tmp_path), executable=str(script), version=VERSION)
        response = claim(farm, profile)
        assert response.status_code == 403, response.text
        assert "is not on the farm's allow-list" in response.json()["detail"]
        assert "interpreters.allow" in response.json()["detail"]
        assert farm.status()["profiles"] == []
        time.sleep(1.0)  # a supervisor tick or two: nothing may start it
        assert not marker.exists()

    def test_a_wrong_version_is_refused(self, start_farm, tmp_path):
        """The real interpreter, a claimed version it does not have: 403, nothing registered."""
        farm = start_farm(default_min_warm=0)
        profile = current_profile(str(tmp_path), executable=sys.executable, version="2.7.18")
        response = claim(farm, profile)
        assert response.status_code == 403, response.text
        assert f"is Python {VERSION}, not 2.7.18" in response.json()["detail"]
        assert farm.status()["profiles"] == []

    def test_a_relative_interpreter_is_refused(self, start_farm, tmp_path):
        """A path the daemon would look up in its own PATH: 403."""
        farm = start_farm(default_min_warm=0)
        profile = current_profile(str(tmp_path), executable="python3", version=VERSION)
        assert claim(farm, profile).status_code == 403

    def test_the_real_interpreter_is_accepted(self, start_farm, tmp_path):
        """The interpreter this test runs with (the daemon's own, or its venv) is fine."""
        farm = start_farm(default_min_warm=0)
        profile = current_profile(str(tmp_path), version=VERSION)
        assert claim(farm, profile).status_code == 200

    def test_a_stored_profile_with_a_bad_interpreter_never_runs_after_restart(
        self, start_farm, tmp_path
    ):
        """A profile persisted before these checks existed is dropped at start, never run."""
        script, marker = evil_python(tmp_path)
        farm = start_farm(default_min_warm=1)
        daemon.stop(farm.home)
        assert wait_until(lambda: gone(farm.pid), 30)
        store = FarmStore.open(farm.home.database)
        profile = current_profile(str(tmp_path), executable=str(script), version=VERSION)
        store.save_profile(ProfileEntry(profile, registered=time.time()))
        store.close()
        again = start_farm()
        assert again.status()["profiles"] == []
        time.sleep(1.0)
        assert not marker.exists()
        log = (farm.home.logs / "daemon.log").read_text()
        assert f"stored profile {profile.key} ignored" in log

    def test_the_owner_allow_list_admits_more_interpreters(self, start_farm, tmp_path):
        """A line in <home>/interpreters.allow admits that interpreter (still probed)."""
        script, marker = evil_python(tmp_path)
        farm = start_farm(default_min_warm=0)
        (farm.home.root / "interpreters.allow").write_text(f"{script.parent}\n")
        profile = current_profile(str(tmp_path), executable=str(script), version=VERSION)
        response = claim(farm, profile)
        # Allowed, so probed: a wrapper script reports its target as sys.executable.
        assert response.status_code == 403
        assert "reports itself as" in response.json()["detail"]
        assert marker.exists()  # the owner allowed it: running it was the owner's choice
