"""The farm's learning rule: how a profile's worker endings become its max age (no pytest
machinery, no farm: endings in, a max age out)."""

from __future__ import annotations

from farm_server.learning import (
    CONSIDERED,
    MEMORY_S,
    MIN_SECONDS,
    MIN_TESTS,
    SAFETY,
    StoredEnding,
    learn,
)
from shadowfarm_wire.endings import WorkerEnding

NOW = 10_000_000.0


def ending(
    ended: str, cause: str = "", tests: int = 0, seconds: float = 0.0, *, ago: float = 60.0
) -> StoredEnding:
    return StoredEnding(NOW - ago, "w-1", WorkerEnding(ended, cause, tests, seconds, "why"))


class TestLearn:
    def test_no_history_no_max_age(self):
        """A profile nobody reported on has no max age."""
        learned = learn([], NOW)
        assert (learned.max_age.tests, learned.max_age.seconds, learned.sick) == (None, None, 0)
        assert not learned.max_age.limited

    def test_healthy_workers_never_set_a_max_age(self):
        """Finished and drained workers, however many tests they ran, set no limit."""
        learned = learn([ending("finished", tests=400), ending("drained", tests=3)] * 10, NOW)
        assert not learned.max_age.limited
        assert (learned.endings, learned.sick) == (20, 0)

    def test_a_worker_replaced_for_memory_sets_the_max_age_at_its_age(self):
        """Replaced for memory after 40 tests (the watch already left its margin): later
        workers are recycled at 40 tests / 80 s."""
        learned = learn([ending("replaced", "memory", tests=40, seconds=80.0)], NOW)
        assert (learned.max_age.tests, learned.max_age.seconds) == (40, 80.0)
        assert learned.sick == 1
        assert "1 sick workers (memory)" in learned.max_age.basis
        assert learned.last_reason == "why"

    def test_a_crash_feeds_the_history_with_a_safety_margin(self):
        """A crashed worker (no margin left) counts as sick, as a crash, and sets the age
        at SAFETY x its age."""
        learned = learn([ending("crashed", "crash", tests=20)], NOW)
        assert (learned.sick, learned.crashes) == (1, 1)
        assert learned.max_age.tests == int(SAFETY * 20)

    def test_errors_and_pressure_are_sickness_too(self):
        """Setup errors and memory pressure replacements lower the age as memory ones do."""
        for cause in ("errors", "pressure"):
            assert learn([ending("replaced", cause, tests=100)], NOW).max_age.tests == 100

    def test_recycling_at_the_max_age_does_not_ratchet_it_down(self):
        """Workers replaced at the max age ("age") are planned: the age stays put."""
        sick = [ending("replaced", "memory", tests=40, ago=3600)]
        recycled = [ending("replaced", "age", tests=30, ago=60)] * 20
        learned = learn(sick + recycled, NOW)
        assert learned.max_age.tests == 40
        assert (learned.sick, learned.recycled) == (1, 20)

    def test_the_median_of_the_newest_sick_workers_counts(self):
        """One early crash does not set the age: the median of the newest sick ones does."""
        endings = [
            ending("replaced", "memory", tests=t, ago=1000 - i)
            for i, t in enumerate([40, 44, 8, 42, 38])
        ]
        assert learn(endings, NOW).max_age.tests == 40

    def test_only_the_newest_few_sick_workers_count(self):
        """A leak that got worse: the old, longer-lived workers fall out of the window."""
        old = [ending("replaced", "memory", tests=200, ago=5000 + i) for i in range(10)]
        new = [ending("replaced", "memory", tests=40, ago=100 + i) for i in range(CONSIDERED)]
        assert learn(old + new, NOW).max_age.tests == 40

    def test_a_crash_at_the_start_says_nothing_about_age(self):
        """Sick after fewer than MIN_TESTS tests (and seconds): counted, but no limit."""
        learned = learn([ending("crashed", "crash", tests=MIN_TESTS - 1, seconds=1.0)], NOW)
        assert (learned.sick, learned.max_age.tests, learned.max_age.seconds) == (1, None, None)

    def test_the_age_never_goes_below_the_floor(self):
        """Crashed at 6 tests and 12 s: recycle at MIN_TESTS / MIN_SECONDS, not sooner."""
        learned = learn([ending("crashed", "crash", tests=6, seconds=12.0)], NOW)
        assert (learned.max_age.tests, learned.max_age.seconds) == (MIN_TESTS, MIN_SECONDS)

    def test_old_sickness_is_forgotten(self):
        """A profile whose leak was fixed loses its max age once its sick workers are old."""
        learned = learn([ending("replaced", "memory", tests=40, ago=MEMORY_S + 1)], NOW)
        assert not learned.max_age.limited
        assert (learned.endings, learned.sick) == (1, 0)

    def test_the_report_shape(self):
        """to_dict is what farm status shows per profile."""
        data = learn([ending("crashed", "crash", tests=40, seconds=30.0)], NOW).to_dict()
        assert data == {
            "max_age_tests": 30,
            "max_age_s": 22.5,
            "basis": "1 sick workers (crash) in 7 days, safe for 30 tests / 22s",
            "endings": 1,
            "sick": 1,
            "crashes": 1,
            "recycled": 0,
            "last_reason": "why",
        }
