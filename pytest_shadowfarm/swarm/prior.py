"""What the run will be, before any worker has collected: the last run of the same command.

The controller learns the test ids only when the first worker has collected them, a
second or two after the start. A swarm that waits for that starts its extra cold
workers that much later than a static ``-n MAX`` would. When the history has a run of
the same command line (ignoring the options that only say how many workers and where
reports go), that run's tests, estimated with today's ETCs, are the prior: the first
scaling decision is taken on it at once, and the real collection replaces it as soon
as it arrives (which can drain what the prior over-asked).

Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Prior", "comparable_argv", "find_prior"]

#: options that say how the run is spread, not what it runs; (takes a value?)
_SPREAD_OPTIONS = {
    "-n": True,
    "--numprocesses": True,
    "--maxprocesses": True,
    "--dist": True,
    "--tx": True,
    "--max-worker-restart": True,
    "-d": False,
}


def comparable_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` without the worker-count, xdist-distribution and ``--sf-*`` options."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            continue
        name, eq, _ = arg.partition("=")
        if name.startswith("--sf-"):
            skip_value = not eq
            continue
        if name in _SPREAD_OPTIONS:
            skip_value = _SPREAD_OPTIONS[name] and not eq
            continue
        if arg.startswith("-n") and len(arg) > 2 and arg[2:].isalnum():
            continue  # -n4, -nauto
        kept.append(arg)
    return tuple(kept)


@dataclass(frozen=True)
class Prior:
    """The tests of the last comparable run and what they cost then."""

    nodeids: tuple[str, ...]
    #: cpu_s / wall over the tests that have both (None: not measured)
    cpu_fraction: float | None


def find_prior(
    argv: Sequence[str],
    runs: Iterable[tuple[int, Sequence[str]]],
    run_of_results: Mapping[str, Sequence[int]],
    usage: Callable[[str], tuple[float | None, float | None]],
) -> Prior | None:
    """The prior from the newest run whose comparable argv equals this run's.

    ``runs``: (run id, argv) oldest first; ``run_of_results``: nodeid -> the run ids it
    has results in; ``usage(nodeid)`` -> (cpu_s, duration_s) of its newest result.
    """
    wanted = comparable_argv(argv)
    match = None
    for run_id, run_argv in runs:
        if comparable_argv(run_argv) == wanted:
            match = run_id
    if match is None:
        return None
    nodeids = tuple(n for n, run_ids in run_of_results.items() if match in run_ids)
    if not nodeids:
        return None
    cpu = wall = 0.0
    for nodeid in nodeids:
        cpu_s, duration_s = usage(nodeid)
        if cpu_s is not None and duration_s is not None and duration_s > 0:
            cpu += cpu_s
            wall += duration_s
    return Prior(nodeids, cpu / wall if wall > 0 else None)
