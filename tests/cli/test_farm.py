"""``shadowfarm farm ...`` in-process: argument errors, no farm running, and the text and
JSON output against an in-process farm (its real API on a loopback port)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from farm_server.farm import Farm
from pytest_shadowfarm.cli.main import main
from shadowfarm_wire.endings import WorkerEnding
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import current_profile
from tests.apptools import Clock, make_farm, pretend_running, serve_farm, warm_all

#: this interpreter: the in-process farm verifies it and allows it (it is its own)
PROFILE = current_profile("/src/proj", distributions=[("numpy", "1")])


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def home(tmp_path: Path) -> FarmHome:
    return FarmHome(tmp_path / "home")


@pytest.fixture
def shadowfarm(home: FarmHome, tmp_path: Path):
    """Run ``shadowfarm farm ARGS --home HOME`` in this process; its code and output."""

    def run(*args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["farm", *args, "--home", str(home.root)], env={}, cwd=tmp_path, out=out, err=err
        )
        return Result(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def farm(home: FarmHome, clock: Clock, api_server) -> Iterator[Farm]:
    """A farm served in this process, that daemon.json says is running."""
    farm = make_farm(home, clock)
    with serve_farm(api_server, farm) as url:
        pretend_running(home, url)
        yield farm
    farm.store.close()


class TestWithoutAFarm:
    @pytest.mark.parametrize(
        "args",
        [
            ("status",),
            ("workers", "--json"),
            ("drain",),
            ("config", "get"),
            ("scale", "--profile", "all", "--min", "1"),
        ],
    )
    def test_a_command_that_needs_the_farm_says_none_runs(self, shadowfarm, home, args):
        """No daemon.json: exit 2 and a message naming the home and how to start one."""
        result = shadowfarm(*args)
        assert result.code == 2
        assert f"no farm is running from {home.root}" in result.err
        assert "shadowfarm farm start" in result.err

    def test_a_stale_daemon_file_counts_as_no_farm(self, shadowfarm, home):
        """daemon.json of a process that is gone: still 'no farm is running'."""
        home.create()
        home.daemon_file.write_text(json.dumps({"pid": 1, "started": 0.0, "url": "http://x"}))
        assert "no farm is running" in shadowfarm("status").err

    def test_stop_without_a_farm_says_so_and_succeeds(self, shadowfarm, home):
        """Stopping a farm that is not running is not an error; a stale file is removed."""
        home.create()
        home.daemon_file.write_text(json.dumps({"pid": 1, "started": 0.0, "url": "http://x"}))
        result = shadowfarm("stop")
        assert (result.code, result.out.strip()) == (0, f"no farm was running from {home.root}")
        assert not home.daemon_file.exists()

    def test_scale_without_a_bound_is_an_error(self, shadowfarm):
        """farm scale needs --min or --max; the message says so."""
        result = shadowfarm("scale", "--profile", "all")
        assert result.code == 2
        assert "needs --min N, --max M or both" in result.err

    def test_a_negative_scale_bound_is_a_usage_error(self, shadowfarm, capsys):
        """--min takes a whole number; argparse (on sys.stderr) reports the value."""
        result = shadowfarm("scale", "--profile", "all", "--min", "-1")
        assert result.code == 2
        assert "--min: expected a whole number >= 0, got '-1'" in capsys.readouterr().err

    def test_a_config_pair_without_equals_is_an_error(self, shadowfarm, farm):
        """config set takes KEY=VALUE; anything else is named with the fix."""
        result = shadowfarm("config", "set", "tick_s")
        assert result.code == 2
        assert "expected KEY=VALUE, got 'tick_s'" in result.err


class TestAgainstAFarm:
    def test_status_without_profiles_says_how_to_get_one(self, shadowfarm, farm):
        """A fresh farm: its URL, pid, no claims, and how to register a project."""
        result = shadowfarm("status")
        assert result.code == 0
        assert f"farm at {farm.url} (pid {farm.pid}, up 0.00s)" in result.out
        assert "claims 0: 0 of 0 workers warm (hit rate -), 0 live workers" in result.out
        assert "no profiles yet" in result.out

    def test_status_lists_each_profile_with_its_counts(self, shadowfarm, farm, clock):
        """A profile line with its root and health, then its counts and warm-up median."""
        farm.claim(PROFILE, 2, (), (), {})
        warm_all(farm)
        clock.now += 3725
        result = shadowfarm("status")
        assert "up 1h02m" in result.out
        assert "claims 1: 0 of 2 workers warm (hit rate 0%), 1 live workers" in result.out
        assert f"profile {PROFILE.key}  /src/proj" in result.out
        assert "warming 0  warm 1  claimed 0  (min 0, max 0)  warm-up median 0.00s" in result.out

    def test_status_shows_what_the_farm_learned_of_a_profile(self, shadowfarm, farm):
        """A worker replaced for memory and one that crashed: the profile's max age, its sick
        workers and the last reason, in the text and in --json."""
        farm.claim(PROFILE, 1, (), (), {})
        warm_all(farm)
        [a] = [w.id for w in farm.claim(PROFILE, 1, (), (), {}).workers]
        warm_all(farm)
        [b] = [w.id for w in farm.claim(PROFILE, 1, (), (), {}).workers]
        farm.release(a, WorkerEnding("replaced", "memory", 40, 20.0, "memory would reach"))
        farm.release(b, WorkerEnding("crashed", "crash", 48, 30.0, "Killed"))
        out = shadowfarm("status").out
        assert (
            "  max age 38 tests or 21.20s: 2 sick workers (1 crashed), 0 recycled at the max "
            "age; last: Killed"
        ) in out
        [profile] = json.loads(shadowfarm("status", "--json").out)["profiles"]
        assert profile["learned"]["max_age_tests"] == 38
        assert profile["learned"]["basis"].startswith("2 sick workers (crash, memory) in 7 days")

    def test_status_json_is_the_api_document(self, shadowfarm, farm):
        """--json prints the status document as the API returns it."""
        farm.claim(PROFILE, 1, (), (), {})
        data = json.loads(shadowfarm("status", "--json").out)
        assert data["version"] == 1
        assert [p["key"] for p in data["profiles"]] == [PROFILE.key]

    def test_workers_lists_each_worker_with_its_readiness(self, shadowfarm, farm, clock):
        """One row per live worker: id, profile, state, pid, age, warm-up, readiness."""
        farm.claim(PROFILE, 1, (), (), {})
        [worker_id] = warm_all(farm, modules=("json",))
        clock.now += 75
        lines = shadowfarm("workers").out.splitlines()
        assert lines[0].split() == ["ID", "PROFILE", "STATE", "PID", "AGE", "WARM-UP", "READY"]
        assert lines[1].split()[:5] == [worker_id, PROFILE.key, "warm", "2001", "1m15s"]
        assert lines[1].endswith("ok, 0 shadow tests, 1 modules")

    def test_workers_says_when_there_are_none(self, shadowfarm, farm):
        """No live worker: one line saying so; --json: an empty list."""
        assert shadowfarm("workers").out.strip() == "no live workers"
        assert json.loads(shadowfarm("workers", "--json").out) == []

    def test_scale_and_drain_report_the_profiles_they_changed(self, shadowfarm, farm):
        """scale and drain print the keys the farm changed."""
        farm.claim(PROFILE, 1, (), (), {})
        scaled = shadowfarm("scale", "--profile", PROFILE.key[:5], "--min", "0", "--max", "3")
        assert scaled.out.strip() == f"scaled 1 profile(s): {PROFILE.key}"
        assert farm.pool.profiles[PROFILE.key].max_warm == 3
        assert shadowfarm("drain").out.strip() == f"drained 1 profile(s): {PROFILE.key}"
        assert shadowfarm("drain", "--profile", "zzz").out.strip() == "drained 0 profile(s)"

    def test_scaling_an_unknown_profile_reports_the_farms_answer(self, shadowfarm, farm):
        """The farm's 404 becomes one error line with its detail."""
        result = shadowfarm("scale", "--profile", "zzz", "--max", "1")
        assert result.code == 2
        assert "answered 404: no live profile matches 'zzz'" in result.err

    def test_config_set_then_get(self, shadowfarm, farm):
        """config set parses JSON values (else strings) and prints what the farm kept."""
        result = shadowfarm("config", "set", "default_max_warm=6", "tick_s=0.25")
        assert result.out.splitlines() == ["default_max_warm = 6", "tick_s = 0.25"]
        assert "default_max_warm = 6" in shadowfarm("config", "get").out.splitlines()
        assert json.loads(shadowfarm("config", "get", "--json").out)["tick_s"] == 0.25

    def test_a_rejected_config_value_is_an_error_naming_it(self, shadowfarm, farm):
        """A value the farm refuses: exit 2 and the farm's reason."""
        result = shadowfarm("config", "set", "warm_nice=high")
        assert result.code == 2
        assert "answered 422" in result.err
        assert "warm_nice" in result.err

    def test_a_farm_with_another_token_is_refused(self, shadowfarm, farm, home):
        """A home token that is not the farm's: the endpoint cannot prove it is this home's
        farm, the CLI says so and sends it nothing (the profile stays undrained)."""
        farm.claim(PROFILE, 1, (), (), {})
        home.token_file.write_text("not-the-token\n")
        result = shadowfarm("drain")
        assert result.code == 2
        assert "did not prove it is the farm of this home" in result.err
        assert farm.pool.profiles[PROFILE.key].drained is False


