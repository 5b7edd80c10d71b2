"""The warm worker's door: an AF_UNIX socket that admits one authenticated client.

Checks, in this order, before the worker runs anything on a client's behalf:

1. the socket lives in a directory only the farm's user can enter (0700);
2. the peer's uid, from the kernel (SO_PEERCRED), is the farm's uid;
3. the hello parses as JSON within a size and time limit (see ``wire``);
4. its token equals the worker's one-time token (``hmac.compare_digest``);
5. its profile key, when given, equals the worker's (a stale worker never serves).

A rejected connection is closed and reported through ``on_reject``; the worker keeps
waiting for its real client.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shadowfarm_wire.protocol import HandoffError, Hello, recv_hello, unix_address

__all__ = ["Admitted", "accept_client", "listen", "peer_uid"]

#: a client has this long to send its hello once connected
HELLO_TIMEOUT_S = 5.0
_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


def listen(path: Path) -> socket.socket:
    """Bind a listening socket at ``path`` (mode 0600) inside a private directory."""
    info = path.parent.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        msg = f"{path.parent} must be a 0700 directory of uid {os.getuid()} to hold sockets"
        raise PermissionError(msg)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        with unix_address(path) as address:
            srv.bind(address)
    finally:
        os.umask(old)
    srv.listen(4)
    return srv


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end, as the kernel recorded it at connect."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(raw)[1]


@dataclass
class Admitted:
    """A client that passed every check; ``fds`` are the descriptors it sent along."""

    conn: socket.socket
    hello: Hello
    fds: list[int] = field(default_factory=list)


def _check(conn: socket.socket, token: bytes, profile_key: str | None, uid: int) -> Admitted:
    """Admitted, or HandoffError saying why not. Reads nothing before the uid check."""
    peer = peer_uid(conn)
    if peer != uid:
        raise HandoffError(f"peer uid {peer} is not the farm's uid {uid}")
    conn.settimeout(HELLO_TIMEOUT_S)
    try:
        hello, fds = recv_hello(conn)
    except (OSError, EOFError) as exc:  # TimeoutError is an OSError
        raise HandoffError(f"no valid hello: {exc}") from None
    given = hello.get("token")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token):
        for fd in fds:
            os.close(fd)
        raise HandoffError("wrong token")
    if profile_key is not None and hello.get("profile") not in (None, profile_key):
        for fd in fds:
            os.close(fd)
        raise HandoffError(f"profile {hello.get('profile')!r} is not this worker's {profile_key}")
    problem = _shape_problem(hello)
    if problem:
        for fd in fds:
            os.close(fd)
        raise HandoffError(f"malformed hello: {problem}")
    conn.settimeout(None)
    return Admitted(conn, hello, fds)


def _shape_problem(hello: Hello) -> str:
    """What is wrong with an authenticated hello's session fields ("" if nothing)."""
    cwd = hello.get("cwd")
    if not isinstance(cwd, str) or not os.path.isdir(cwd):
        return f"cwd {cwd!r} is not a directory"
    env = hello.get("env")
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        return "env must map strings to strings"
    umask = hello.get("umask", 0o022)
    if not isinstance(umask, int) or not 0 <= umask <= 0o777:
        return f"umask {umask!r} is not a file mode mask"
    if not isinstance(hello.get("id", "gw"), str):
        return "id must be a string"
    return ""


def accept_client(
    srv: socket.socket,
    token: bytes,
    *,
    profile_key: str | None = None,
    on_reject: Callable[[str], None] = lambda reason: None,
    uid: int | None = None,
) -> Admitted:
    """Block until a client passes every check; reject (close) all others."""
    expected_uid = os.getuid() if uid is None else uid
    while True:
        conn, _ = srv.accept()
        try:
            return _check(conn, token, profile_key, expected_uid)
        except HandoffError as exc:
            conn.close()
            on_reject(str(exc))
