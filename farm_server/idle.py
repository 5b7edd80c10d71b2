"""Warming at idle priority: a replacement warming during a run takes no CPU from it.

A warm worker runs its imports and shadow run inside :func:`lowered_priority`, then
gets its old priority back before it serves (when the kernel allows it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["AUTOGROUP", "lowered_priority"]


#: this process's autogroup: its name and nice value, e.g. "/autogroup-1343 nice 0"
AUTOGROUP = Path("/proc/self/autogroup")


@contextlib.contextmanager
def lowered_priority(nice: int) -> Iterator[bool]:
    """Run the block at idle priority; yield whether the old priority can come back.

    The thread runs ``nice`` steps nicer and, where Linux offers it, under SCHED_IDLE:
    warming then takes only CPU time that nothing else wants, so replacements warming
    during a run do not slow that run down. Threads started meanwhile (a BLAS pool at
    ``import numpy``) inherit that priority, so every thread of the process is restored
    afterwards. An unprivileged process may raise its priority again only within
    RLIMIT_NICE (setpriority(2), sched(7)); when that is not allowed the worker keeps
    the warm-up priority, and the readiness report says so.

    A worker leads its own session, and with Linux's autogroup scheduling each session
    is a group that gets its fair share of the CPU whatever the priority of the threads
    inside: a SCHED_IDLE worker alone in its group took as much CPU as a run's testing
    worker in another (measured: 50/50 on one core). So the group's own nice value
    (``/proc/self/autogroup``, sched(7)) is lowered too, and set back afterwards.
    """
    if nice <= 0:
        yield True
        return
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, min(before + nice, 19))
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, idle, os.sched_param(0))
    group = _own_autogroup_nice()
    if group is not None:
        _set_autogroup_nice(min(group + nice, 19))
    try:
        yield _can_restore(before)
    finally:
        _restore_threads(before, idle is not None)
        if group is not None:
            _set_autogroup_nice(group)


def _own_autogroup_nice() -> int | None:
    """The nice value of this process's autogroup when the group is this session's
    alone (this process leads it); None without autogroup or in someone else's group,
    whose other members must keep their share."""
    try:
        if os.getsid(0) != os.getpid():
            return None
        return int(AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _set_autogroup_nice(nice: int) -> None:
    # Raising it back needs no privilege unless below 0 (sched(7), "autogroup").
    with contextlib.suppress(OSError):
        AUTOGROUP.write_text(str(nice))


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _restore_threads(nice: int, idle: bool) -> None:
    for tid in _threads():
        with contextlib.suppress(OSError):
            if idle:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, nice)


def _can_restore(before: int) -> bool:
    if os.geteuid() == 0:
        return True
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    except (ImportError, AttributeError, OSError):
        return False
    return soft == resource.RLIM_INFINITY or 20 - soft <= before
