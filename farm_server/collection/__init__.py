"""A warm worker's collection, prepared before the run asks and reused when it matches.

- :mod:`.context`: what a run's worker starts from (args, environment, cwd, sys.path,
  xdist's workerinput), reported by each claimed worker and kept by the daemon in
  memory, so the next worker of the profile can prepare for the same run;
- :mod:`.prepare`: configure pytest and collect under that context during warm-up, and
  fingerprint every file and directory the collection depended on;
- :mod:`.reuse`: at the hand-off, give the run the prepared session when its context and
  fingerprint match, or throw it away and let the run collect afresh.
"""
