"""The HTTP API of a real daemon: auth on every state change, validation, metrics, config."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
import requests

from farm_server import daemon
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import current_profile
from tests.farmtools import RunningFarm, gone, wait_until

pytestmark = pytest.mark.slow

PROFILE = current_profile("/nonexistent/project", distributions=[("numpy", "1.0")]).to_dict()
CLAIM = {"profile": PROFILE, "count": 1}

MUTATING = [
    ("POST", "/api/workers/claim", CLAIM),
    ("POST", "/api/workers/w-00000000/release", None),
    ("PUT", "/api/swarm/config", {"default_min_warm": 0}),
    ("POST", "/api/swarm/drain", {}),
    ("POST", "/api/swarm/telemetry", {"samples": []}),
]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFarm]:
    """One daemon for the module; min_warm 0, so claims register profiles but warm nothing."""
    home = FarmHome(tmp_path_factory.mktemp("api") / "home")
    info, _ = daemon.start(home)
    assert info.url is not None
    running = RunningFarm(home, info.url, info.pid, home.read_token() or "")
    response = running.api("PUT", "/api/swarm/config", json={"default_min_warm": 0})
    assert response.status_code == 200
    yield running
    daemon.stop(home)
    assert wait_until(lambda: gone(info.pid), 30)


class TestAuth:
    @pytest.mark.parametrize(("method", "path", "body"), MUTATING)
    @pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic x", "Bearer "])
    def test_a_state_change_without_the_token_is_401(self, farm, method, path, body, header):
        """No token, a wrong one or another scheme: 401 with WWW-Authenticate, nothing done."""
        headers = {"Authorization": header} if header else {}
        response = farm.api(method, path, auth=False, json=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in response.json()["detail"]

    def test_auth_comes_before_body_validation(self, farm):
        """A malformed body without a token is 401, not 422: nothing is parsed for strangers."""
        response = farm.api("POST", "/api/workers/claim", auth=False, data=b"{nope")
        assert response.status_code == 401

    @pytest.mark.parametrize(
        "path", ["/api/swarm/status", "/api/swarm/config", "/metrics", "/docs", "/openapi.json"]
    )
    def test_reads_need_the_token_too(self, farm, path):
        """Status, config, metrics and the API documents answer 401 without the token."""
        assert farm.api("GET", path, auth=False).status_code == 401
        assert farm.api("GET", path).status_code == 200

    def test_health_needs_no_token(self, farm):
        """/api/health is the one route open to anyone (liveness probes)."""
        assert farm.api("GET", "/api/health", auth=False).status_code == 200

    def test_the_status_never_shows_tokens(self, farm):
        """Worker tokens go only to the claim that got them."""
        assert "token" not in farm.api("GET", "/api/swarm/status").text


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"count": 1}, "body.profile"),
            ({**CLAIM, "count": 0}, "body.count"),
            ({**CLAIM, "count": 100000}, "body.count"),
            ({**CLAIM, "count": "two"}, "body.count"),
            ({**CLAIM, "surprise": 1}, "body.surprise"),
            ({**CLAIM, "profile": {**PROFILE, "rootdir": ""}}, "body.profile.rootdir"),
            ({**CLAIM, "modules": "numpy"}, "body.modules"),
            ([1, 2], "body"),
        ],
    )
    def test_a_malformed_claim_is_422_naming_the_field(self, farm, body, field):
        """The message says which field is wrong."""
        response = farm.api("POST", "/api/workers/claim", json=body)
        assert response.status_code == 422
        assert field in response.json()["message"]

    def test_a_body_that_is_not_json_is_422(self, farm):
        """Broken JSON gets a 4xx with a message, not a 500."""
        response = farm.api(
            "POST",
            "/api/workers/claim",
            data=b"{nope",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert "JSON" in response.json()["message"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"warm_nice": 40}, "warm_nice"),
            ({"max_processes": 0}, "max_processes"),
            ({"idle_ttl_s": "soon"}, "idle_ttl_s"),
            ({"no_such_setting": 1}, "no_such_setting"),
            ({"profiles": {"zzzz": {"min_warm": 1}}}, "no live profile matches 'zzzz'"),
        ],
    )
    def test_a_bad_config_change_is_refused_and_changes_nothing(self, farm, body, message):
        """4xx naming the setting; the config stays as it was."""
        before = farm.api("GET", "/api/swarm/config").json()
        response = farm.api("PUT", "/api/swarm/config", json=body)
        assert 400 <= response.status_code < 500
        assert message in response.text
        assert farm.api("GET", "/api/swarm/config").json() == before

    def test_releasing_an_unknown_worker_is_404(self, farm):
        """A release names a worker the farm never made: 404 with its id."""
        response = farm.api("POST", "/api/workers/w-00000000/release")
        assert response.status_code == 404
        assert "w-00000000" in response.json()["detail"]


class TestRoutes:
    def test_a_claim_registers_the_profile_shown_by_status(self, farm):
        """The first claim of a profile returns no worker and the profile appears in status."""
        data = farm.api("POST", "/api/workers/claim", json=CLAIM).json()
        assert (data["registered"], data["workers"]) == (True, [])
        keys = [p["key"] for p in farm.status()["profiles"]]
        assert data["profile_key"] in keys

    def test_scaling_a_profile_by_key_prefix(self, farm):
        """PUT config with profiles.<prefix> sets that profile's min/max."""
        key = farm.api("POST", "/api/workers/claim", json=CLAIM).json()["profile_key"]
        body = {"profiles": {key[:8]: {"min_warm": 0, "max_warm": 0}}}
        response = farm.api("PUT", "/api/swarm/config", json=body)
        assert response.json()["scaled"] == {key[:8]: [key]}
        (profile,) = [p for p in farm.status()["profiles"] if p["key"] == key]
        assert (profile["min_warm"], profile["max_warm"]) == (0, 0)

    def test_telemetry_is_stored(self, farm):
        """Samples are accepted and counted (used by later forecasting)."""
        body = {"claim_id": "c-1", "samples": [{"cpu": 0.5}, {"cpu": 0.7}]}
        response = farm.api("POST", "/api/swarm/telemetry", json=body)
        assert response.status_code == 200
        assert response.json()["stored"] == 2

    def test_metrics_are_prometheus_text(self, farm):
        """/metrics speaks the Prometheus exposition format with our families."""
        response = farm.api("GET", "/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE shadowfarm_claims_total counter" in response.text
        assert "# TYPE shadowfarm_workers gauge" in response.text

    def test_the_openapi_document_lists_the_routes(self, farm):
        """FastAPI's OpenAPI document describes every route."""
        paths = farm.api("GET", "/openapi.json").json()["paths"]
        assert {"/api/workers/claim", "/api/swarm/config", "/api/swarm/status"} <= set(paths)


class TestPersistence:
    def test_config_and_profiles_survive_a_restart(self, tmp_path):
        """A restarted farm keeps its config and the profiles it knew."""
        home = FarmHome(tmp_path / "home")
        try:
            info, _ = daemon.start(home)
            farm = RunningFarm(home, info.url or "", info.pid, home.read_token() or "")
            farm.api("PUT", "/api/swarm/config", json={"default_min_warm": 0, "idle_ttl_s": 77})
            key = farm.api("POST", "/api/workers/claim", json=CLAIM).json()["profile_key"]
            daemon.stop(home)
            info, started = daemon.start(home)
            assert started
            again = RunningFarm(home, info.url or "", info.pid, home.read_token() or "")
            assert again.api("GET", "/api/swarm/config").json()["idle_ttl_s"] == 77
            assert key in [p["key"] for p in again.status()["profiles"]]
        finally:
            daemon.stop(home)

    def test_the_token_file_is_private(self, farm):
        """The token is 0600 and the home 0700."""
        assert os.stat(farm.home.token_file).st_mode & 0o777 == 0o600
        assert os.stat(farm.home.root).st_mode & 0o777 == 0o700

    def test_a_garbage_request_line_does_not_kill_the_farm(self, farm):
        """Raw bytes at the port: the daemon answers the next request normally."""
        import socket
        from urllib.parse import urlparse

        url = urlparse(farm.url)
        with (
            contextlib.suppress(OSError),
            socket.create_connection((url.hostname, url.port), 5) as s,
        ):
            s.sendall(b"\x00\xffGARBAGE\r\n\r\n")
            s.recv(100)
        assert requests.get(farm.url + "/api/health", timeout=5).json()["ok"] is True
