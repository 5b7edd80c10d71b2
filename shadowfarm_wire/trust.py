"""Proving who is who before a secret or a file descriptor leaves the client.

Two questions, asked by the plugin and the admin CLI before they use a farm:

1. *Is this endpoint the farm of my home?* Whoever answers on the farm's port (a stale
   ``daemon.json`` while ``farm stop`` runs, or a URL given with ``--sf-farm``) may be
   someone else's process. The client never sends the token: it sends a fresh nonce, and
   the farm answers with ``HMAC(token, client nonce, server nonce)``, which only a process
   that read the token can compute. Both sides then derive a session key from the two
   nonces and authenticate each request with an HMAC of it (method, path, body hash and a
   sequence number, so a recorded request cannot be replayed).
2. *Are the farm's files mine?* The token, ``daemon.json`` and the worker sockets are
   trusted only in a home directory owned by this user that nobody else can write to;
   a worker socket must lie in the home's ``sockets`` directory, and the process behind it
   must run as this user (``SO_PEERCRED``).

Stdlib only: both the plugin and the daemon import this module.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from shadowfarm_wire.errors import TrustError

if TYPE_CHECKING:
    from shadowfarm_wire.home import FarmHome

__all__ = [
    "CHALLENGE_PATH",
    "SCHEME",
    "TrustError",
    "check_home",
    "check_peer",
    "check_worker_socket",
    "farm_proof",
    "new_nonce",
    "parse_authorization",
    "request_mac",
    "session_key",
]

#: the one unauthenticated POST: the client's nonce in, the farm's proof out
CHALLENGE_PATH = "/api/auth/challenge"
#: the ``Authorization`` scheme of requests signed with a session key
SCHEME = "ShadowFarm-HMAC"
NONCE_BYTES = 32
_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()


def farm_proof(token: str, client_nonce: str, server_nonce: str) -> str:
    """What only a holder of ``token`` can answer to ``client_nonce``."""
    return _mac(token.encode(), "shadowfarm-farm-proof", client_nonce, server_nonce)


def session_key(token: str, client_nonce: str, server_nonce: str) -> bytes:
    """The key both sides sign requests with after the challenge (never sent)."""
    return bytes.fromhex(_mac(token.encode(), "shadowfarm-session", client_nonce, server_nonce))


def request_mac(key: bytes, seq: int, method: str, path: str, body: bytes) -> str:
    """The signature of one request: its sequence number, method, path and body."""
    digest = hashlib.sha256(body).hexdigest()
    return _mac(key, "shadowfarm-request", str(seq), method.upper(), path, digest)


def parse_authorization(value: str) -> tuple[str, int, str] | None:
    """``ShadowFarm-HMAC session=S, seq=N, mac=M`` -> (S, N, M); None if not that shape."""
    scheme, _, rest = value.partition(" ")
    if scheme != SCHEME:
        return None
    fields = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            fields[name] = val
    try:
        return fields["session"], int(fields["seq"]), fields["mac"]
    except (KeyError, ValueError):
        return None


# --- the files of a home ------------------------------------------------------------------


def _owned(path: Path, what: str, *, forbidden: int, kind: int | None = None) -> os.stat_result:
    """``path``'s stat if it is ours and has none of the ``forbidden`` mode bits."""
    try:
        info = path.lstat()
    except OSError as exc:
        msg = f"{what} {path} cannot be read ({exc.strerror})"
        raise TrustError(msg) from None
    if stat.S_ISLNK(info.st_mode):
        msg = f"{what} {path} is a symbolic link; a farm's files must be plain: remove it"
        raise TrustError(msg)
    if kind is not None and stat.S_IFMT(info.st_mode) != kind:
        msg = f"{what} {path} is not a {stat.filemode(kind)[0]!r}-type file: remove it"
        raise TrustError(msg)
    if info.st_uid != os.getuid():
        msg = (
            f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): "
            "another user could have written it; use a home of your own (--home)"
        )
        raise TrustError(msg)
    if info.st_mode & forbidden:
        msg = (
            f"{what} {path} has mode {stat.filemode(info.st_mode)}: others could have "
            f"written it; chmod {'700' if stat.S_ISDIR(info.st_mode) else '600'} {path}"
        )
        raise TrustError(msg)
    return info


def check_home(home: FarmHome, *, token: bool = True) -> None:
    """TrustError unless the home, its token and ``daemon.json`` are ours and private.

    The home itself may be readable by others (an existing ``--home``), never writable:
    whoever can write there can replace ``daemon.json`` and point us at their port.
    """
    root = home.root.resolve()
    _owned(root, "farm home", forbidden=0o022, kind=stat.S_IFDIR)
    if token:
        _owned(home.token_file, "farm token", forbidden=0o077, kind=stat.S_IFREG)
    if home.daemon_file.exists():
        _owned(home.daemon_file, "farm daemon file", forbidden=0o022, kind=stat.S_IFREG)


def check_worker_socket(home: FarmHome, path: str) -> None:
    """TrustError unless ``path`` is a socket of ours in the home's private ``sockets``."""
    sockets = home.sockets.resolve()
    _owned(sockets, "farm sockets directory", forbidden=0o077, kind=stat.S_IFDIR)
    candidate = Path(path)
    if not candidate.is_absolute() or candidate.parent.resolve() != sockets:
        msg = f"worker socket {path!r} is not in the farm's sockets directory {sockets}"
        raise TrustError(msg)
    _owned(candidate, "worker socket", forbidden=0o077, kind=stat.S_IFSOCK)


def check_peer(sock: socket.socket, uid: int | None = None) -> None:
    """TrustError unless the process at the other end of ``sock`` runs as ``uid`` (ours)."""
    expected = os.getuid() if uid is None else uid
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, peer, _gid = _UCRED.unpack(raw)
    if peer != expected:
        msg = f"the process behind the socket (pid {pid}) runs as uid {peer}, not {expected}"
        raise TrustError(msg)
