"""The HTTP API in-process: a real Farm, store and home, a pool that launches nothing.

Requests are signed as the plugin signs them (tests.apptools.ApiClient); the profile's
interpreter is this one, which the farm (running in this process) verifies and allows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from farm_server.farm import Farm
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import current_profile
from shadowfarm_wire.trust import SCHEME
from tests.apptools import ApiClient, Clock, make_farm, serve_farm, warm_all

PROFILE = current_profile("/src/proj", distributions=[("numpy", "1")])
CLAIM = {"profile": PROFILE.to_dict(), "count": 2}
#: a claim naming a program the farm did not verify as an interpreter
UNVERIFIED = {**CLAIM, "profile": {**PROFILE.to_dict(), "interpreter": "/bin/sh"}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def farm(tmp_path: Path, clock: Clock) -> Iterator[Farm]:
    farm = make_farm(FarmHome(tmp_path / "home"), clock)
    yield farm
    farm.store.close()


@pytest.fixture
def client(farm: Farm, api_server) -> Iterator[ApiClient]:
    with serve_farm(api_server, farm) as url:
        yield ApiClient(url, farm.token)


class TestAuth:
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/api/workers/claim", CLAIM),
            ("POST", "/api/workers/w-1/release", None),
            ("PUT", "/api/swarm/config", {"default_min_warm": 0}),
            ("POST", "/api/swarm/drain", {}),
            ("POST", "/api/swarm/telemetry", {"samples": []}),
        ],
    )
    def test_a_state_change_without_credentials_is_refused(self, client, farm, method, path, body):
        """Neither a signature nor the token: 401 naming the token file, nothing changes."""
        response = client.request(method, path, auth=False, json=body)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert str(farm.home.token_file) in response.json()["detail"]
        assert farm.pool.profiles == {}
        assert farm.store.claim_totals() == (0, 0, 0)

    def test_wrong_credentials_are_refused_like_none(self, client, farm):
        """A wrong token, another scheme, a forged or misplaced signature: 401, before the
        body is even parsed."""
        signed_elsewhere = client.signature("POST", "/api/swarm/drain", b"{")
        for header in (
            "Bearer nope",
            f"Basic {client.token}",
            f"{SCHEME} session=nope, seq=1, mac=00",
            signed_elsewhere,
        ):
            response = client.post(
                "/api/workers/claim", auth=False, headers={"Authorization": header}, data=b"{"
            )
            assert response.status_code == 401, header
        assert farm.pool.profiles == {}

    def test_a_replayed_signature_is_refused(self, client):
        """The same signed request twice: the second is 401 (its sequence number is used)."""
        header = {"Authorization": client.signature("GET", "/api/swarm/status", b"")}
        first = client.get("/api/swarm/status", auth=False, headers=header)
        second = client.get("/api/swarm/status", auth=False, headers=header)
        assert (first.status_code, second.status_code) == (200, 401)

    def test_only_health_is_open(self, client, farm):
        """Health answers anyone; status, config and metrics need credentials too."""
        health = client.get("/api/health", auth=False)
        assert health.json() == {"ok": True, "pid": farm.pid, "problems": []}
        for path in ("/api/swarm/status", "/api/swarm/config", "/metrics"):
            assert client.get(path, auth=False).status_code == 401, path
            assert client.get(path).status_code == 200, path

    def test_a_host_that_is_not_the_farm_is_refused(self, client, farm):
        """A Host naming another host or port (DNS rebinding): 421, even when signed."""
        port = client.url.rsplit(":", 1)[1]
        for host in (f"evil.example:{port}", "127.0.0.1:1"):
            response = client.post("/api/workers/claim", json=CLAIM, headers={"Host": host})
            assert response.status_code == 421, host
        assert farm.pool.profiles == {}


class TestClaimAndRelease:
    def test_a_first_claim_registers_the_profile_and_is_recorded(self, client, farm):
        """The first claim gets no worker yet, registers the profile and lands in the store."""
        data = client.post("/api/workers/claim", json=CLAIM).json()
        assert (data["profile_key"], data["registered"], data["workers"]) == (
            PROFILE.key,
            True,
            [],
        )
        assert data["claim_id"].startswith("c-")
        assert farm.store.claim_totals() == (1, 2, 0)

    def test_a_claim_after_warm_up_hands_out_warm_workers(self, client, farm):
        """Once workers are warm, a claim returns their socket, token and modules."""
        client.post("/api/workers/claim", json=CLAIM)
        ids = warm_all(farm, modules=("numpy", "json"))
        data = client.post("/api/workers/claim", json={**CLAIM, "count": 1}).json()
        assert data["registered"] is False
        [worker] = data["workers"]
        assert worker["id"] in ids
        assert worker["modules"] == ["json", "numpy"]
        assert worker["socket"].endswith(f"{worker['id']}.sock")
        assert farm.pool.workers[worker["id"]].token == worker["token"]
        assert farm.store.claim_totals() == (2, 3, 1)

    def test_the_claims_plugin_options_are_kept_for_the_warm_ups(self, client, farm):
        """The run's -p options reach the profile (its next warm-ups load the same)."""
        client.post("/api/workers/claim", json={**CLAIM, "plugins": ["no:randomly", "xdist"]})
        assert farm.pool.profiles[PROFILE.key].plugins == ["no:randomly", "xdist"]

    def test_a_release_marks_the_worker_released(self, client, farm, clock):
        """Releasing a claimed worker answers its state and stamps the release time."""
        client.post("/api/workers/claim", json=CLAIM)
        warm_all(farm)
        [worker] = client.post("/api/workers/claim", json={**CLAIM, "count": 1}).json()["workers"]
        clock.now += 5
        response = client.post(f"/api/workers/{worker['id']}/release")
        assert response.json() == {"id": worker["id"], "state": "claimed"}
        assert farm.pool.workers[worker["id"]].released == clock.now

    def test_an_unverified_interpreter_is_refused_and_nothing_registered(self, client, farm):
        """A claim naming a program off the allow-list: 403 saying so, nothing registered."""
        response = client.post("/api/workers/claim", json=UNVERIFIED)
        assert response.status_code == 403
        assert "not on the farm's allow-list" in response.json()["detail"]
        assert farm.pool.profiles == {}
        assert farm.store.claim_totals() == (0, 0, 0)

    def test_releasing_an_unknown_worker_is_404(self, client):
        """A worker id the farm never had is a 404 that names it."""
        response = client.post("/api/workers/w-nothere/release")
        assert response.status_code == 404
        assert "'w-nothere'" in response.json()["detail"]


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "where"),
        [
            ({**CLAIM, "count": 0}, "body.count"),
            ({**CLAIM, "extra": 1}, "body.extra"),
            ({"count": 1}, "body.profile"),
            ({**CLAIM, "profile": {**PROFILE.to_dict(), "interpreter": ""}}, "interpreter"),
            ({**CLAIM, "plugins": ["--basetemp=/"]}, "body.plugins.0"),
        ],
    )
    def test_a_malformed_claim_is_422_naming_the_field(self, client, farm, body, where):
        """The 422 carries pydantic's errors and one readable message naming the field."""
        response = client.post("/api/workers/claim", json=body)
        assert response.status_code == 422
        assert where in response.json()["message"]
        assert farm.pool.profiles == {}

    def test_a_config_value_out_of_range_is_422_with_the_value(self, client, farm):
        """A bad setting names the field and the value, and the config stays as it was."""
        before = farm.pool.config
        response = client.put("/api/swarm/config", json={"default_min_warm": -1})
        assert response.status_code == 422
        assert "default_min_warm" in response.json()["message"]
        assert "(got -1)" in response.json()["message"]
        assert farm.pool.config == before

    def test_an_unknown_setting_is_422(self, client):
        """A setting the farm does not have is refused, not ignored."""
        response = client.put("/api/swarm/config", json={"no_such_setting": 1})
        assert response.status_code == 422
        assert "no_such_setting" in response.json()["message"]

    def test_a_setting_below_its_floor_is_422_with_the_reason(self, client):
        """A tick shorter than the supervisor allows is refused with the field named."""
        response = client.put("/api/swarm/config", json={"tick_s": 0.001})
        assert response.status_code == 422
        assert "tick_s" in response.json()["message"]


