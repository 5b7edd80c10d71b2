"""The farm in a pytest run: the hooks around :class:`~pytest_shadowfarm.farm.source.FarmSource`.

Made by :func:`make_controller` for the controller of an xdist run (``-n N``). Order of
a run:

1. ``pytest_sessionstart`` (after the session writer opened the history, before xdist
   starts its workers and before the header prints): claim one warm worker per eligible
   popen spec (``FarmSource.reserve``);
2. ``pytest_report_header``: one line, e.g. ``shadowfarm: 2 warm workers (farm), 0 cold``;
3. ``pytest_xdist_setupnodes``: the claimed workers replace the cold popen start
   (``handoff.install``); a worker that cannot be handed over is replaced by a cold one;
4. ``pytest_unconfigure``: every claimed worker is released.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import check_internals, distributing, dsession
from pytest_shadowfarm.farm.handoff import eligible, eligible_specs, install
from pytest_shadowfarm.farm.source import FarmSource

if TYPE_CHECKING:
    from pytest_shadowfarm.farm.client import Claim, FarmClient
    from pytest_shadowfarm.run import Run

__all__ = ["FarmPlugin", "make_controller"]


class FarmPlugin:
    """Claims, hand-off and release of farm workers for one controller session."""

    def __init__(
        self,
        config: pytest.Config,
        run: Run,
        env: Mapping[str, str] = os.environ,
        *,
        off_reason: str | None = None,
    ) -> None:
        self.config = config
        self.run = run
        self.off_reason = off_reason
        self.source = FarmSource(run, str(config.rootpath), env, config.invocation_params.args)
        self.requested = 0
        self.header: str | None = None

    @property
    def client(self) -> FarmClient | None:
        return self.source.client

    @property
    def claim(self) -> Claim | None:
        return self.source.claim

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # A plain hookimpl: after the tryfirst ones (the session writer opens the history),
        # and before the trylast ones (the terminal header, xdist starting its workers).
        self.requested = eligible_specs(self.config)
        if self.requested == 0:
            return
        if self.off_reason is not None:
            self.header = f"shadowfarm: cold workers ({self.off_reason})"
            return
        self.source.reserve(self.requested)
        self.header = self.source.header

    def pytest_report_header(self) -> str | None:
        return self.header

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        source = self.source
        if source.client is None:
            return
        install(
            dsession(config).nodemanager.group,
            list(source.claimed),
            on_warm=source.handed_over,
            on_failure=source.handoff_failed,
            more=source.claim_one,
            more_after=sum(1 for spec in specs if eligible(spec)),
            connect=source.connect,
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.source.client is None:
            return
        warm_map = self.source.warm
        started = len(self.run.workers) or self.requested
        warm = ", ".join(f"{gw} <- {worker}" for gw, worker in sorted(warm_map.items()))
        terminalreporter.write_line(
            f"farm: {len(warm_map)} warm workers{f' ({warm})' if warm else ''}, "
            f"{max(started - len(warm_map), 0)} cold"
        )

    def pytest_unconfigure(self) -> None:
        self.source.release_all()


def make_controller(config: pytest.Config, run: Run) -> FarmPlugin | None:
    """The farm plugin, when xdist distributes this run and the farm is not off."""
    if run.settings.farm == "off" or not distributing(config):
        return None
    # With untested xdist/execnet versions the scheduler has already warned with the
    # reason; the header says that the hand-off is off too.
    internals = check_internals()
    off = None if internals.ok else "warm hand-off needs a tested xdist/execnet"
    return FarmPlugin(config, run, off_reason=off)
