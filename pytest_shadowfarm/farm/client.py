"""Talking to a farm over HTTP (``requests``, short timeouts), from the plugin and the CLI.

Every failure, whatever its kind (connection refused, a farm slower than the timeout, a
non-JSON or ill-shaped answer, an HTTP error), becomes one :class:`FarmError` whose
message says what happened; the plugin turns it into a single warning line and runs
cold. ``requests`` is imported only when a farm is actually contacted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_shadowfarm.errors import FarmError
from pytest_shadowfarm.farm.handoff import WarmSlot
from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import Profile

__all__ = ["PLUGIN_TIMEOUT_S", "Claim", "FarmClient", "FarmEndpoint", "discover"]

#: connect and read timeouts of the plugin's requests: a run never waits longer on a farm
PLUGIN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class FarmEndpoint:
    url: str
    token: str | None


def discover(setting: str, home: FarmHome) -> FarmEndpoint | None:
    """Where the farm is: ``off`` -> None; ``auto`` -> the running daemon of ``home``
    (None if there is none); a URL -> that URL, with the token of ``home``."""
    if setting == "off":
        return None
    token = home.read_token()
    if setting == "auto":
        info = home.running_daemon()
        if info is None or not info.url:
            return None
        return FarmEndpoint(info.url.rstrip("/"), token)
    return FarmEndpoint(setting.rstrip("/"), token)


@dataclass(frozen=True)
class Claim:
    claim_id: str
    profile_key: str
    registered: bool
    warming: int
    workers: tuple[WarmSlot, ...]


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

    @property
    def url(self) -> str:
        return self.endpoint.url

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        import requests

        headers = {}
        if self.endpoint.token:
            headers["Authorization"] = f"Bearer {self.endpoint.token}"
        where = f"the farm at {self.url}"
        try:
            response = requests.request(
                method,
                self.url + path,
                json=body,
                headers=headers,
                timeout=(self.timeout, self.timeout),
            )
        except requests.Timeout:
            msg = f"{where} did not answer within {self.timeout:g}s"
            raise FarmError(msg) from None
        except requests.RequestException as exc:
            msg = f"{where} is not reachable ({type(exc).__name__})"
            raise FarmError(msg) from None
        try:
            data = response.json()
        except ValueError:
            msg = f"{where} answered {response.status_code} with something that is not JSON"
            raise FarmError(msg) from None
        if not isinstance(data, dict):
            msg = f"{where} answered {response.status_code} with JSON that is not an object"
            raise FarmError(msg)
        if response.status_code == 401:
            msg = f"{where} refused our token; is it this farm's home? ({data.get('detail')})"
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
    ) -> Claim:
        body = {
            "profile": profile.to_dict(),
            "count": count,
            "modules": list(modules),
            "shadow_tests": list(shadow_tests),
            "client": dict(client or {}),
        }
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
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"the farm at {self.url} answered a claim with an unexpected shape ({exc})"
            raise FarmError(msg) from None

    def release(self, worker_id: str) -> None:
        self._request("POST", f"/api/workers/{worker_id}/release")

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/api/swarm/status")

    def get_config(self) -> dict[str, Any]:
        return self._request("GET", "/api/swarm/config")

    def put_config(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self._request("PUT", "/api/swarm/config", dict(changes))

    def drain(self, profile: str = "all") -> list[str]:
        drained = self._request("POST", "/api/swarm/drain", {"profile": profile}).get("drained")
        return [str(key) for key in drained] if isinstance(drained, list) else []
