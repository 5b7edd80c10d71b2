"""Waiting for a warm farm: which profiles count, the bounded wait, the timeout's message."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_shadowfarm.cli.farm_wait import describe_step, not_warm, wait_warm
from pytest_shadowfarm.errors import FarmError


def profile(key: str = "abc123", warm: int = 0, min_warm: int = 2, **extra: Any) -> dict:
    return {
        "key": key,
        "rootdir": "/src/proj",
        "health": "unknown",
        "min_warm": min_warm,
        "counts": {"warming": 0, "warm": warm, "claimed": 0},
        "warming": extra.pop("warming", []),
        **extra,
    }


class FakeTime:
    """A clock that moves only when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class TestDescribeStep:
    def test_a_counted_step_says_k_of_n(self):
        """Shadow tests and imports are counted; other steps are just named."""
        assert describe_step({"step": "shadow tests", "done": 2, "total": 5}) == (
            "shadow tests 2 of 5"
        )
        assert describe_step({"step": "collecting", "done": None, "total": None}) == "collecting"
        assert describe_step({}) == "starting"


class TestNotWarm:
    def test_a_profile_short_of_its_target_is_named_with_its_warming_steps(self):
        """The line says how many are warm of how many and what the warming ones do."""
        warming = [{"worker": "w-1", "step": "importing", "done": 1, "total": 4, "warming_s": 3.2}]
        (line,) = not_warm({"profiles": [profile(warm=1, warming=warming)]})
        assert line == (
            "profile abc123 (/src/proj): 1 of 2 warm, health unknown; "
            "warming: w-1 importing 1 of 4 (3.2s)"
        )

    def test_profiles_at_target_idle_or_unfit_are_not_waited_for(self):
        """min_warm 0 (idle, drained, retired) and unfit profiles never get warm: skip them."""
        status = {
            "profiles": [
                profile("a", warm=2),
                profile("b", min_warm=0),
                profile("c", unfit="a package is only partly purged"),
            ]
        }
        assert not_warm(status) == []
        assert not_warm({"profiles": []}) == []


class TestWaitWarm:
    def test_returns_the_first_warm_status(self):
        """It polls until the farm is warm and returns that status."""
        answers = iter([profile(warm=0), profile(warm=1), profile(warm=2)])
        t = FakeTime()
        status = wait_warm(lambda: {"profiles": [next(answers)]}, 10, t.clock, t.sleep)
        assert status["profiles"][0]["counts"]["warm"] == 2
        assert len(t.slept) == 2

    def test_gives_up_at_the_timeout_naming_what_is_not_warm(self):
        """The wait is bounded, and the error says how to wait longer."""
        t = FakeTime()
        with pytest.raises(FarmError, match=r"not warm after 1s \(wait longer with --timeout S"):
            wait_warm(lambda: {"profiles": [profile(warm=1)]}, 1, t.clock, t.sleep)
        assert t.now == pytest.approx(1.0)
