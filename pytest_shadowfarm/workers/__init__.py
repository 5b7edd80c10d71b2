"""The run's workers: one registry of every worker, and where workers come from.

- :mod:`.registry`: :class:`~.registry.WorkerRegistry`, the one record of each xdist worker
  of a run (source, warm, state, times, how it ended);
- :mod:`.source`: the :class:`~.source.WorkerSource` seam (local popen today, the farm's
  warm workers in :mod:`pytest_shadowfarm.farm.source`).
"""