class TestForecastStatus:
    def test_status_shows_the_forecast_target_and_hit_rate_so_far(self, shadowfarm, farm, clock):
        """With forecast on: per profile the next hours' median/p95 -> target, the target
        now, the keep-alive, and the hit rate and idle worker-seconds so far."""
        from farm_server.daemon import policy_book
        from tests.farm_server.forecast.forecast_data import MONDAY, seasonal_runs

        runs = seasonal_runs(5, night=0.0)
        for i, run in enumerate(runs):
            farm.store.record_claim(f"c{i}", PROFILE.key, run.workers, 0, {}, run.time)
        farm.pool.config = farm.pool.config.updated({"forecast": True, "default_max_warm": 8})
        farm.pool.book = policy_book(farm.store, lambda: farm.pool.config)
        clock.now = MONDAY + 5 * 7 * 86400 + 12 * 3600  # a Monday noon after the log
        farm.claim(PROFILE, 2, (), (), {})
        warm_all(farm)
        result = shadowfarm("status")
        assert result.code == 0, result.err
        lines = [line for line in result.out.splitlines() if "forecast (" in line]
        assert len(lines) == 1
        assert "next hours median/p95->target:" in lines[0]
        assert len(re.findall(r" [0-9.]+/[0-9.]+->[0-9]+", lines[0])) == 6  # six hours
        assert "target now " in lines[0]
        assert "keep-alive " in lines[0]
        assert "  so far: hit rate 0%, idle " in result.out
