"""A real daemon learns each profile's max age from how its workers ended, and keeps it."""

from __future__ import annotations

import pytest

from farm_server import daemon
from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow


def warm(n: int, key: str):
    return lambda status: counts(status, key).get("warm", 0) >= n


def learned_of(status: dict, key: str) -> dict:
    [profile] = [p for p in status["profiles"] if p["key"] == key]
    return profile["learned"]


class TestLearning:
    def test_endings_lower_the_max_age_shown_and_kept_across_a_restart(
        self, start_farm, farm_project
    ):
        """A memory replacement and a crash, reported at release, give the profile a max
        age: the next claim carries it, status and /metrics show it, a restart keeps it."""
        farm = start_farm(default_min_warm=2)
        profile = current_profile(str(farm_project), ["idna"])
        first = farm.claim(profile, 1)
        assert first["max_age"] == {"tests": None, "seconds": None, "basis": ""}
        farm.wait_status(warm(2, profile.key), "two warm workers")
        [a, b] = farm.claim(profile, 2)["workers"]
        sick = {"ended": "replaced", "cause": "memory", "tests": 40, "seconds": 20.0}
        response = farm.api("POST", f"/api/workers/{a['id']}/release", json=sick)
        assert response.status_code == 200, response.text
        again = farm.api("POST", f"/api/workers/{a['id']}/release", json=sick)
        assert again.status_code == 200  # a repeated release is not a second ending
        crash = {"ended": "crashed", "cause": "crash", "tests": 48, "reason": "Killed"}
        assert farm.api("POST", f"/api/workers/{b['id']}/release", json=crash).status_code == 200

        learned = learned_of(farm.status(), profile.key)
        # safe ages: 40 (replaced ahead of its failure), 0.75 x 48 = 36 (crashed): median 38
        assert (learned["sick"], learned["crashes"], learned["max_age_tests"]) == (2, 1, 38)
        assert learned["last_reason"] == "Killed"
        assert farm.claim(profile, 1)["max_age"]["tests"] == 38
        metrics = farm.api("GET", "/metrics").text
        assert f'shadowfarm_profile_max_age_tests{{profile="{profile.key}"}} 38.0' in metrics

        # the run's own (cold) workers of the profile count too
        cold = {"endings": [{"ended": "replaced", "cause": "memory", "tests": 30}]}
        response = farm.api("POST", f"/api/profiles/{profile.key}/endings", json=cold)
        assert response.status_code == 200, response.text
        assert farm.claim(profile, 1)["max_age"]["tests"] == 36  # median of 40, 36, 30
        unknown = farm.api("POST", "/api/profiles/0000000000000000/endings", json=cold)
        assert unknown.status_code == 404

        daemon.stop(farm.home)
        restarted = start_farm()
        assert restarted.home.root == farm.home.root
        assert restarted.claim(profile, 1)["max_age"]["tests"] == 36
        assert learned_of(restarted.status(), profile.key)["sick"] == 3

    def test_a_bad_ending_is_refused_and_a_release_without_one_still_works(
        self, start_farm, farm_project
    ):
        """An unknown ending is a 422 naming the field; a bare release (older plugins) is fine."""
        farm = start_farm(default_min_warm=1)
        profile = current_profile(str(farm_project), ["idna"])
        farm.claim(profile, 1)
        farm.wait_status(warm(1, profile.key), "a warm worker")
        [worker] = farm.claim(profile, 1)["workers"]
        path = f"/api/workers/{worker['id']}/release"
        bad = farm.api("POST", path, json={"ended": "exploded"})
        assert bad.status_code == 422
        assert "ended" in bad.json()["message"]
        assert farm.api("POST", path).status_code == 200
        assert learned_of(farm.status(), profile.key)["endings"] == 0
