"""The hand-off protocol between a run's controller and a warm worker (both sides).

The controller connects to the worker's AF_UNIX socket and sends one *hello*: a 4-byte
big-endian length, then JSON ``{"token", "cwd", "env", "umask", "id", "profile"}``, with
the controller's stderr passed along as an SCM_RIGHTS file descriptor (so the worker
writes where a popen worker would). The worker checks the peer's uid and the token
before it looks at anything else, applies cwd/env/umask and answers :data:`ACK`; from
then on the socket carries a plain execnet session (execnet's own framing), exactly as
the stdin/stdout pipes of a popen worker would.

JSON, not pickle or execnet's serializer: parsing the hello must not be able to run code.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ACK",
    "COLLECTION_KEY",
    "MAX_HELLO_BYTES",
    "REFUSE",
    "HandoffError",
    "Hello",
    "UnixIO",
    "read_answer",
    "read_exactly",
    "recv_hello",
    "send_hello",
    "send_refusal",
    "unix_address",
]

#: ``workeroutput`` key where a warm worker says what became of the collection it
#: prepared for the run: "reused", or "collected: <why>" (farm_server.collection.reuse)
COLLECTION_KEY = "shadowfarm_collection"

#: the one byte a worker answers once it accepted a hello (execnet's bootstrap ack)
ACK = b"1"
#: what a worker answers instead when it cannot serve this run: then a length and a reason
REFUSE = b"0"
#: a hello is at most this big (an environment is a few kB; this bounds a hostile peer)
MAX_HELLO_BYTES = 1 << 20
_HEADER = struct.Struct(">I")
#: AF_UNIX paths longer than this do not fit in ``sockaddr_un.sun_path`` (108 on Linux)
_MAX_UNIX_PATH = 100


class HandoffError(OSError):
    """The hand-off protocol was not followed (by the other side, or by the network)."""


Hello = dict[str, Any]


def read_exactly(sock: socket.socket, count: int) -> bytes:
    """Read ``count`` bytes; EOFError when the peer closes first."""
    chunks: list[bytes] = []
    missing = count
    while missing:
        chunk = sock.recv(min(missing, 1 << 16))
        if not chunk:
            raise EOFError(f"peer closed after {count - missing} of {count} bytes")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def send_hello(sock: socket.socket, hello: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
    """Send ``hello``; ``fds`` ride along with the first bytes as SCM_RIGHTS."""
    payload = json.dumps(hello, separators=(",", ":")).encode()
    header = _HEADER.pack(len(payload))
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(payload)


def recv_hello(sock: socket.socket, *, max_fds: int = 1) -> tuple[Hello, list[int]]:
    """Receive a hello; HandoffError if it is not one. The caller owns the returned fds."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, max_fds)
    try:
        if not data:
            raise HandoffError("peer closed before sending a hello")
        if len(data) < _HEADER.size:
            data += read_exactly(sock, _HEADER.size - len(data))
        (size,) = _HEADER.unpack(data)
        if size > MAX_HELLO_BYTES:
            raise HandoffError(f"hello of {size} bytes is over the {MAX_HELLO_BYTES} limit")
        try:
            hello = json.loads(read_exactly(sock, size))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HandoffError(f"hello is not JSON ({exc})") from None
        except EOFError as exc:
            raise HandoffError(str(exc)) from None
        if not isinstance(hello, dict):
            raise HandoffError("hello is not a JSON object")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return hello, fds


def send_refusal(sock: socket.socket, reason: str) -> None:
    """Tell an authenticated client why this worker will not serve its run."""
    payload = reason.encode()[:4096]
    with contextlib.suppress(OSError):
        sock.sendall(REFUSE + _HEADER.pack(len(payload)) + payload)


def read_answer(sock: socket.socket, worker: str) -> None:
    """Return on ACK; HandoffError with the worker's reason (or what came) otherwise."""
    answer = sock.recv(1)
    if answer == ACK:
        return
    if answer == REFUSE:
        try:
            (size,) = _HEADER.unpack(read_exactly(sock, _HEADER.size))
            reason = read_exactly(sock, min(size, 4096)).decode(errors="replace")
        except (EOFError, OSError) as exc:
            reason = f"no reason given ({exc})"
        raise HandoffError(f"worker {worker} refused this run: {reason}")
    raise HandoffError(f"worker {worker} refused the hand-off (answered {answer!r})")


@contextlib.contextmanager
def unix_address(path: str | Path) -> Iterator[str]:
    """An address for ``bind``/``connect`` that fits ``sun_path`` however deep ``path`` is.

    A long path is reached through ``/proc/self/fd/<dirfd>/<name>`` (Linux resolves the
    directory by its open descriptor), so a deep ``SHADOWFARM_HOME`` still works.
    """
    path = str(path)
    if len(path.encode()) <= _MAX_UNIX_PATH:
        yield path
        return
    directory, name = os.path.split(path)
    dirfd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        short = f"/proc/self/fd/{dirfd}/{name}"
        if len(short.encode()) > _MAX_UNIX_PATH or not os.path.isdir(f"/proc/self/fd/{dirfd}"):
            msg = f"socket path {path!r} is too long for AF_UNIX; use a shorter SHADOWFARM_HOME"
            raise HandoffError(msg)
        yield short
    finally:
        os.close(dirfd)


class UnixIO:
    """execnet's IO interface over a connected AF_UNIX socket (like ``gateway_socket.SocketIO``)."""

    def __init__(self, sock: socket.socket, execmodel: Any, remoteaddress: str = "") -> None:
        self.sock = sock
        self.execmodel = execmodel
        self.remoteaddress = remoteaddress
        self._shut_down: set[int] = set()

    def read(self, numbytes: int) -> bytes:
        return read_exactly(self.sock, numbytes)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_read(self) -> None:
        self._shut(socket.SHUT_RD)

    def close_write(self) -> None:
        self._shut(socket.SHUT_WR)

    def _shut(self, how: int) -> None:
        # Once both directions are shut (the receiver thread does both when it ends) the
        # socket is useless: close it. Group.terminate would call wait() to do that, but
        # it skips gateways that exited before it ran, which is how xdist ends its nodes.
        with contextlib.suppress(OSError):
            self.sock.shutdown(how)
        self._shut_down.add(how)
        if {socket.SHUT_RD, socket.SHUT_WR} <= self._shut_down:
            self.sock.close()

    def wait(self) -> None:
        # Called by Group.terminate once the gateway's receiver ended: the session is over.
        # Not our child process: nothing to reap, only our end of the socket to close.
        self.sock.close()

    def kill(self) -> None:
        # Called by execnet when the gateway did not come down in time. We cannot kill
        # a process we did not start; closing both directions makes its receiver see
        # EOF, and a farm worker exits when its session's connection ends.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
