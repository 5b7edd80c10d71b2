"""Who may talk to the farm's HTTP API: the guard in front of every route.

An ASGI middleware (not a route dependency) so that nothing of a request is parsed before
it is admitted. In this order, for every request:

1. the ``Host`` header names this farm (an IP literal or ``localhost``, with the farm's
   port): a web page that rebinds its DNS name to 127.0.0.1 sends its own name and is
   refused (DNS rebinding);
2. the body is at most :data:`MAX_BODY_BYTES` (413 otherwise, read no further);
3. except ``/api/health`` and the challenge, the request is authenticated, either with
   ``Authorization: Bearer <token>`` (tools such as Prometheus) or with a request signed
   by a session key (``ShadowFarm-HMAC``, see :mod:`shadowfarm_wire.trust`), which is what
   the plugin and the admin CLI send: they never send the token itself.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from shadowfarm_wire.trust import (
    CHALLENGE_PATH,
    SCHEME,
    farm_proof,
    new_nonce,
    parse_authorization,
    request_mac,
    session_key,
)

__all__ = ["MAX_BODY_BYTES", "OPEN_PATHS", "Guard", "Sessions"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: the largest request body the farm reads (a claim with 10,000 shadow tests is ~1 MB)
MAX_BODY_BYTES = 4 << 20
#: a request body must arrive within this (a slow body holds a connection, as slowloris)
BODY_TIMEOUT_S = 30.0
#: routes anyone may call: liveness, and the challenge that starts a session
OPEN_PATHS = frozenset({"/api/health", CHALLENGE_PATH})
#: sessions kept at once; a flood of challenges evicts the oldest (its client re-proves)
MAX_SESSIONS = 1024
SESSION_TTL_S = 3600.0
#: sequence numbers of a session accepted out of order (concurrent requests of one client)
SEQ_WINDOW = 256


@dataclass
class _Session:
    key: bytes
    expires: float
    top: int = 0
    seen: set[int] = field(default_factory=set)

    def accept(self, seq: int) -> bool:
        """A sequence number not used before and not too old (no replay)."""
        if seq <= self.top - SEQ_WINDOW or seq in self.seen:
            return False
        self.seen.add(seq)
        self.top = max(self.top, seq)
        self.seen = {s for s in self.seen if s > self.top - SEQ_WINDOW}
        return True


class Sessions:
    """Session keys made by challenges; bounded in number and age."""

    def __init__(self, token: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._token = token
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def challenge(self, client_nonce: str) -> dict[str, str]:
        """The farm's answer to a client nonce: a server nonce and the proof."""
        server_nonce = new_nonce()
        key = session_key(self._token, client_nonce, server_nonce)
        with self._lock:
            self._sessions[server_nonce] = _Session(key, self._clock() + SESSION_TTL_S)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return {
            "server_nonce": server_nonce,
            "proof": farm_proof(self._token, client_nonce, server_nonce),
        }

    def verify(self, header: str, method: str, path: str, body: bytes) -> bool:
        parsed = parse_authorization(header)
        if parsed is None:
            return False
        session_id, seq, mac = parsed
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.expires < now:
                self._sessions.pop(session_id, None)
                return False
            expected = request_mac(session.key, seq, method, path, body)
            if not hmac.compare_digest(mac, expected) or not session.accept(seq):
                return False
            session.expires = now + SESSION_TTL_S
            self._sessions.move_to_end(session_id)
            return True

    def bearer(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        )


def host_allowed(host: str, port: int) -> bool:
    """``Host`` is an IP literal or ``localhost``, with the farm's port (no DNS names)."""
    name, sep, given_port = host.rpartition(":")
    if not sep or given_port != str(port):
        return False
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """ASGI middleware: Host check, body bound, authentication; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        sessions: Sessions,
        port: Callable[[], int],
        token_file: str,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.port = port
        self.token_file = token_file
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not host_allowed(headers.get("host", ""), self.port()):
            await _answer(send, 421, "the Host header does not name this farm (DNS rebinding?)")
            return
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            declared = -1
        if not 0 <= declared <= self.max_body:
            await _answer(send, 413, f"request bodies are limited to {self.max_body} bytes")
            return
        try:
            body = await asyncio.wait_for(self._body(receive), BODY_TIMEOUT_S)
        except TimeoutError:
            await _answer(send, 408, f"the request body took over {BODY_TIMEOUT_S:g}s")
            return
        if body is None:
            return  # the client went away
        if len(body) > self.max_body:
            await _answer(send, 413, f"request bodies are limited to {self.max_body} bytes")
            return
        path = scope["path"]
        if path not in OPEN_PATHS:
            auth = headers.get("authorization", "")
            method = scope["method"]
            if not (self.sessions.bearer(auth) or self.sessions.verify(auth, method, path, body)):
                await _answer(
                    send,
                    401,
                    "missing or wrong bearer token or signature: send 'Authorization: "
                    f"Bearer <token>' with the token in {self.token_file}, or sign the "
                    f"request ({SCHEME})",
                    [(b"www-authenticate", b"Bearer")],
                )
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body (stops just over the limit); None if the client disconnected."""
        body = b""
        more = True
        while more and len(body) <= self.max_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
        return body


async def _answer(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps({"detail": detail, "message": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
