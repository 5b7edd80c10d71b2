"""The relay hand-off over a cluster engine's connections (both sides, stdlib only).

A run's controller reaches a pytest worker hosted on a cluster host through a
connection the engine opened for it (Dask: a comm to the worker's ``sf_pipe``
handler). Before a byte of the session flows, both ends prove they hold the run's
secret, with the HMAC challenge of :mod:`shadowfarm_wire.trust`: the controller sends
a fresh nonce, the host answers with its own nonce and :func:`host_proof`, the
controller checks it and answers :func:`client_proof`. The secret itself never
crosses the connection; a recorded exchange cannot be replayed (both nonces are new
every time) and the two proofs carry different labels, so one cannot stand in for
the other.

Engine URLs: ``dask://HOST:PORT`` is Dask's ``tcp://``, ``dask+tls://HOST:PORT`` its
``tls://`` (with the security settings from Dask's configuration).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from shadowfarm_wire.trust import new_nonce

__all__ = [
    "HEARTBEAT_S",
    "PIPE_OP",
    "SILENT_S",
    "EngineURL",
    "client_proof",
    "host_proof",
    "new_nonce",
    "parse_engine_url",
    "proofs_match",
]

#: the handler name a host registers on its Dask worker
PIPE_OP = "sf_pipe"
#: the controller pings an idle relay this often (s); the host answers at once
HEARTBEAT_S = 2.0
#: a relay from which nothing (not even a pong) came for this long is dead (s). Dask
#: itself drops a silent worker only after ``distributed.scheduler.worker-ttl`` (5 min).
SILENT_S = 10.0

_SCHEMES = {"dask://": "tcp://", "dask+tcp://": "tcp://", "dask+tls://": "tls://"}


def _mac(secret: str, label: str, *parts: str) -> str:
    data = "\0".join((label, *parts)).encode()
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def host_proof(secret: str, worker: str, client_nonce: str, host_nonce: str) -> str:
    """What only a host given ``secret`` answers to the controller's nonce."""
    return _mac(secret, "shadowfarm-relay-host", worker, client_nonce, host_nonce)


def client_proof(secret: str, worker: str, client_nonce: str, host_nonce: str) -> str:
    """What only the controller holding ``secret`` answers to the host's nonce."""
    return _mac(secret, "shadowfarm-relay-client", worker, client_nonce, host_nonce)


def proofs_match(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class EngineURL:
    """A ``--sf-farm`` URL naming a cluster: what the user wrote and what Dask dials."""

    url: str
    address: str
    tls: bool


def parse_engine_url(url: str) -> EngineURL | None:
    """The cluster a ``dask://`` or ``dask+tls://`` URL names (None: not a cluster URL)."""
    for prefix, scheme in _SCHEMES.items():
        if url.startswith(prefix):
            rest = url[len(prefix) :].rstrip("/")
            if not rest or "/" in rest:
                msg = f"{url!r}: expected {prefix}HOST:PORT (e.g. {prefix}127.0.0.1:8786)"
                raise ValueError(msg)
            if ":" not in rest.rpartition("]")[2]:
                rest += ":8786"  # Dask's default scheduler port
            return EngineURL(url.rstrip("/"), scheme + rest, tls=scheme == "tls://")
    return None
