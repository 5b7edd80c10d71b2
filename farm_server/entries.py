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
    #: the run said how this worker ended (an ending is recorded once per worker)
    ending_reported: bool = False
    #: the warm-up's current step while warming: {"step", "done", "total", "since"}
    progress: dict[str, Any] | None = None
    #: the xdist worker id of the run it collected for ("" if it did not)
    expects: str = ""
    #: what its run did with that collection: "reused", or "collected: <why>"
    collection: str = ""

    @property
    def pid(self) -> int | None:
        return self.handle.pid if self.handle is not None else None

    def overdue(self, now: float, claim_timeout_s: float, release_grace_s: float) -> str:
        """Why this claimed worker must end now ("" if it may go on)."""
        if self.state != "claimed":
            return ""
        if self.connected is None and self.released is not None:
            return "released without being used"
        if (
            self.connected is None
            and self.claimed is not None
            and now - self.claimed > claim_timeout_s
        ):
            return "claimed but never connected"
        if self.released is not None and now - self.released > release_grace_s:
            return "still running after release"
        return ""


@dataclass
class ProfileEntry:
    profile: Profile
    registered: float
    shadow_tests: list[str] = field(default_factory=list)
    #: the last claim's ``-p`` options (plugin names): its warm-ups load the same plugins
    plugins: list[str] = field(default_factory=list)
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

    def took_ready(self, worker: Worker) -> str:
        """Learn from ``worker``'s readiness report; return why it must not serve ("" if
        it may)."""
        report = worker.report or {}
        self.failures = 0
        self.health = "healthy" if report.get("ok") else "failing"
        if worker.ready is not None:
            self.warmup_times = [*self.warmup_times[-19:], worker.ready - worker.spawned]
        if report.get("unfit"):
            # Its purge could not be made consistent: serving it warm could change test
            # outcomes. The profile runs cold until it is registered anew.
            self.unfit = str(report["unfit"])
        return self.unfit


@dataclass(frozen=True)
class ClaimResult:
    claim_id: str
    profile_key: str
    registered: bool
    workers: list[Worker]
    warming: int
