"""The Dask farm in a pytest run: the hooks around :class:`~.source.DaskSource`.

Made by :func:`make_controller` when ``--sf-farm`` names a Dask scheduler
(``dask://HOST:PORT``, ``dask+tls://HOST:PORT``) and xdist distributes the run. Order:

1. ``pytest_sessionstart``: connect, check the hosts, ship the project, claim one hosted
   worker per eligible popen spec (``DaskSource.reserve``);
2. ``pytest_report_header``: ``shadowfarm: 2 workers on dask://A:8786: 2 warm on 2 hosts``;
3. ``pytest_xdist_setupnodes``: the relay gateways replace the popen starts;
4. ``pytest_unconfigure``: unused workers are given back, the client closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.compat import check_internals, dsession
from pytest_shadowfarm.dask.gateway import install
from pytest_shadowfarm.dask.source import DaskSource
from pytest_shadowfarm.farm.handoff import eligible, eligible_specs
from shadowfarm_wire.relay import parse_engine_url

if TYPE_CHECKING:
    from pytest_shadowfarm.run import Run

__all__ = ["DaskPlugin", "make_controller"]


class DaskPlugin:
    """Claim, relay hand-off and release of Dask-hosted workers for one controller."""

    def __init__(self, config: pytest.Config, source: DaskSource, off: str | None) -> None:
        self.config = config
        self.source = source
        self.off = off
        self.header: str | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        count = eligible_specs(self.config)
        if count == 0:
            return
        if self.off is not None:
            self.header = f"shadowfarm: cold workers ({self.off})"
            return
        self.source.reserve(count)
        self.header = self.source.header

    def pytest_report_header(self) -> str | None:
        return self.header

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        if self.source.client is None:
            return
        install(dsession(config).nodemanager.group, self.source.connect, eligible)

    def pytest_sessionfinish(self) -> None:
        # Before the session writer's (trylast) report, so the event is in it. xdist's
        # loop has ended: every worker said it finished; only their goodbyes are uncounted.
        if self.source.relays:
            self.source.run.events.emit("dask_relay", **self.source.traffic())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.source.client is None:
            return
        used = self.source.gateways
        line = ", ".join(f"{gw} on {s.host} ({s.address})" for gw, s in sorted(used.items()))
        traffic = self.source.traffic()
        mb_in, mb_out = traffic["bytes_in"] / 1e6, traffic["bytes_out"] / 1e6
        wire = f"; relays {mb_in:.2f} MB in, {mb_out:.2f} MB out"
        terminalreporter.write_line(
            f"dask: {len(used)} workers{f': {line}' if line else ''}{wire if used else ''}"
        )

    def pytest_unconfigure(self) -> None:
        self.source.release_all()
        self.source.close()


def make_controller(config: pytest.Config, run: Run, pythonpath: Sequence[Path]) -> DaskPlugin:
    engine = parse_engine_url(run.settings.farm)
    assert engine is not None  # compose() checked the scheme
    internals = check_internals()
    off = None if internals.ok else "the Dask hand-off needs a tested xdist/execnet"
    try:
        import distributed  # noqa: F401
    except ImportError:
        off = "--sf-farm dask:// needs Dask: pip install 'pytest-shadowfarm[dask]'"
    source = DaskSource(run, config.rootpath, engine, pythonpath)
    return DaskPlugin(config, source, off)
