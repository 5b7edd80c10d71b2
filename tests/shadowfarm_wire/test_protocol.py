"""The hand-off protocol and the worker's door, over real AF_UNIX sockets in one process."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from farm_server.gate import accept_client, listen, peer_uid
from shadowfarm_wire.protocol import (
    MAX_HELLO_BYTES,
    HandoffError,
    recv_hello,
    send_hello,
    unix_address,
)
from tests.farmtools import private_dir

TOKEN = "s3cret-token"


def hello(**overrides: object) -> dict[str, object]:
    return {"token": TOKEN, "cwd": "/", "env": {"A": "1"}, "id": "gw0", **overrides}


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        yield a, b


@pytest.fixture
def door(tmp_path: Path):
    """A listening worker socket in a private directory, and a way to connect to it."""
    path = private_dir(tmp_path / "sockets") / "w.sock"
    srv = listen(path)
    clients: list[socket.socket] = []

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        clients.append(sock)
        with unix_address(path) as address:
            sock.connect(address)
        return sock

    yield srv, connect, path
    for sock in clients:
        sock.close()
    srv.close()


class TestHello:
    def test_a_hello_and_a_descriptor_arrive_together(self, pair, tmp_path):
        """The JSON comes through intact and the passed fd writes to the sender's file."""
        a, b = pair
        target = tmp_path / "stderr.txt"
        with target.open("w") as fh:
            send_hello(a, hello(), [fh.fileno()])
            received, fds = recv_hello(b)
        assert received == hello()
        os.write(fds[0], b"via fd")
        os.close(fds[0])
        assert target.read_text() == "via fd"

    def test_an_oversized_hello_is_refused_before_reading_it(self, pair):
        """A length over the limit is an error; the body is never read."""
        a, b = pair
        a.sendall(struct.pack(">I", MAX_HELLO_BYTES + 1))
        with pytest.raises(HandoffError, match="over the"):
            recv_hello(b)

    @pytest.mark.parametrize(
        ("body", "message"), [(b"{nope", "not JSON"), (b"[1]", "not a JSON object")]
    )
    def test_a_hello_that_is_not_a_json_object_is_refused(self, pair, body, message):
        """Only a JSON object is a hello."""
        a, b = pair
        a.sendall(struct.pack(">I", len(body)) + body)
        with pytest.raises(HandoffError, match=message):
            recv_hello(b)

    def test_a_peer_that_closes_early_is_an_error(self, pair):
        """Half a hello, then EOF: HandoffError, not a hang."""
        a, b = pair
        a.sendall(struct.pack(">I", 10) + b"{")
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(HandoffError, match="closed"):
            recv_hello(b)


class TestUnixAddress:
    def test_a_socket_deeper_than_sun_path_still_binds_and_connects(self, tmp_path):
        """A 150-character path works through /proc/self/fd."""
        deep = tmp_path / ("d" * 60) / ("e" * 60)
        deep.mkdir(parents=True)
        path = deep / "w.sock"
        assert len(str(path)) > 108
        with socket.socket(socket.AF_UNIX) as srv, socket.socket(socket.AF_UNIX) as cli:
            with unix_address(path) as address:
                srv.bind(address)
            srv.listen(1)
            with unix_address(path) as address:
                cli.connect(address)
            assert path.exists()


class TestDoor:
    def test_the_socket_is_private(self, door):
        """The socket file is 0600 in a 0700 directory."""
        _, _, path = door
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700

    def test_a_directory_others_can_enter_is_refused(self, tmp_path):
        """listen() will not put a socket in a directory with group/other access."""
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o755)
        shared.chmod(0o755)
        with pytest.raises(PermissionError, match="0700"):
            listen(shared / "w.sock")

    def test_the_peer_uid_is_ours(self, pair):
        """SO_PEERCRED reports this process's uid."""
        assert peer_uid(pair[0]) == os.getuid()

    def test_the_right_token_is_admitted(self, door):
        """A well-formed hello with the token passes and keeps its fields."""
        srv, connect, _ = door
        send_hello(connect(), hello())
        admitted = accept_client(srv, TOKEN.encode(), profile_key="k")
        admitted.conn.close()
        assert admitted.hello["env"] == {"A": "1"}

    @pytest.mark.parametrize(
        ("bad", "reason"),
        [
            ({"token": "wrong"}, "wrong token"),
            ({"token": 7}, "wrong token"),
            ({"profile": "other-key"}, "is not this worker's k"),
            ({"cwd": "/no/such/dir"}, "malformed hello: cwd"),
            ({"env": {"A": 1}}, "malformed hello: env"),
            ({"umask": "0o22"}, "malformed hello: umask"),
        ],
    )
    def test_a_bad_hello_is_rejected_and_the_next_client_served(self, door, bad, reason):
        """The bad client is closed with a reason; accept goes on to the good one."""
        srv, connect, _ = door
        send_hello(connect(), hello(**bad))
        send_hello(connect(), hello(id="good"))
        reasons: list[str] = []
        admitted = accept_client(srv, TOKEN.encode(), profile_key="k", on_reject=reasons.append)
        admitted.conn.close()
        assert admitted.hello["id"] == "good"
        assert len(reasons) == 1
        assert reason in reasons[0]

    def test_a_client_of_another_uid_is_rejected_before_reading(self, door):
        """With an expected uid that is not the peer's, the hello is never read."""
        srv, connect, _ = door
        send_hello(connect(), hello())
        send_hello(connect(), hello(id="second"))
        reasons: list[str] = []
        srv.settimeout(5)
        with pytest.raises(TimeoutError):
            accept_client(srv, TOKEN.encode(), uid=os.getuid() + 1, on_reject=reasons.append)
        assert reasons == [f"peer uid {os.getuid()} is not the farm's uid {os.getuid() + 1}"] * 2
