"""The farm's records: a warm worker, a registered profile, the answer to a claim.

States of a worker: ``warming`` (started, warm-up running) -> ``warm`` (ready, waiting
for a client) -> ``claimed`` (handed to a run; it serves one session and exits) ->
``gone``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from farm_server.procs import Handle
from shadowfarm_wire.profile import Profile

__all__ = ["STATES", "ClaimResult", "ProfileEntry", "Worker"]

STATES = ("warming", "warm", "claimed", "gone")


@dataclass
class Worker:
    id: str
    profile_key: str
    token: str
    socket: str
    spawned: float
    state: str = "warming"
    handle: Handle | None = None
    ready: float | None = None
    claimed: float | None = None
    connected: float | None = None
    released: float | None = None
    claim_id: str | None = None
    modules: frozenset[str] = frozenset()
    report: dict[str, Any] | None = None
    ended: float | None = None
    end_reason: str = ""
    returncode: int | None = None

    @property
    def pid(self) -> int | None:
        return self.handle.pid if self.handle is not None else None


@dataclass
class ProfileEntry:
    profile: Profile
    registered: float
    shadow_tests: list[str] = field(default_factory=list)
    min_warm: int | None = None  # None: the config's default
    max_warm: int | None = None
    last_claim: float | None = None
    retired: float | None = None
    drained: bool = False
    health: str = "unknown"  # unknown | healthy | failing | broken
    failures: int = 0
    backoff_until: float = 0.0
    warmup_times: list[float] = field(default_factory=list)
    #: why this profile's workers cannot serve warm ("" if they can): runs go cold
    unfit: str = ""

    @property
    def key(self) -> str:
        return self.profile.key


@dataclass(frozen=True)
class ClaimResult:
    claim_id: str
    profile_key: str
    registered: bool
    workers: list[Worker]
    warming: int
