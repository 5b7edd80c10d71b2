"""The run's process context that a warm worker takes over, besides cwd, env and umask.

A popen worker inherits its controller's resource limits, CPU affinity and niceness,
and reads its environment (``TZ``, ``PYTHONWARNINGS``, locale, ``PYTHONHASHSEED``) at
start. A warm worker started earlier, by the daemon, has the daemon's. The controller
sends :func:`process_context` in its hello; the worker applies it in-process
(``farm_server.context``) or refuses the run, saying why, when it cannot (a hash seed is
fixed when an interpreter starts).

Stdlib only: the plugin builds it, the worker reads it.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Mapping
from typing import Any

__all__ = ["RLIMITS", "hashseed", "process_context"]

#: the resource limits a run passes on (RLIMIT_STACK cannot change for a running main thread)
RLIMITS = ("AS", "CORE", "CPU", "DATA", "FSIZE", "MEMLOCK", "NOFILE", "NPROC", "RSS")


def process_context() -> dict[str, Any]:
    """This process's resource limits, CPU affinity and niceness (JSON values)."""
    limits = {}
    for name in RLIMITS:
        number = getattr(resource, f"RLIMIT_{name}", None)
        if number is not None:
            with contextlib.suppress(OSError, ValueError):
                limits[name] = list(resource.getrlimit(number))
    context: dict[str, Any] = {"rlimits": limits}
    with contextlib.suppress(OSError, AttributeError):
        context["affinity"] = sorted(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):
        context["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    return context


def hashseed(env: Mapping[str, str]) -> str:
    """The hash seed an interpreter started with ``env`` uses ("random" unless fixed)."""
    value = env.get("PYTHONHASHSEED", "").strip()
    return "random" if value in ("", "random") else value
