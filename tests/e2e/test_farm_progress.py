"""Warm-up you can watch and wait for: a worker's steps, ``farm status``, ``farm wait``."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from pytest_shadowfarm.cli.main import main
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import current_profile
from tests.farmtools import WAIT_S, gone, wait_until

SHADOW = ["tests/test_lib.py::test_version"]

#: a warm-up hook that holds the worker in its "warm-up hook" step until the test
#: creates the release file (bounded: it gives up after WAIT_S)
HELD_HOOK = """\
import os, time
def pytest_shadowfarm_warmup(config):
    deadline = time.monotonic() + {wait}
    while not os.path.exists({release!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def farm(*args: str, home: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["farm", *args, "--home", str(home)], env=dict(os.environ), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def home(tmp_path: Path):
    """A farm home; the daemon a test started there is stopped at teardown."""
    path = tmp_path / "home"
    yield path
    info = FarmHome(path).read_daemon()
    farm("stop", home=path)
    if info is not None:
        assert wait_until(lambda: gone(info.pid), WAIT_S)


class TestWorkerSteps:
    def test_a_worker_reports_each_warm_up_step_before_it_is_ready(
        self, farm_project, spawn_worker
    ):
        """importing k of n, collecting, shadow tests k of n, settling, then ready."""
        worker = spawn_worker(farm_project, shadow_tests=SHADOW)
        worker.wait_for("ready")
        steps = [
            (e["step"], e["done"], e["total"]) for e in worker.seen if e["event"] == "progress"
        ]
        assert steps == [
            ("importing", 0, 1),
            ("collecting", None, None),
            ("shadow tests", 0, 1),
            ("shadow tests", 1, 1),
            ("settling", None, None),
        ]


class TestWatchAndWait:
    def test_status_shows_the_step_wait_times_out_then_start_wait_returns_warm(
        self, home, farm_project, tmp_path
    ):
        """While the hook holds the worker, status names the step and a short wait fails
        naming it; once released, ``farm start --wait`` returns with the farm warm."""
        release = tmp_path / "release"
        (farm_project / "tests" / "conftest.py").write_text(
            HELD_HOOK.format(wait=WAIT_S, release=str(release))
        )
        assert farm("start", home=home)[0] == 0
        code, out, _ = farm("wait", "--timeout", "5", home=home)
        assert (code, out.strip()) == (0, "no profiles registered yet: nothing to wait for")
        assert farm("config", "set", "default_min_warm=1", "default_max_warm=1", home=home)[0] == 0
        fh = FarmHome(home)
        info = fh.running_daemon()
        assert info is not None
        client = FarmClient(FarmEndpoint(info.url or "", fh.read_token()), timeout=10)
        profile = current_profile(str(farm_project), ["idna"])
        client.claim(profile, 1, shadow_tests=SHADOW)

        def in_hook() -> bool:
            return "warming: warm-up hook (for" in farm("status", home=home)[1]

        assert wait_until(in_hook, WAIT_S), farm("status", home=home)[1]
        code, _, err = farm("wait", "--timeout", "0.5", home=home)
        assert code != 0
        assert "the farm was not warm after 0.5s" in err
        assert f"profile {profile.key} ({farm_project}): 0 of 1 warm" in err
        assert "warm-up hook" in err

        release.touch()
        code, out, err = farm("start", "--wait", "--timeout", str(WAIT_S), home=home)
        assert code == 0, err
        assert out.splitlines()[0].startswith("farm already running at")
        assert out.splitlines()[1].startswith("farm warm after ")
        status = client.status()
        (entry,) = status["profiles"]
        assert entry["counts"]["warm"] == 1
        assert entry["warming"] == []
        assert entry["warmup_s_last"] > 0
        (worker,) = status["workers"]
        assert worker["progress"] is None
        assert worker["ready"]["heap"]["frozen"] > 0
        assert "warm-up median" in farm("status", home=home)[1]

    def test_a_timeout_must_be_a_positive_number(self, home, capsys):
        """argparse rejects --timeout 0 naming the value."""
        code, _, _ = farm("wait", "--timeout", "0", home=home)
        assert code == 2
        assert "expected a number of seconds > 0, got '0'" in capsys.readouterr().err
