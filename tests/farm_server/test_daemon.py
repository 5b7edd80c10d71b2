"""The daemon's parts that need no daemon: config and profiles from the store, URLs,
stop/start/serve when a farm is (or is not) running, the READY/ERROR pipe."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psutil
import pytest

from farm_server import daemon
from farm_server.config import FarmConfig
from farm_server.entries import ProfileEntry
from farm_server.interpreters import Interpreters
from farm_server.pool import Pool
from farm_server.store import FarmStore
from shadowfarm_wire.home import DaemonInfo, FarmHome
from shadowfarm_wire.profile import current_profile
from tests.apptools import NoProcessLauncher

PROFILE = current_profile("/src/proj", distributions=[("numpy", "1")])
#: stored before the allow-list existed: an interpreter the farm never verified
UNVERIFIED = current_profile("/src/old", distributions=[("numpy", "1")], executable="/py")


@pytest.fixture
def store(tmp_path: Path):
    store = FarmStore.open(tmp_path / "farm.sqlite")
    yield store
    store.close()


@pytest.fixture
def home(tmp_path: Path) -> FarmHome:
    return FarmHome(tmp_path / "home").create()


def another_live_daemon(home: FarmHome, url: str | None = "http://127.0.0.1:9") -> DaemonInfo:
    """daemon.json naming a live process that is not this one (pid 1, as it started)."""
    info = DaemonInfo(1, psutil.Process(1).create_time(), url)
    home.write_daemon(info)
    return info


class TestLoadConfig:
    def test_the_stored_config_is_applied(self, store):
        """Settings saved by an earlier life come back."""
        store.save_config({"default_max_warm": 9})
        assert daemon._load_config(store).default_max_warm == 9

    def test_a_stored_config_that_no_longer_validates_gives_the_defaults(self, store, caplog):
        """An invalid stored value is logged and the defaults are used."""
        store.save_config({"default_max_warm": -3})
        with caplog.at_level(logging.WARNING, logger="shadowfarm.daemon"):
            assert daemon._load_config(store) == FarmConfig()
        assert "stored config ignored" in caplog.text


class TestRestoreProfiles:
    def test_stored_profiles_come_back_and_broken_ones_are_skipped(self, store, tmp_path, caplog):
        """A saved profile is restored with its scaling; one that no longer parses, or whose
        interpreter the farm does not allow, is logged and not restored."""
        entry = ProfileEntry(PROFILE, registered=5.0, min_warm=1, max_warm=3, health="healthy")
        store.save_profile(entry)
        store.save_profile(ProfileEntry(UNVERIFIED, registered=5.0))
        store._exec(
            "INSERT INTO profiles VALUES ('broken', '{}', '[]', NULL, NULL, 6.0, NULL, NULL, 0, "
            "'unknown')"
        )
        pool = Pool(FarmConfig(), NoProcessLauncher(), tmp_path, idle=lambda: 1.0, cores=1)
        with caplog.at_level(logging.WARNING, logger="shadowfarm.daemon"):
            daemon._restore_profiles(pool, store, Interpreters(tmp_path))
        restored = pool.profiles[PROFILE.key]
        assert (restored.registered, restored.min_warm, restored.max_warm, restored.health) == (
            5.0,
            1,
            3,
            "healthy",
        )
        assert list(pool.profiles) == [PROFILE.key]
        assert "stored profile broken ignored" in caplog.text
        assert f"stored profile {UNVERIFIED.key} ignored: interpreter '/py'" in caplog.text


class TestUrl:
    def test_ipv6_hosts_are_bracketed(self):
        """An IPv6 literal goes in brackets; names and IPv4 do not."""
        assert daemon._url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
        assert daemon._url("::1", 8080) == "http://[::1]:8080"


class TestWithoutADaemon:
    def test_stop_when_nothing_runs_removes_a_stale_file(self, home):
        """No live daemon: None, and a daemon.json of a dead process is removed."""
        home.write_daemon(DaemonInfo(2**22 + 54321, 0.0, "http://x"))
        assert daemon.stop(home) is None
        assert not home.daemon_file.exists()
        assert daemon.stop(home) is None

    def test_start_returns_the_farm_that_already_runs(self, home):
        """A live daemon with a URL: start() returns it, and says it started nothing."""
        info = another_live_daemon(home)
        assert daemon.start(home) == (info, False)

    def test_serve_refuses_a_home_another_farm_runs_from(self, home):
        """Two farms on one home: FarmDaemonError naming the running one."""
        another_live_daemon(home)
        with pytest.raises(daemon.FarmDaemonError, match=r"a farm already runs from .*pid 1"):
            daemon.serve(home)

    def test_main_reports_a_failure_and_raises_it(self, home):
        """python -m farm_server.daemon: the error goes up (the launcher sees ERROR)."""
        another_live_daemon(home)
        with pytest.raises(daemon.FarmDaemonError):
            daemon.main(["--home", str(home.root), "--port", "0"])


class TestNotifier:
    def test_one_line_then_closed(self):
        """READY <url> is written once; what follows is dropped."""
        read, write = os.pipe()
        notifier = daemon._Notifier(write)
        notifier.ready("http://127.0.0.1:1")
        notifier.failed(RuntimeError("late"))
        with os.fdopen(read) as pipe:
            assert pipe.read() == "READY http://127.0.0.1:1\n"

    def test_an_error_line(self):
        """ERROR <why> for a daemon that could not start; no pipe, no output."""
        read, write = os.pipe()
        daemon._Notifier(write).failed(OSError("port in use"))
        with os.fdopen(read) as pipe:
            assert pipe.read() == "ERROR port in use\n"
        daemon._Notifier(None).ready("ignored")
