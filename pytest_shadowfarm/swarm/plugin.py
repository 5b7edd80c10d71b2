"""What :mod:`pytest_shadowfarm.plugin` calls for the swarm: one function per place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.settings import Settings
    from pytest_shadowfarm.swarm.controller import SwarmPlugin
    from pytest_shadowfarm.swarm.farmlink import FarmSession
    from pytest_shadowfarm.workers.source import WorkerSource

__all__ = ["cmdline_main", "configure_worker", "make_controller"]

# The controller's modules are imported where they are used: an xdist worker only
# samples its telemetry (telemetry.py) and must not pay for the scaler at its start.


def cmdline_main(config: pytest.Config, settings: Settings) -> None:
    """Before xdist reads ``-n``: ``--sf-workers MIN:MAX`` alone starts MIN workers."""
    from pytest_shadowfarm.swarm.controller import apply_worker_range

    apply_worker_range(config, settings)


def make_controller(
    config: pytest.Config,
    run: Run,
    *,
    source: WorkerSource | None,
    farm: FarmSession | None,
) -> SwarmPlugin | None:
    """Telemetry (and scaling with ``--sf-workers``) whenever xdist is there to use."""
    from pytest_shadowfarm.swarm.controller import SwarmPlugin

    settings = run.settings
    try:
        SwarmPlugin.limits_of(settings)
    except ValueError as exc:
        where = f"{settings.describe('scale_up')} / {settings.describe('scale_down')}"
        raise pytest.UsageError(f"pytest-shadowfarm: {where}: {exc}") from None
    if not config.pluginmanager.hasplugin("xdist"):
        if settings.workers is not None:
            run.warn(f"--sf-workers {settings.workers} needs pytest-xdist; running without workers")
        return None
    return SwarmPlugin(config, run, source=source, farm=farm)


def configure_worker(config: pytest.Config) -> None:
    """In an xdist worker: stream telemetry if the controller opened a channel."""
    from pytest_shadowfarm.swarm.telemetry import register_worker_telemetry

    register_worker_telemetry(config)
