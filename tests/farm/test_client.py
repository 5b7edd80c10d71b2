"""FarmClient's error mapping against a tiny local HTTP server, and discover().

The server answers the challenge with the farm's own session code (farm_server.auth), so
the client's proof and signatures are the real ones; a server with another token plays an
endpoint that is not the farm."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from farm_server.auth import Sessions
from pytest_shadowfarm.errors import FarmError, TrustError
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint, discover
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import current_profile
from shadowfarm_wire.trust import CHALLENGE_PATH, SCHEME
from tests.apptools import pretend_running

PROFILE = current_profile("/src/proj", distributions=[("numpy", "1")], executable="/py")
TOKEN = "s3cret"


class Canned(ThreadingHTTPServer):
    """Answers the challenge as a farm holding ``token`` does, and each other path with a
    canned (status, body); records what it was sent and whether the signature held."""

    daemon_threads = True

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.sessions = Sessions(token)
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.delay_s = 0.0
        self.challenges = 0
        self.seen: list[tuple[str, str, str | None, Any]] = []
        self.signed: list[bool] = []
        self.raw: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, path: str, status: int, body: Any) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[path] = (status, raw)


class Handler(BaseHTTPRequestHandler):
    server: Canned

    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length) if length else b""
        body = json.loads(data) if data else None
        time.sleep(self.server.delay_s)
        if self.path == CHALLENGE_PATH:
            self.server.challenges += 1
            answer = self.server.sessions.challenge(body["client_nonce"])
            status, raw = 200, json.dumps(answer).encode()
        else:
            auth = self.headers["authorization"]
            self.server.seen.append((self.command, self.path, auth, body))
            self.server.raw.append(bytes(self.headers) + data)
            self.server.signed.append(
                self.server.sessions.verify(auth or "", self.command, self.path, data)
            )
            status, raw = self.server.answers.get(self.path, (404, b'{"detail": "Not Found"}'))
        self.send_response(status)
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[Canned]:
    server = Canned()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def client(server: Canned) -> FarmClient:
    return FarmClient(FarmEndpoint(server.url, TOKEN), timeout=2.0)


def worker(**fields: Any) -> dict[str, Any]:
    return {"id": "w-1", "socket": "/s/w-1.sock", "token": "t", **fields}


class TestErrors:
    def test_a_non_json_answer_is_a_farm_error(self, server, client):
        """An HTML error page: the status and 'not JSON' in the message."""
        server.answer("/api/swarm/status", 502, b"<html>bad gateway</html>")
        with pytest.raises(FarmError, match="answered 502 with something that is not JSON"):
            client.status()

    def test_json_that_is_not_an_object_is_a_farm_error(self, server, client):
        """A JSON list where an object belongs is refused."""
        server.answer("/api/swarm/config", 200, [1, 2])
        with pytest.raises(FarmError, match="JSON that is not an object"):
            client.get_config()

    def test_a_refused_signature_says_so(self, server, client):
        """401: the client proves the farm again once (it may have restarted), then says
        the farm refused our signed request, with its detail."""
        server.answer("/api/swarm/drain", 401, {"detail": "missing or wrong bearer token"})
        with pytest.raises(
            FarmError, match=r"refused our signed request.*\(missing or wrong bearer"
        ):
            client.drain()
        assert (server.challenges, len(server.seen), server.signed) == (2, 2, [True, True])

    def test_an_http_error_quotes_the_farms_message(self, server, client):
        """A 422 quotes 'message' when there is one, else 'detail'."""
        server.answer("/api/swarm/config", 422, {"detail": [], "message": "tick_s: too small"})
        with pytest.raises(FarmError, match="answered 422: tick_s: too small"):
            client.put_config({"tick_s": 0})
        server.answer("/api/workers/w-9/release", 404, {"detail": "no worker 'w-9'"})
        with pytest.raises(FarmError, match="answered 404: no worker 'w-9'"):
            client.release("w-9")

    def test_a_slow_farm_is_a_timeout_error(self, server):
        """No answer within the timeout: the message says how long it waited."""
        server.answer("/api/swarm/status", 200, {})
        server.delay_s = 0.5
        client = FarmClient(FarmEndpoint(server.url, TOKEN), timeout=0.1)
        with pytest.raises(FarmError, match=r"did not answer within 0\.1s"):
            client.status()


class TestClaim:
    def test_a_claim_is_signed_and_sends_the_body_and_reads_the_slots(self, server, client):
        """After the farm's proof, the claim body goes out signed (never the token); the
        slots come back, at most count."""
        server.answer(
            "/api/workers/claim",
            200,
            {
                "claim_id": "c-1",
                "profile_key": PROFILE.key,
                "registered": False,
                "warming": 2,
                "workers": [worker(modules=["json", 3]), worker(id="w-2"), worker(id="w-3")],
            },
        )
        claim = client.claim(PROFILE, 2, modules=["json"], client={"pid": 1})
        [(method, path, auth, body)] = server.seen
        assert (method, path, server.challenges, server.signed) == (
            "POST",
            "/api/workers/claim",
            1,
            [True],
        )
        assert auth is not None
        assert auth.startswith(f"{SCHEME} ")
        assert TOKEN.encode() not in server.raw[0]
        assert (body["count"], body["modules"], body["client"]) == (2, ["json"], {"pid": 1})
        assert (claim.claim_id, claim.warming, claim.registered) == ("c-1", 2, False)
        assert [s.id for s in claim.workers] == ["w-1", "w-2"]
        assert claim.workers[0].modules == ("json",)
        assert claim.workers[0].profile_key == PROFILE.key

    @pytest.mark.parametrize(
        ("answer", "why"),
        [
            ({"claim_id": "c-1", "workers": []}, "profile_key"),
            ({"claim_id": "c-1", "profile_key": "other", "workers": []}, "is not ours"),
            ({"claim_id": "c-1", "profile_key": PROFILE.key, "workers": [7]}, "not an object"),
            (
                {"claim_id": "c-1", "profile_key": PROFILE.key, "workers": [worker(token="")]},
                "must be strings",
            ),
        ],
    )
    def test_a_claim_of_the_wrong_shape_is_a_farm_error(self, server, client, answer, why):
        """A claim answer that is not what the API promises is refused with the reason."""
        server.answer("/api/workers/claim", 200, answer)
        with pytest.raises(FarmError, match=f"unexpected shape.*{why}"):
            client.claim(PROFILE, 1)

    def test_drain_reads_the_keys(self, server, client):
        """drain() returns the drained keys; a missing list is no keys."""
        server.answer("/api/swarm/drain", 200, {"drained": ["k1", "k2"]})
        assert client.drain("k") == ["k1", "k2"]
        assert server.seen[-1][3] == {"profile": "k"}
        server.answer("/api/swarm/drain", 200, {})
        assert client.drain() == []


class TestProof:
    def test_an_endpoint_that_cannot_prove_is_sent_nothing(self):
        """A server that does not hold our token (another farm, someone else's process on
        the port): TrustError, and no request but the challenge reaches it."""
        impostor = Canned(token="not-ours")
        thread = threading.Thread(target=impostor.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            impostor.answer("/api/workers/claim", 200, {})
            claimant = FarmClient(FarmEndpoint(impostor.url, TOKEN), timeout=2.0)
            with pytest.raises(TrustError, match="did not prove it is the farm of this home"):
                claimant.claim(PROFILE, 1)
            assert (impostor.challenges, impostor.seen) == (1, [])
        finally:
            impostor.shutdown()
            impostor.server_close()
            thread.join(10)

    def test_without_a_token_nothing_is_asked(self, server):
        """No token to check the farm with: TrustError before any request."""
        with pytest.raises(TrustError, match="no token to check the farm"):
            FarmClient(FarmEndpoint(server.url, None), timeout=2.0).status()
        assert (server.challenges, server.seen) == (0, [])


class TestDiscover:
    def test_off_means_no_farm(self, tmp_path: Path):
        """'off': None, whatever runs."""
        assert discover("off", FarmHome(tmp_path)) is None

    def test_auto_finds_the_running_daemon(self, tmp_path: Path):
        """'auto': the URL of the home's live daemon, with the home's token."""
        home = FarmHome(tmp_path / "home").create()
        assert discover("auto", home) is None
        home.ensure_token()
        pretend_running(home, "http://127.0.0.1:9/")
        assert discover("auto", home) == FarmEndpoint("http://127.0.0.1:9", home.read_token())

    def test_a_url_is_used_as_given_with_the_homes_token(self, tmp_path: Path):
        """A URL setting: that URL (without the trailing slash), with the token of the
        farm home to check it with; a home without a token is a TrustError naming the fix."""
        home = FarmHome(tmp_path / "home").create()
        with pytest.raises(TrustError, match=r"no token in the farm home.*--sf-farm-home"):
            discover("http://farm:8/", home)
        token = home.ensure_token()
        assert discover("http://farm:8/", home) == FarmEndpoint("http://farm:8", token)
