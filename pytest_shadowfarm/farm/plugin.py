"""The farm in a pytest run: claim warm workers, hand them to xdist, release them.

Registered in the controller of an xdist run (``-n N``) by :func:`configure_controller`.
Order of a run:

1. ``pytest_sessionstart`` (after the controller opened the history, before xdist starts
   its workers and before the header prints): find the farm (``--sf-farm``), compute the
   profile, claim one warm worker per eligible popen spec;
2. ``pytest_report_header``: one line, e.g. ``shadowfarm: 2 warm workers (farm), 0 cold``;
3. ``pytest_xdist_setupnodes``: the claimed workers replace the cold popen start
   (``handoff.install``); a worker that cannot be handed over is replaced by a cold one;
4. ``pytest_unconfigure``: every claimed worker is released (each serves one session
   and exits; the farm warms replacements).

A farm that is down, slower than 2 s or answers garbage costs at most that and one
warning line; the run goes on with cold workers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import check_internals, distributing
from pytest_shadowfarm.errors import FarmError
from pytest_shadowfarm.farm.handoff import WarmSlot, eligible, install
from pytest_shadowfarm.farm.shadow import choose_shadow_tests

if TYPE_CHECKING:
    from farm_server.home import FarmHome
    from pytest_shadowfarm.controller import ShadowFarmPlugin
    from pytest_shadowfarm.farm.client import Claim, FarmClient, FarmEndpoint
    from pytest_shadowfarm.farm.profile import Profile
    from pytest_shadowfarm.settings import Settings

__all__ = ["FarmPlugin", "configure_controller"]


def _import_requests() -> None:
    with contextlib.suppress(Exception):
        import requests  # noqa: F401


def _eligible_specs(config: pytest.Config) -> int:
    """How many of this run's xdist workers a warm worker could stand in for."""
    import execnet
    from xdist.workermanage import parse_tx_spec_config

    try:
        specs = parse_tx_spec_config(config)
    except pytest.UsageError:
        return 0
    return sum(1 for spec in specs if eligible(execnet.XSpec(spec)))


