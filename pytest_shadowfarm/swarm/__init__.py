"""The swarm: live telemetry from every xdist worker, and scaling the worker count mid-run.

* :mod:`.telemetry` runs in each worker: a psutil sampler thread and per-test CPU/peak RSS
  (:mod:`.usage`: how a report carries it);
* :mod:`.channel` is the controller's end of the telemetry channels;
* :mod:`.policy` decides the swarm size (pure);
* :mod:`.source` is where new workers come from (cold popen, or the farm's warm ones);
* :mod:`.controller` is the controller-side plugin that ties them to xdist's main loop.

The names below come from :mod:`.policy` on first use (PEP 562): the controller of every
run imports :mod:`.usage` through this package, and needs no policy to read a report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_shadowfarm.lazy import lazy_exports

if TYPE_CHECKING:
    from pytest_shadowfarm.swarm.policy import Decision, Limits, SwarmState, WorkerRange, decide

__all__ = ["Decision", "Limits", "SwarmState", "WorkerRange", "decide"]

__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "policy"))
