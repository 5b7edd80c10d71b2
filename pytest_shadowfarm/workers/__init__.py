"""The run's workers: one registry of every worker, where workers come from, their health.

- :mod:`.registry`: :class:`~.registry.WorkerRegistry`, the one record of each xdist worker
  of a run (source, warm, state, times, how it ended);
- :mod:`.source`: the :class:`~.source.WorkerSource` seam (local popen today, the farm's
  warm workers in :mod:`pytest_shadowfarm.farm.source`);
- :mod:`.ceiling`, :mod:`.trend`, :mod:`.thresholds`, :mod:`.health`: the memory ceiling
  a run really has and the prediction of each worker's failure (no pytest import);
- :mod:`.watch`: the health watch that acts on it in a run.
"""