class TestStatusAndConfig:
    def test_the_status_reports_profiles_workers_and_totals(self, client, farm, clock):
        """Status JSON v1: the farm's pid/url/home, a profile with counts, its workers."""
        client.post("/api/workers/claim", json=CLAIM)
        warm_all(farm)
        clock.now += 2.5
        data = client.get("/api/swarm/status").json()
        assert data["version"] == 1
        assert (data["pid"], data["url"], data["home"]) == (
            farm.pid,
            client.url,
            str(farm.home.root),
        )
        assert data["uptime_s"] == 2.5
        [profile] = data["profiles"]
        assert profile["key"] == PROFILE.key
        assert profile["counts"] == {"warming": 0, "warm": 1, "claimed": 0}
        assert profile["health"] == "healthy"
        [worker] = data["workers"]
        assert (worker["state"], worker["age_s"], worker["ready"]["ok"]) == ("warm", 2.5, True)
        assert data["totals"]["claims"] == 1
        assert data["totals"]["hit_rate"] == 0.0

    def test_a_config_change_is_applied_and_stored(self, client, farm):
        """PUT changes the pool's config and the store's copy; GET shows it."""
        response = client.put("/api/swarm/config", json={"default_max_warm": 7})
        assert response.status_code == 200
        assert response.json()["default_max_warm"] == 7
        assert farm.pool.config.default_max_warm == 7
        assert farm.store.load_config()["default_max_warm"] == 7
        assert client.get("/api/swarm/config").json()["default_max_warm"] == 7

    def test_scaling_a_profile_sets_its_range(self, client, farm):
        """Per-profile scaling by key prefix answers which profiles it changed."""
        client.post("/api/workers/claim", json=CLAIM)
        body = {"profiles": {PROFILE.key[:6]: {"min_warm": 0, "max_warm": 5}}}
        response = client.put("/api/swarm/config", json=body)
        assert response.json()["scaled"] == {PROFILE.key[:6]: [PROFILE.key]}
        entry = farm.pool.profiles[PROFILE.key]
        assert (entry.min_warm, entry.max_warm) == (0, 5)

    def test_scaling_an_unknown_profile_is_404(self, client):
        """A prefix that matches no live profile is a 404 naming it."""
        response = client.put("/api/swarm/config", json={"profiles": {"zzz": {"min_warm": 1}}})
        assert response.status_code == 404
        assert "'zzz'" in response.json()["detail"]

    def test_draining_stops_keeping_the_profile_warm(self, client, farm):
        """Drain answers the drained keys; the profile then wants no warm workers."""
        client.post("/api/workers/claim", json=CLAIM)
        assert client.post("/api/swarm/drain", json={}).json() == {"drained": [PROFILE.key]}
        entry = farm.pool.profiles[PROFILE.key]
        assert entry.drained is True
        assert farm.pool.target(entry, farm.clock()) == (0, 0)


