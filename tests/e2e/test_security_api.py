"""The farm's HTTP door on a real daemon: credentials, Host, sizes, numbers, one daemon per home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from farm_server import daemon
from pytest_shadowfarm.cli.main import main as cli_main
from pytest_shadowfarm.farm import transport
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint
from shadowfarm_wire.home import FarmHome, HomeError
from shadowfarm_wire.trust import SCHEME, request_mac
from tests.farmtools import REPO, RunningFarm, gone, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFarm]:
    home = FarmHome(tmp_path_factory.mktemp("door") / "home")
    info, _ = daemon.start(home)
    assert info.url is not None
    running = RunningFarm(home, info.url, info.pid, home.read_token() or "")
    assert running.api("PUT", "/api/swarm/config", json={"default_min_warm": 0}).ok
    yield running
    daemon.stop(home)
    assert wait_until(lambda: gone(info.pid), 30)


class TestSignedRequests:
    def test_the_client_never_sends_the_token(self, farm, monkeypatch):
        """The plugin's client signs: no request it makes carries the token."""
        sent: list[str] = []
        original = transport.request

        def spy(method, url, **kwargs):
            sent.append(json.dumps({"url": url, **{k: str(v) for k, v in kwargs.items()}}))
            return original(method, url, **kwargs)

        monkeypatch.setattr(transport, "request", spy)
        client = FarmClient(FarmEndpoint(farm.url, farm.token))
        assert client.status()["pid"] == farm.pid
        assert len(sent) == 2  # the challenge, then the signed request
        assert not any(farm.token in request for request in sent)

    def test_a_replayed_request_is_refused(self, farm):
        """The same signed request twice: the second is 401 (sequence numbers)."""
        client = FarmClient(FarmEndpoint(farm.url, farm.token))
        client.prove()
        assert client._session is not None
        session, key = client._session
        mac = request_mac(key, 1, "GET", "/api/swarm/status", b"")
        auth = {"Authorization": f"{SCHEME} session={session}, seq=1, mac={mac}"}
        first = requests.get(farm.url + "/api/swarm/status", headers=auth, timeout=10)
        second = requests.get(farm.url + "/api/swarm/status", headers=auth, timeout=10)
        assert (first.status_code, second.status_code) == (200, 401)

    def test_a_signature_for_another_path_is_refused(self, farm):
        """A signature binds method and path."""
        client = FarmClient(FarmEndpoint(farm.url, farm.token))
        client.prove()
        assert client._session is not None
        session, key = client._session
        mac = request_mac(key, 1, "GET", "/api/swarm/status", b"")
        auth = {"Authorization": f"{SCHEME} session={session}, seq=1, mac={mac}"}
        response = requests.get(farm.url + "/api/swarm/config", headers=auth, timeout=10)
        assert response.status_code == 401


class TestDoor:
    def test_a_foreign_host_header_is_refused(self, farm):
        """DNS rebinding: a page's own host name in Host is 421, even with the token."""
        port = farm.url.rsplit(":", 1)[1]
        for host in (f"evil.example:{port}", "127.0.0.1:1", f"localhost.evil.example:{port}"):
            response = farm.api("GET", "/api/swarm/status", headers={"Host": host})
            assert response.status_code == 421, host
        assert (
            farm.api("GET", "/api/health", headers={"Host": f"evil.example:{port}"}).status_code
            == 421
        )

    def test_an_oversized_body_is_413_unread(self, farm):
        """A body over the limit is refused by its Content-Length."""
        response = farm.api(
            "POST", "/api/swarm/telemetry", data=b"x" * (5 << 20),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 413

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_numbers_are_refused(self, farm, value):
        """NaN or infinities in config or telemetry: 422, nothing stored."""
        headers = {"Content-Type": "application/json"}
        config = farm.api(
            "PUT", "/api/swarm/config", data=f'{{"idle_ttl_s": {value}}}', headers=headers
        )
        assert config.status_code == 422, config.text
        body = f'{{"samples": [{{"kind": "run", "cpu": {value}}}]}}'
        telemetry = farm.api("POST", "/api/swarm/telemetry", data=body, headers=headers)
        assert telemetry.status_code == 422, telemetry.text
        assert farm.api("GET", "/api/swarm/config").json()["idle_ttl_s"] == 3600.0

    def test_telemetry_per_post_is_bounded(self, farm):
        """At most 2000 samples in one post."""
        samples = [{"kind": "run", "t": i} for i in range(2001)]
        response = farm.api("POST", "/api/swarm/telemetry", json={"samples": samples})
        assert response.status_code == 422


class TestHome:
    def test_one_daemon_per_home(self, farm):
        """A second daemon on a served home exits with a message, even without daemon.json."""
        saved = farm.home.daemon_file.read_text()
        farm.home.daemon_file.unlink()  # as if both were starting at the same moment
        try:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            second = subprocess.run(
                [sys.executable, "-m", "farm_server.daemon", "--home", str(farm.home.root)],
                capture_output=True, text=True, timeout=60, env=env,
            )  # fmt: skip
        finally:
            farm.home.daemon_file.write_text(saved)
        assert second.returncode != 0
        assert "another farm daemon serves" in second.stderr
        assert farm.api("GET", "/api/health").ok

    def test_an_existing_home_is_never_chmodded(self, tmp_path, capsys):
        """--home DIR that others can write: refused with the fix, its mode left alone."""
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        with pytest.raises(HomeError, match="others can write to it"):
            FarmHome(shared).create()
        assert cli_main(["farm", "start", "--home", str(shared)]) != 0
        assert "chmod go-w" in capsys.readouterr().err
        assert shared.stat().st_mode & 0o777 == 0o777
        assert not (shared / "token").exists()

    def test_a_new_home_is_created_private(self, tmp_path):
        """A home the farm creates is 0700, whatever the umask."""
        old = os.umask(0)
        try:
            home = FarmHome(tmp_path / "a" / "home").create()
        finally:
            os.umask(old)
        assert home.root.stat().st_mode & 0o777 == 0o700
        assert home.sockets.stat().st_mode & 0o777 == 0o700
