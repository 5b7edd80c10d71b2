"""The farm as a :class:`~pytest_shadowfarm.workers.source.WorkerSource`: claim, hand-off, release.

``reserve`` claims one warm worker per eligible popen spec the run starts with (the
hand-off installed on xdist's group connects them as its workers start); ``start``
adds one worker mid-run through xdist's ``setup_node``, which the hand-off serves with a
freshly claimed warm worker when the farm has one and a cold popen worker otherwise;
``release`` and ``lost`` give claimed workers back (each serves one session and exits;
the farm warms replacements), saying how each handed-over one ended (finished, replaced
and why, crashed) and after how many tests: the farm learns each profile's max age from
that and answers the claim with it (``max_age``).

A farm that is down, slower than its timeout or answers garbage costs at most that and
one warning; the run goes on with cold workers. Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_shadowfarm.errors import FarmError, TrustError
from pytest_shadowfarm.farm.shadow import choose_shadow_tests
from pytest_shadowfarm.workers.source import PopenSource, PutEvent
from shadowfarm_wire.endings import ENDINGS, MaxAge, WorkerEnding
from shadowfarm_wire.plugins import plugin_names

if TYPE_CHECKING:
    from pytest_shadowfarm.farm.client import Claim, FarmClient, FarmEndpoint
    from pytest_shadowfarm.farm.handoff import WarmSlot
    from pytest_shadowfarm.run import Run
    from shadowfarm_wire.home import FarmHome
    from shadowfarm_wire.profile import Profile

__all__ = ["FarmSource"]


class FarmSource:
    """Warm workers from the farm for one run, cold local ones for what it cannot give."""

    name = "farm"

    def __init__(
        self,
        run: Run,
        rootdir: str,
        env: Mapping[str, str] = os.environ,
        args: Sequence[str] = (),
    ) -> None:
        self.run = run
        self.settings = run.settings
        self.rootdir = rootdir
        self.env = env
        #: the run's own arguments (its ``-p`` options go with the claim)
        self.args = tuple(args)
        self.local = PopenSource()
        self.home: FarmHome | None = None
        self.endpoint: FarmEndpoint | None = None
        self.client: FarmClient | None = None
        self.profile: Profile | None = None
        self.claim: Claim | None = None
        #: claimed and not yet given back
        self.claimed: list[WarmSlot] = []
        #: xdist gateway id -> farm worker id of the workers handed over
        self.warm: dict[str, str] = {}
        self.more_allowed = True
        #: the header's line about the farm (None: nothing to say)
        self.header: str | None = None
        #: why the farm's home or endpoint is not trusted ("" if it is, or was not asked)
        self.distrust = ""
        #: farm worker id -> authenticated socket, connected at the claim, not yet used
        self.connected: dict[str, socket.socket] = {}
        #: the cold workers' endings were sent (at the end of the run)
        self.cold_reported = False

    # --- finding the farm ---------------------------------------------------------------

    def discover(self) -> FarmEndpoint | None:
        """Find the farm (cheap: a file and a pid); remember it for the claim."""
        from pytest_shadowfarm.farm.client import discover
        from shadowfarm_wire.home import FarmHome

        self.home = FarmHome.resolve(self.settings.farm_home, self.env)
        try:
            self.endpoint = discover(self.settings.farm, self.home)
        except TrustError as exc:
            self.distrust = str(exc)
            self.endpoint = None
        return self.endpoint

    # --- the WorkerSource seam ------------------------------------------------------------

    def reserve(self, count: int) -> int:
        """Claim up to ``count`` warm workers for the run's start; return how many came."""
        from pytest_shadowfarm.farm.client import FarmClient

        if count == 0:
            return 0
        endpoint = self.endpoint if self.endpoint is not None else self.discover()
        if endpoint is None and self.distrust:
            self.run.warn(f"farm not used, workers start cold: {self.distrust}")
            self.header = f"shadowfarm: farm not trusted; {count} cold workers"
            return 0
        if endpoint is None:
            self.header = "shadowfarm: no farm running; cold workers"
            return 0
        self.client = FarmClient(endpoint)
        started = time.perf_counter()
        try:
            self.profile = self._profile()
            self.claim = self.client.claim(
                self.profile,
                count,
                modules=self.settings.warm_imports,
                shadow_tests=self._shadow_tests(),
                client={"pid": os.getpid(), "argv": " ".join(sys.argv)[:500]},
                plugins=plugin_names(self.args),
            )
        except FarmError as exc:
            self.client = None
            self.run.warn(f"farm not used, workers start cold: {exc}")
            self.header = f"shadowfarm: farm unavailable; {count} cold workers"
            return 0
        self.claimed = list(self.claim.workers)
        # Connect (and check) the claimed workers now, so that the header counts only
        # workers that really took the hand-off; xdist starts its nodes on these sockets.
        for index, slot in enumerate(list(self.claimed)):
            try:
                self.connected[slot.id] = self._connect(slot, f"gw{index}")
            except (OSError, EOFError) as exc:
                self.handoff_failed(slot, exc)
        warm = len(self.connected)
        self.header = f"shadowfarm: {warm} warm workers (farm), {count - warm} cold"
        if self.claim.registered:
            self.header += f"; new profile {self.claim.profile_key}, the farm warms it now"
        self.run.events.emit(
            "farm_claim",
            claim=self.claim.claim_id,
            profile=self.claim.profile_key,
            requested=count,
            granted=warm,
            seconds=round(time.perf_counter() - started, 6),
        )
        return warm

    def start(self, nodemanager: Any, putevent: PutEvent) -> Any:
        # The hand-off installed on the group serves this start with claim_one().
        return self.local.start(nodemanager, putevent)

    def can_start(self, specs: Any) -> bool:
        return self.local.can_start(specs)

    def release(self, worker_id: str) -> None:
        farm_id = self.warm.get(worker_id)
        slots = [s for s in self.claimed if s.id == farm_id]
        self._give_back(slots)

    def lost(self, worker_id: str, error: object) -> None:
        self.release(worker_id)

    def release_all(self) -> None:
        self._give_back(list(self.claimed))
        self._report_cold_endings()

    def max_age(self) -> MaxAge:
        return self.claim.max_age if self.claim is not None else MaxAge()

    def ending(self, farm_id: str) -> WorkerEnding | None:
        """How the run's worker that farm worker ``farm_id`` became ended (None: unused)."""
        gateway = next((gw for gw, fid in self.warm.items() if fid == farm_id), None)
        return self._ending_of(gateway) if gateway is not None else None

    def _report_cold_endings(self) -> None:
        """Tell the farm how the run's cold workers ended, once: they ran the same profile."""
        if self.client is None or self.claim is None or self.cold_reported:
            return
        self.cold_reported = True
        endings = [
            ending
            for record in self.run.workers
            if record.id not in self.warm and (ending := self._ending_of(record.id)) is not None
        ]
        if endings:
            with contextlib.suppress(FarmError):  # the farm went away: it learns less
                self.client.report_endings(self.claim.profile_key, endings[:256])

    def _ending_of(self, gateway: str) -> WorkerEnding | None:
        record = self.run.workers.get(gateway)
        if record is None or record.ready_s is None:
            return None  # never started its session: it says nothing about the profile
        ended = record.ended if record.ended in ENDINGS else "finished"
        end = record.left_s if record.left_s is not None else self.run.now()
        start = record.ready_s if record.ready_s is not None else record.joined_s
        tests = sum(1 for t in self.run.recorder.traces.values() if t.worker == gateway)
        try:
            return WorkerEnding(
                ended=str(ended),
                cause=record.cause or "",
                tests=tests,
                seconds=max(0.0, end - start),
                reason=record.reason or "",
            )
        except ValueError:
            return None  # a cause the wire does not know: release without an ending

    # --- the hand-off's callbacks ---------------------------------------------------------

    def claim_one(self) -> WarmSlot | None:
        """One more warm worker for a worker added mid-run (None: start it cold)."""
        if self.client is None or self.profile is None or not self.more_allowed:
            return None
        try:
            claim = self.client.claim(self.profile, 1, modules=self.settings.warm_imports)
        except FarmError as exc:
            self.more_allowed = False  # one slow answer per run is enough
            self.run.warn(f"farm not asked again in this run: {exc}")
            return None
        self.claimed.extend(claim.workers)
        return claim.workers[0] if claim.workers else None

    def connect(self, slot: WarmSlot, session_id: str) -> socket.socket:
        """The socket of a claimed worker: connected at the claim, or now (checked)."""
        sock = self.connected.pop(slot.id, None)
        return sock if sock is not None else self._connect(slot, session_id)

    def handed_over(self, gateway: Any, slot: WarmSlot) -> None:
        self.warm[str(gateway.id)] = slot.id

    def handoff_failed(self, slot: WarmSlot, exc: BaseException) -> None:
        self.run.warn(
            f"farm worker {slot.id} could not be handed over ({exc}); a cold worker replaces it"
        )
        self.run.events.emit("farm_handoff_failed", worker=slot.id, error=str(exc))
        self._give_back([slot])

    # --- inside ---------------------------------------------------------------------------

    def _connect(self, slot: WarmSlot, session_id: str) -> socket.socket:
        from pytest_shadowfarm.farm.handoff import connect_worker
        from shadowfarm_wire.trust import check_worker_socket

        if self.home is None:
            msg = f"farm worker {slot.id}: no verified farm home to check its socket against"
            raise TrustError(msg)
        check_worker_socket(self.home, slot.socket)
        return connect_worker(slot, session_id)

    def _give_back(self, slots: list[WarmSlot]) -> None:
        for slot in slots:
            with contextlib.suppress(ValueError):
                self.claimed.remove(slot)
            sock = self.connected.pop(slot.id, None)
            if sock is not None:  # never used: closing it ends that worker's session
                sock.close()
        if self.client is None:
            return
        for slot in slots:
            try:
                self.client.release(slot.id, self.ending(slot.id))
            except FarmError:
                # A farm that went away has ended its workers itself; one that is slow
                # ends them on its own too (claim_timeout_s): do not wait for it N times.
                return

    def _profile(self) -> Profile:
        from shadowfarm_wire.profile import current_profile

        cache = self.home.profile_cache if self.home is not None else None
        return current_profile(self.rootdir, self.settings.warm_imports, cache=cache)

    def _shadow_tests(self) -> list[str]:
        store = self.run.store
        if store is None or self.settings.shadow_budget <= 0:
            return []
        try:
            last = store.last_results()
        except Exception:  # a damaged history only costs the shadow subset
            return []
        durations = {
            nodeid: (r.outcome, sum(s or 0.0 for s in (r.setup_s, r.call_s, r.teardown_s)))
            for nodeid, r in last.items()
        }
        return choose_shadow_tests(durations, self.settings.shadow_budget)
