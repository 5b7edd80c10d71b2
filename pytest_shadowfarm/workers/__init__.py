"""Where a run's workers come from, and whether they stay healthy.

- :mod:`.source`: the :class:`~.source.WorkerSource` seam (local popen here, the farm's
  warm workers in :mod:`pytest_shadowfarm.farm.source`);
- :mod:`.ceiling`, :mod:`.trend`, :mod:`.thresholds`, :mod:`.health`: the memory ceiling
  a run really has and the prediction of each worker's failure (no pytest import);
- :mod:`.watch`: the health watch that acts on those predictions in a run.

The registry of the run's workers is :mod:`pytest_shadowfarm.registry`, part of the run
model.
"""
