"""Distributed scheduling on pytest-xdist: dispatch by urgency, balance by ETC.

Modules: :mod:`.policy` (pure: which unit a worker runs next), :mod:`.inputs` (pure:
per-test inputs from the priority engine's ranks), :mod:`.scheduler` (xdist 3.8's
scheduling protocol over the policy), :mod:`.plugin` (the xdist hooks: making the
scheduler, marker priorities and xdist groups from the workers, crash reruns).
"""
