"""The plugin and the CLI send no secret to an endpoint that has not proven it is the farm.

Each test plays an attacker on this host: a process listening where the plugin looks for
the farm (a URL given with ``--sf-farm``, the port of a stale ``daemon.json``), a farm
home that someone else can write to, or a farm that names worker sockets outside its home.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_shadowfarm.cli.main import main as cli_main
from shadowfarm_wire.home import DaemonInfo, FarmHome
from shadowfarm_wire.trust import farm_proof, new_nonce

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 180

TESTS = """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_one(i):
    assert i >= 0
"""


class Impostor(http.server.ThreadingHTTPServer):
    """Answers like a farm (challenge, claim) and records every request it receives.

    ``token``: the proof it gives (None: a made-up one, as anyone without the token).
    ``socket_path``: the worker socket its claims name.
    """

    def __init__(self, socket_path: str, token: str | None = None) -> None:
        self.requests: list[str] = []
        self.token = token
        self.socket_path = socket_path
        impostor = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace")
                impostor.requests.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
                answer = impostor.answer(self.path, body)
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True

    def answer(self, path: str, body: str) -> dict[str, Any]:
        if path == "/api/auth/challenge":
            server_nonce = new_nonce()
            client_nonce = json.loads(body)["client_nonce"]
            proof = farm_proof(self.token, client_nonce, server_nonce) if self.token else "0" * 64
            return {"server_nonce": server_nonce, "proof": proof}
        if path == "/api/workers/claim":
            profile = json.loads(body)["profile"]
            from shadowfarm_wire.profile import Profile

            key = Profile.from_dict(profile).key
            workers = [
                {"id": f"w-evil{i}", "socket": self.socket_path, "token": "t" * 20, "modules": []}
                for i in range(2)
            ]
            return {"claim_id": "c-1", "profile_key": key, "registered": False, "workers": workers}
        return {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Listener:
    """A unix socket that counts the connections made to it (a fake worker)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.accepted = 0
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # 0600, as the farm's own worker sockets
        try:
            self.server.bind(str(path))
        finally:
            os.umask(old)
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopped = True
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FarmHome:
    """The user's farm home: private, with a token (as a farm that ran once leaves it)."""
    home = FarmHome(tmp_path / "farm-home").create()
    home.ensure_token()
    monkeypatch.setenv("SHADOWFARM_HOME", str(home.root))
    return home


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[Any]:
    """Start impostors (and the fake worker sockets they name); all stopped at teardown."""
    started: list[tuple[Impostor, Listener]] = []

    def start(socket_path: Path | None = None, token: str | None = None) -> tuple[Impostor, Any]:
        path = socket_path or tmp_path / f"evil{len(started)}.sock"
        listener = Listener(path)
        server = Impostor(str(path), token)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append((server, listener))
        return server, listener

    yield start
    for server, listener in started:
        server.shutdown()
        server.server_close()
        listener.close()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_it=TESTS)
    return pytester.runpytest_subprocess(
        "-p", "shadowfarm", "-n", "2", "-p", "no:cacheprovider", *args, timeout=RUN_TIMEOUT_S
    )


def stale_daemon_file(home: FarmHome, url: str) -> None:
    """A daemon.json naming ``url`` and a live process (this one): a farm being stopped."""
    pid = os.getpid()
    home.write_daemon(DaemonInfo(pid, psutil.Process(pid).create_time(), url))


def assert_never_sent(token: str, server: Impostor) -> None:
    for request in server.requests:
        assert token not in request, request
    assert "Bearer" not in "".join(server.requests)


class TestImpostorEndpoints:
    def test_a_url_that_cannot_prove_it_is_the_farm_gets_no_token(self, pytester, home, impostor):
        """--sf-farm URL of an impostor: no token sent, no socket connected, a cold run."""
        server, listener = impostor()
        result = run(pytester, "--sf-farm", server.url)
        assert_never_sent(home.read_token() or "?", server)
        assert listener.accepted == 0
        assert not any("/api/workers/claim" in r for r in server.requests)
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: farm unavailable; 2 cold workers",
                "*did not prove it is the farm of this home*",
            ]
        )
        result.assert_outcomes(passed=4, warnings=1)

    def test_a_stale_daemon_file_during_stop_leaks_nothing(self, pytester, home, impostor):
        """daemon.json names a live pid and a port someone else now holds: nothing leaks."""
        server, listener = impostor()
        stale_daemon_file(home, server.url)
        result = run(pytester)
        assert_never_sent(home.read_token() or "?", server)
        assert listener.accepted == 0
        result.stdout.fnmatch_lines(["*did not prove it is the farm of this home*"])
        result.assert_outcomes(passed=4, warnings=1)

    def test_a_home_others_can_write_is_not_used(self, pytester, home, impostor):
        """A group-writable home could hold anyone's daemon.json: not even contacted."""
        server, _listener = impostor()
        stale_daemon_file(home, server.url)
        home.root.chmod(0o770)
        result = run(pytester)
        assert server.requests == []
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: farm not trusted; 2 cold workers",
                "*farm home * has mode drwxrwx---: others could have written it; chmod 700*",
            ]
        )
        result.assert_outcomes(passed=4, warnings=1)

    def test_a_token_others_can_read_is_not_used(self, pytester, home, impostor):
        """A token readable by others is no secret: the farm is not used."""
        server, _listener = impostor()
        stale_daemon_file(home, server.url)
        home.token_file.chmod(0o644)
        result = run(pytester)
        assert server.requests == []
        result.stdout.fnmatch_lines(["*farm token * has mode -rw-r--r--*"])

    def test_worker_sockets_outside_the_home_are_never_connected(self, pytester, home, impostor):
        """Even a farm that proves itself may only name sockets in its home; header says 0 warm."""
        server, listener = impostor(token=home.read_token())
        result = run(pytester, "--sf-farm", server.url)
        assert listener.accepted == 0
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: 0 warm workers (farm), 2 cold",
                "*farm worker w-evil0 could not be handed over (worker socket * is not in the "
                "farm's sockets directory*",
            ]
        )
        result.assert_outcomes(passed=4, warnings=2)

    def test_a_failed_hand_off_is_not_counted_warm(self, pytester, home, impostor):
        """A socket in the home whose worker never answers: the header counts it cold."""
        server, listener = impostor(
            socket_path=home.sockets / "w-evil.sock", token=home.read_token()
        )
        result = run(pytester, "--sf-farm", server.url)
        assert listener.accepted == 2  # tried (the socket is in the home), and refused
        result.stdout.fnmatch_lines(["shadowfarm: 0 warm workers (farm), 2 cold"])
        result.assert_outcomes(passed=4, warnings=2)


class TestAdminCli:
    def test_the_cli_verifies_the_farm_too(self, home, impostor, capsys):
        """farm status with a stale daemon.json: an error saying why, the token kept."""
        server, _listener = impostor()
        stale_daemon_file(home, server.url)
        with contextlib.suppress(SystemExit):
            code = cli_main(["farm", "status", "--home", str(home.root)])
            assert code != 0
        assert_never_sent(home.read_token() or "?", server)
        assert "did not prove it is the farm of this home" in capsys.readouterr().err
