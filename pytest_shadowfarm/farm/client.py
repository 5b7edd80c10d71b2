"""Talking to a farm over HTTP (:mod:`.transport`, short timeouts), from the plugin and the CLI.

Every failure, whatever its kind (connection refused, a farm slower than the timeout, a
non-JSON or ill-shaped answer, an HTTP error, an endpoint that cannot prove it is the
farm), becomes one :class:`FarmError` whose message says what happened; the plugin turns
it into a single warning line and runs cold.

Before its first request a client makes the endpoint prove that it holds the token of
the farm's home (:mod:`shadowfarm_wire.trust`); the token itself never leaves this
process, and every request is signed with the session key of that proof.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_shadowfarm.errors import FarmError, TrustError
from pytest_shadowfarm.farm import transport
from pytest_shadowfarm.farm.handoff import WarmSlot
from pytest_shadowfarm.farm.transport import Response
from shadowfarm_wire.endings import MaxAge, WorkerEnding
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import Profile
from shadowfarm_wire.trust import (
    CHALLENGE_PATH,
    SCHEME,
    check_home,
    farm_proof,
    new_nonce,
    request_mac,
    session_key,
)

__all__ = ["PLUGIN_TIMEOUT_S", "Claim", "FarmClient", "FarmEndpoint", "discover"]

#: connect and read timeouts of the plugin's requests: a run never waits longer on a farm
PLUGIN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class FarmEndpoint:
    url: str
    token: str | None


def discover(setting: str, home: FarmHome) -> FarmEndpoint | None:
    """Where the farm is: ``off`` -> None; ``auto`` -> the running daemon of ``home``
    (None if there is none); a URL -> that URL, with the token of ``home``.

    TrustError if the home, its token or ``daemon.json`` could have been written by
    someone else: then neither the URL it names nor the token is used.
    """
    if setting == "off":
        return None
    if setting == "auto":
        info = home.running_daemon()
        if info is None or not info.url:
            return None
        check_home(home)
        return FarmEndpoint(info.url.rstrip("/"), home.read_token())
    if not home.token_file.exists():
        msg = (
            f"no token in the farm home {home.root} to check the farm at {setting} with; "
            "name that farm's home with --sf-farm-home (its token is never sent)"
        )
        raise TrustError(msg)
    check_home(home)
    return FarmEndpoint(setting.rstrip("/"), home.read_token())


@dataclass(frozen=True)
class Claim:
    claim_id: str
    profile_key: str
    registered: bool
    warming: int
    workers: tuple[WarmSlot, ...]
    #: how long this profile's workers may serve before the run recycles them (learned
    #: by the farm from how they ended; a farm that does not say: no limit)
    max_age: MaxAge = field(default_factory=MaxAge)


def _slot(raw: Any, profile_key: str) -> WarmSlot:
    if not isinstance(raw, Mapping):
        raise TypeError("a worker is not an object")
    fields = {name: raw.get(name) for name in ("id", "socket", "token")}
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise TypeError(f"worker fields id/socket/token must be strings, got {fields!r}")
    modules = raw.get("modules", [])
    return WarmSlot(
        str(fields["id"]),
        str(fields["socket"]),
        str(fields["token"]),
        profile_key,
        tuple(m for m in modules if isinstance(m, str)) if isinstance(modules, list) else (),
    )


class FarmClient:
    """The farm's HTTP API; every method raises FarmError on any failure."""

    def __init__(self, endpoint: FarmEndpoint, timeout: float = PLUGIN_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        #: (server nonce, session key) once the endpoint proved it is the farm
        self._session: tuple[str, bytes] | None = None
        self._seq = 0

    @property
    def url(self) -> str:
        return self.endpoint.url

    def _send(self, method: str, path: str, payload: bytes, headers: dict[str, str]) -> Response:
        where = f"the farm at {self.url}"
        if payload:
            headers = {"Content-Type": "application/json", **headers}
        try:
            return transport.request(
                method, self.url + path, body=payload or None, headers=headers, timeout=self.timeout
            )
        except TimeoutError:
            msg = f"{where} did not answer within {self.timeout:g}s"
            raise FarmError(msg) from None
        except transport.HttpError as exc:
            msg = f"{where} is not reachable ({exc})"
            raise FarmError(msg) from None

    def _decode(self, response: Response) -> dict[str, Any]:
        where = f"the farm at {self.url}"
        try:
            data = response.json()
        except ValueError:
            msg = f"{where} answered {response.status_code} with something that is not JSON"
            raise FarmError(msg) from None
        if not isinstance(data, dict):
            msg = f"{where} answered {response.status_code} with JSON that is not an object"
            raise FarmError(msg)
        return data

    def prove(self) -> None:
        """Make the endpoint prove it holds our farm's token; TrustError if it does not.

        The token itself is never sent: the answer to a fresh nonce shows that the other
        side knows it, and the session key both sides derive signs our requests.
        """
        token = self.endpoint.token
        if not token:
            msg = (
                f"no token to check the farm at {self.url} with: the farm home has none "
                "(start the farm with 'shadowfarm farm start', or name its --sf-farm-home)"
            )
            raise TrustError(msg)
        nonce = new_nonce()
        payload = json.dumps({"client_nonce": nonce}).encode()
        response = self._send("POST", CHALLENGE_PATH, payload, {})
        data = self._decode(response)
        if not response.ok:
            detail = data.get("message") or data.get("detail")
            msg = f"the farm at {self.url} answered {response.status_code}: {detail}"
            raise FarmError(msg)
        server_nonce, proof = data.get("server_nonce"), data.get("proof")
        if not (
            isinstance(server_nonce, str)
            and isinstance(proof, str)
            and hmac.compare_digest(proof, farm_proof(token, nonce, server_nonce))
        ):
            msg = (
                f"the endpoint at {self.url} did not prove it is the farm of this home "
                "(it does not know the farm's token); nothing was sent to it"
            )
            raise TrustError(msg)
        self._session = (server_nonce, session_key(token, nonce, server_nonce))
        self._seq = 0

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            if self._session is None:
                self.prove()
            assert self._session is not None
            session_id, key = self._session
            self._seq += 1
            mac = request_mac(key, self._seq, method, path, payload)
            auth = f"{SCHEME} session={session_id}, seq={self._seq}, mac={mac}"
            response = self._send(method, path, payload, {"Authorization": auth})
            if response.status_code == 401 and attempt == 1:
                self._session = None  # the farm restarted or forgot us: prove again
                continue
            break
        data = self._decode(response)
        where = f"the farm at {self.url}"
        if response.status_code == 401:
            detail = data.get("detail")
            msg = f"{where} refused our signed request; is it this farm's home? ({detail})"
            raise FarmError(msg)
        if not response.ok:
            detail = data.get("message") or data.get("detail")
            msg = f"{where} answered {response.status_code}: {detail}"
            raise FarmError(msg)
        return data

    def claim(
        self,
        profile: Profile,
        count: int,
        *,
        modules: Iterable[str] = (),
        shadow_tests: Iterable[str] = (),
        client: Mapping[str, Any] | None = None,
        plugins: Iterable[str] | None = None,
    ) -> Claim:
        """Claim up to ``count`` warm workers; ``plugins``: the run's ``-p`` options, which
        the profile's next warm-ups load too (None: the farm keeps what it knows)."""
        body: dict[str, Any] = {
            "profile": profile.to_dict(),
            "count": count,
            "modules": list(modules),
            "shadow_tests": list(shadow_tests),
            "client": dict(client or {}),
        }
        if plugins is not None:
            body["plugins"] = list(plugins)
        data = self._request("POST", "/api/workers/claim", body)
        try:
            key = data["profile_key"]
            if key != profile.key:
                raise TypeError(f"profile_key {key!r} is not ours ({profile.key})")
            return Claim(
                claim_id=str(data["claim_id"]),
                profile_key=key,
                registered=bool(data.get("registered")),
                warming=int(data.get("warming", 0)),
                workers=tuple(_slot(w, key) for w in data["workers"])[:count],
                max_age=MaxAge.from_dict(data["max_age"]) if "max_age" in data else MaxAge(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"the farm at {self.url} answered a claim with an unexpected shape ({exc})"
            raise FarmError(msg) from None

    def release(self, worker_id: str, ending: WorkerEnding | None = None) -> None:
        """Give ``worker_id`` back; ``ending`` tells the farm how it ended (it learns from it)."""
        body = ending.to_dict() if ending is not None else None
        self._request("POST", f"/api/workers/{worker_id}/release", body)

    def report_endings(self, profile_key: str, endings: Iterable[WorkerEnding]) -> None:
        """How the run's workers that the farm did not provide ended (the farm learns the
        profile's max age from every worker of the run)."""
        body = {"endings": [ending.to_dict() for ending in endings]}
        self._request("POST", f"/api/profiles/{profile_key}/endings", body)

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/api/swarm/status")

    def get_config(self) -> dict[str, Any]:
        return self._request("GET", "/api/swarm/config")

    def put_config(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self._request("PUT", "/api/swarm/config", dict(changes))

    def drain(self, profile: str = "all") -> list[str]:
        drained = self._request("POST", "/api/swarm/drain", {"profile": profile}).get("drained")
        return [str(key) for key in drained] if isinstance(drained, list) else []