class FarmPlugin:
    """Claims, hand-off and release of farm workers for one controller session."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        controller: ShadowFarmPlugin,
        env: Mapping[str, str] = os.environ,
        *,
        off_reason: str | None = None,
    ) -> None:
        self.config = config
        self.off_reason = off_reason
        self.settings = settings
        self.controller = controller
        self.env = env
        self.client: FarmClient | None = None
        self.profile: Profile | None = None
        self.claim: Claim | None = None
        self.requested = 0
        self.claimed: list[WarmSlot] = []
        self.warm: dict[str, str] = {}  # xdist gateway id -> farm worker id
        self.header: str | None = None
        self.more_allowed = True
        self.home: FarmHome | None = None
        self.endpoint: FarmEndpoint | None = None

    def _event(self, kind: str, **fields: Any) -> None:
        self.controller.events.append(
            {"event": kind, "t": round(self.controller.now(), 6), **fields}
        )

    # --- 1. claim ----------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # A plain hookimpl: after the tryfirst ones (the controller opens the history), and
        # before the trylast ones (the terminal header, xdist starting its workers).
        self.requested = _eligible_specs(self.config)
        if self.requested == 0:
            return
        if self.off_reason is not None:
            self.header = f"shadowfarm: cold workers ({self.off_reason})"
            return
        from pytest_shadowfarm.farm.client import FarmClient

        endpoint = self.endpoint if self.endpoint is not None else self.discover()
        if endpoint is None:
            self.header = "shadowfarm: no farm running; cold workers"
            return
        self.client = FarmClient(endpoint)
        started = time.perf_counter()
        try:
            self.profile = self._profile()
            self.claim = self.client.claim(
                self.profile,
                self.requested,
                modules=self.settings.warm_imports,
                shadow_tests=self._shadow_tests(),
                client={"pid": os.getpid(), "argv": " ".join(sys.argv)[:500]},
            )
        except FarmError as exc:
            self.client = None
            self.controller.warn(f"farm not used, workers start cold: {exc}")
            self.header = f"shadowfarm: farm unavailable; {self.requested} cold workers"
            return
        self.claimed = list(self.claim.workers)
        warm = len(self.claimed)
        self.header = f"shadowfarm: {warm} warm workers (farm), {self.requested - warm} cold"
        if self.claim.registered:
            self.header += f"; new profile {self.claim.profile_key}, the farm warms it now"
        self._event(
            "farm_claim",
            claim=self.claim.claim_id,
            profile=self.claim.profile_key,
            requested=self.requested,
            granted=warm,
            seconds=round(time.perf_counter() - started, 6),
        )

    def discover(self) -> FarmEndpoint | None:
        """Find the farm (cheap: a file and a pid); remember it for the claim."""
        from farm_server.home import FarmHome
        from pytest_shadowfarm.farm.client import discover

        self.home = FarmHome.resolve(self.settings.farm_home, self.env)
        self.endpoint = discover(self.settings.farm, self.home)
        return self.endpoint

    def prefetch(self) -> None:
        """With a farm in sight, import the HTTP client while pytest configures itself.

        ``requests`` takes 50-150 ms to import; in a thread most of that overlaps the
        rest of start-up instead of delaying the claim (the claim's import waits for
        this one if it is not done).
        """
        if self.discover() is not None:
            threading.Thread(
                target=_import_requests, name="shadowfarm-prefetch", daemon=True
            ).start()

    def _profile(self) -> Profile:
        from pytest_shadowfarm.farm.profile import current_profile

        cache = self.home.profile_cache if self.home is not None else None
        return current_profile(str(self.config.rootpath), self.settings.warm_imports, cache=cache)

    def _shadow_tests(self) -> list[str]:
        store = self.controller.store
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

    def pytest_report_header(self) -> str | None:
        return self.header

    # --- 2. hand-off -------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        if self.client is None:
            return
        dsession = config.pluginmanager.getplugin("dsession")
        install(
            dsession.nodemanager.group,
            list(self.claimed),
            on_warm=self._on_warm,
            on_failure=self._on_failure,
            more=self._claim_one,
            more_after=sum(1 for spec in specs if eligible(spec)),
        )

    def _on_warm(self, gateway: Any, slot: WarmSlot) -> None:
        self.warm[str(gateway.id)] = slot.id

    def _on_failure(self, slot: WarmSlot, exc: BaseException) -> None:
        self.controller.warn(
            f"farm worker {slot.id} could not be handed over ({exc}); a cold worker replaces it"
        )
        self._event("farm_handoff_failed", worker=slot.id, error=str(exc))
        self._release([slot])

    def _claim_one(self) -> WarmSlot | None:
        """One more warm worker for a worker the swarm adds mid-run (None: start it cold)."""
        if self.client is None or self.profile is None or not self.more_allowed:
            return None
        try:
            claim = self.client.claim(self.profile, 1, modules=self.settings.warm_imports)
        except FarmError as exc:
            self.more_allowed = False  # one slow answer per run is enough
            self.controller.warn(f"farm not asked again in this run: {exc}")
            return None
        self.claimed.extend(claim.workers)
        return claim.workers[0] if claim.workers else None

    # --- 3. report and release ---------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.client is None:
            return
        started = len(self.controller.workers) or self.requested
        warm = ", ".join(f"{gw} <- {worker}" for gw, worker in sorted(self.warm.items()))
        terminalreporter.write_line(
            f"farm: {len(self.warm)} warm workers{f' ({warm})' if warm else ''}, "
            f"{max(started - len(self.warm), 0)} cold"
        )

    def _release(self, slots: list[WarmSlot]) -> None:
        if self.client is None:
            return
        for slot in slots:
            try:
                self.client.release(slot.id)
            except FarmError:
                # A farm that went away has ended its workers itself; one that is slow
                # ends them on its own too (claim_timeout_s): do not wait for it N times.
                return

    def pytest_unconfigure(self) -> None:
        slots, self.claimed = self.claimed, []
        self._release(slots)


def configure_controller(
    config: pytest.Config, settings: Settings, controller: ShadowFarmPlugin
) -> FarmPlugin | None:
    """Register the farm plugin when xdist distributes this run and the farm is not off."""
    if settings.farm == "off" or not distributing(config):
        return None
    # With untested xdist/execnet versions the scheduler has already warned with the
    # reason; the header says that the hand-off is off too.
    internals = check_internals()
    off = None if internals.ok else "warm hand-off needs a tested xdist/execnet"
    plugin = FarmPlugin(config, settings, controller, off_reason=off)
    config.pluginmanager.register(plugin, "shadowfarm-farm")
    if off is None:
        plugin.prefetch()
    return plugin
