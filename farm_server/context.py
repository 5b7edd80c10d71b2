"""A claimed worker takes its run's process context, or refuses the run saying why.

Applied in-process, after the environment: ``time.tzset()`` (``TZ``), the locale's
``LC_CTYPE`` (as an interpreter does at start), warnings filters rebuilt from the run's
``PYTHONWARNINGS``, resource limits, CPU affinity and niceness
(:func:`shadowfarm_wire.context.process_context`). What cannot be applied refuses the
run: a ``PYTHONHASHSEED`` other than the worker's (string hashing is seeded when the
interpreter starts), or a limit the worker may not take (a hard limit above its own).

:func:`as_popen_worker` then gives the process what a popen worker (``python -c``) has
and a farm worker (``python -m farm_server.worker``) does not: ``sys.argv`` and a bare
``__main__``.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.machinery
import locale
import os
import resource
import sys
import time
import types
import warnings
from collections.abc import Mapping
from typing import Any

from shadowfarm_wire.context import RLIMITS, hashseed

__all__ = ["apply_context", "as_popen_worker"]


def apply_context(hello: Mapping[str, Any], own_hashseed: str) -> str:
    """Apply the run's context from its hello; "" when done, else why this worker cannot."""
    env = hello["env"]
    wanted = hashseed(env)
    if wanted != own_hashseed:
        return (
            f"the run's PYTHONHASHSEED is {wanted}, this worker's is {own_hashseed} (fixed "
            "when it started); unset PYTHONHASHSEED, or start the farm with the same one"
        )
    os.environ.clear()
    os.environ.update(env)
    if hasattr(time, "tzset"):
        time.tzset()
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    _reset_warnings(env.get("PYTHONWARNINGS", ""))
    problem = _apply_rlimits(hello.get("rlimits", {}))
    if problem:
        return problem
    affinity = hello.get("affinity")
    if isinstance(affinity, list) and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, [int(c) for c in affinity])
        except (OSError, ValueError, TypeError) as exc:
            return f"cannot take the run's CPU affinity {affinity}: {exc}"
    nice = hello.get("nice")
    if isinstance(nice, int):
        # Raising niceness always works; lowering it may not (RLIMIT_NICE): the worker
        # then keeps the warm-up's, as the farm's documentation says.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    return ""


def as_popen_worker() -> types.ModuleType:
    """``sys.argv`` and ``__main__`` as ``python -c`` has them; returns the worker's own
    ``__main__`` (its running code's globals: the caller keeps it).

    argparse and click name programs after ``sys.argv[0]``; multiprocessing's spawn and
    forkserver children re-run ``__main__`` by its spec or file, which would import the
    farm worker in every child of a test.
    """
    sys.argv[:] = ["-c"]
    own = sys.modules["__main__"]
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    main.__loader__ = importlib.machinery.BuiltinImporter
    main.__annotations__ = {}
    sys.modules["__main__"] = main
    return own


def _reset_warnings(pythonwarnings: str) -> None:
    """The filters an interpreter started with this ``PYTHONWARNINGS`` would have."""
    options = [o for o in pythonwarnings.split(",") if o.strip()]
    warnings.resetwarnings()
    # CPython's defaults in a release build (the warnings module's _filters_mutated ones)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
    warnings.filterwarnings("ignore", category=DeprecationWarning, append=True)
    warnings.simplefilter("ignore", PendingDeprecationWarning, append=True)
    warnings.simplefilter("ignore", ImportWarning, append=True)
    warnings.simplefilter("ignore", ResourceWarning, append=True)
    sys.warnoptions[:] = options
    with contextlib.suppress(Exception):  # a malformed option: python warns and ignores it
        warnings._processoptions(options)  # type: ignore[attr-defined]


def _apply_rlimits(limits: object) -> str:
    if not isinstance(limits, dict):
        return "rlimits must map names to [soft, hard]"
    for name, value in limits.items():
        number = getattr(resource, f"RLIMIT_{name}", None) if name in RLIMITS else None
        if number is None:
            continue
        try:
            soft, hard = (int(v) for v in value)
            resource.setrlimit(number, (soft, hard))
        except (ValueError, TypeError, OSError) as exc:
            return f"cannot take the run's RLIMIT_{name} {value}: {exc}"
    return ""
