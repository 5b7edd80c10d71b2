"""``shadowfarm farm ...`` run in-process against real daemons on a temporary home."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from pytest_shadowfarm.cli.main import main
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import current_profile
from tests.farmtools import WAIT_S, gone, wait_until


def run(*args: str, home: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["farm", *args],
        env={**os.environ, **(env or {})}
        if env is not None
        else {**os.environ, "SHADOWFARM_HOME": str(home)},
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def home(tmp_path: Path):
    """A farm home; whatever daemon a test started there is stopped at teardown."""
    path = tmp_path / "home"
    yield path
    info = FarmHome(path).read_daemon()
    run("stop", home=path)
    if info is not None:
        assert wait_until(lambda: gone(info.pid), WAIT_S)


class TestWithoutAFarm:
    def test_status_says_how_to_start_one(self, home):
        """No daemon: exit 2 and the command that starts one."""
        code, _, err = run("status", home=home)
        assert code == 2
        assert "no farm is running from" in err
        assert "shadowfarm farm start" in err

    def test_stop_without_a_farm_is_not_an_error(self, home):
        """Stopping what is not running says so and succeeds."""
        code, out, _ = run("stop", home=home)
        assert (code, out.strip()) == (0, f"no farm was running from {home}")

    def test_scale_needs_min_or_max(self, home):
        """--profile alone is refused with what is missing."""
        code, _, err = run("scale", "--profile", "all", home=home)
        assert code == 2
        assert "needs --min N, --max M or both" in err

    def test_a_negative_count_is_a_usage_error(self, home, capsys):
        """argparse rejects --min -1 naming the value."""
        code, _, _ = run("scale", "--profile", "all", "--min", "-1", home=home)
        assert code == 2
        assert "expected a whole number >= 0, got '-1'" in capsys.readouterr().err


@pytest.mark.slow
class TestWithAFarm:
    def test_start_status_config_and_stop(self, home):
        """The admin's round trip: start, read, change a setting, stop."""
        code, out, _ = run("start", home=home)
        assert code == 0
        assert out.startswith("farm started at http://127.0.0.1:")
        assert run("start", home=home)[1].startswith("farm already running at")
        code, out, _ = run("status", "--json", home=home)
        status = json.loads(out)
        assert (code, status["version"], status["profiles"]) == (0, 1, [])
        code, out, _ = run("config", "set", "default_min_warm=0", "idle_ttl_s=90", home=home)
        assert out.splitlines() == ["default_min_warm = 0", "idle_ttl_s = 90.0"]
        assert json.loads(run("config", "get", "--json", home=home)[1])["idle_ttl_s"] == 90
        code, _, err = run("config", "set", "warm_nice=99", home=home)
        assert code == 2
        assert "warm_nice: Input should be less than or equal to 19" in err
        pid = status["pid"]
        assert run("stop", home=home)[1].startswith(f"farm stopped (pid {pid})")
        assert wait_until(lambda: gone(pid), WAIT_S)

    def test_home_on_the_command_line_wins_over_the_environment(self, home, tmp_path):
        """--home DIR is used even when SHADOWFARM_HOME names another directory."""
        other = tmp_path / "other"
        env = {"SHADOWFARM_HOME": str(other)}
        code, out, _ = run("start", "--home", str(home), home=home, env=env)
        assert code == 0
        assert f"home {home}" in out
        assert not other.exists()

    def test_workers_scale_and_drain(self, home, farm_project):
        """Workers are listed with profile and state; scale and drain change the pool."""
        run("start", home=home)
        farm_home = FarmHome(home)
        info = farm_home.running_daemon()
        assert info is not None
        client = FarmClient(FarmEndpoint(info.url or "", farm_home.read_token()), timeout=10)
        profile = current_profile(str(farm_project), ["idna"])
        client.claim(profile, 1, shadow_tests=["tests/test_lib.py::test_version"])
        args = ("scale", "--profile", profile.key[:8], "--min", "1", "--max", "1")
        out = run(*args, home=home)[1]
        assert out.strip() == f"scaled 1 profile(s): {profile.key}"

        def one_warm() -> bool:
            workers = json.loads(run("workers", "--json", home=home)[1])
            return [(w["profile"], w["state"]) for w in workers] == [(profile.key, "warm")]

        assert wait_until(one_warm, WAIT_S)
        out = run("workers", home=home)[1]
        assert "warm" in out
        assert "ok, 1 shadow tests" in out
        out = run("status", home=home)[1]
        assert f"profile {profile.key}  {farm_project}" in out
        assert "warming 0  warm 1  claimed 0  (min 1, max 1)" in out
        assert run("drain", home=home)[1].strip() == f"drained 1 profile(s): {profile.key}"
        assert wait_until(lambda: json.loads(run("workers", "--json", home=home)[1]) == [], WAIT_S)
