"""What the run will be, before any worker has collected: the last run of the same command.

The controller learns the test ids only when the first worker has collected them, a
second or two after the start. A swarm that waits for that starts its extra cold
workers that much later than a static ``-n MAX`` would. When the history has a run of
the same command line (ignoring the options that only say how many workers and where
reports go), that run's tests, estimated with today's ETCs, are the prior: the first
scaling decision is taken on it at once, and the real collection replaces it as soon
as it arrives (which can drain what the prior over-asked). The same run says how
I/O-bound the tests were and how long its first cold worker took to start (the time to
its first test), which the first decision would otherwise have to guess.

Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["IO_BOUND", "Newest", "PastRun", "Prior", "comparable_argv", "find_prior"]

#: a past run's cpu_s / wall at or below this reads as I/O-bound (sleeps, network)
IO_BOUND = 0.1

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
    cpu_fraction: float | None = None
    #: session start to the first test of that run, if it ran on xdist workers: what a
    #: cold worker took to start and collect then (None: not known)
    startup_s: float | None = None

    @property
    def io_bound_fraction(self) -> float | None:
        """``cpu_fraction`` if that run clearly waited (<= IO_BOUND), else None.

        The history keeps CPU seconds, not the time spent waiting for a CPU: a CPU-bound
        suite run on a busy host looks partly idle there. So only a clearly waiting
        suite may grow the swarm past the cores before live telemetry says so.
        """
        fraction = self.cpu_fraction
        return fraction if fraction is not None and fraction <= IO_BOUND else None


@dataclass(frozen=True)
class PastRun:
    run_id: int
    argv: Sequence[str]
    #: how many xdist workers it had (0: in one process)
    workers: int


@dataclass(frozen=True)
class Newest:
    """The newest result of a test: which run, and what it cost."""

    run_id: int
    cpu_s: float | None
    duration_s: float | None
    start_s: float | None


def find_prior(
    argv: Sequence[str],
    runs: Iterable[PastRun],
    run_of_results: Mapping[str, Sequence[int]],
    newest: Mapping[str, Newest],
) -> Prior | None:
    """The prior from the newest run whose comparable argv equals this run's.

    ``runs``: oldest first; ``run_of_results``: nodeid -> the run ids it has results in;
    ``newest``: nodeid -> its newest result. Usage and start-up are read from the tests
    whose newest result is from the matched run.
    """
    wanted = comparable_argv(argv)
    match = None
    for run in runs:
        if comparable_argv(run.argv) == wanted:
            match = run
    if match is None:
        return None
    nodeids = tuple(n for n, run_ids in run_of_results.items() if match.run_id in run_ids)
    if not nodeids:
        return None
    cpu = wall = 0.0
    starts: list[float] = []
    for nodeid in nodeids:
        result = newest.get(nodeid)
        if result is None or result.run_id != match.run_id:
            continue
        if result.cpu_s is not None and result.duration_s is not None and result.duration_s > 0:
            cpu += result.cpu_s
            wall += result.duration_s
        if result.start_s is not None and result.start_s > 0:
            starts.append(result.start_s)
    startup = min(starts) if starts and match.workers > 0 else None
    return Prior(nodeids, cpu / wall if wall > 0 else None, startup)