class TestTelemetryAndMetrics:
    def test_telemetry_is_stored(self, client, farm):
        """Posted samples are stored in the farm's database."""
        body = {"claim_id": "c-1", "worker_id": "gw0", "samples": [{"cpu": 1}, {"cpu": 2}]}
        response = client.post("/api/swarm/telemetry", json=body)
        assert response.json()["stored"] == 2
        assert farm.store.telemetry_count() == 1

    def test_metrics_count_workers_and_claims(self, client, farm):
        """/metrics (Prometheus text, scraped with the bearer token) reads the pool: workers
        by state, claims served."""
        client.post("/api/workers/claim", json=CLAIM)
        warm_all(farm)
        text = client.get("/metrics", auth="bearer").text
        assert f'shadowfarm_workers{{profile="{PROFILE.key}",state="warm"}} 1.0' in text
        assert "shadowfarm_claims_total 1.0" in text
        assert "shadowfarm_workers_requested_total 2.0" in text
        assert f'shadowfarm_warmup_seconds_median{{profile="{PROFILE.key}"}} 0.0' in text

    def test_metrics_export_the_forecast_per_profile(self, client, farm, clock):
        """With forecast on, /metrics has per profile the target, the forecast demand of
        the hour, the hit rate and the idle worker-seconds so far."""
        from farm_server.daemon import policy_book
        from tests.farm_server.forecast.forecast_data import MONDAY, seasonal_runs

        for i, run in enumerate(seasonal_runs(5, night=0.0)):
            farm.store.record_claim(f"c{i}", PROFILE.key, run.workers, 0, {}, run.time)
        farm.pool.config = farm.pool.config.updated({"forecast": True, "default_max_warm": 8})
        farm.pool.book = policy_book(farm.store, lambda: farm.pool.config)
        clock.now = MONDAY + 5 * 7 * 86400 + 12 * 3600
        client.post("/api/workers/claim", json=CLAIM)
        text = client.get("/metrics", auth="bearer").text
        for name in (
            "shadowfarm_pool_target",
            "shadowfarm_forecast_demand",
            "shadowfarm_pool_hit_rate",
            "shadowfarm_pool_idle_worker_seconds",
        ):
            assert f'{name}{{profile="{PROFILE.key}"}} ' in text, name
