"""Leave a warm worker's heap as a fresh process would have it before it is offered.

The shadow run and the purge leave garbage behind: the dropped modules' dicts and
functions form reference cycles that only a full collection frees, and pytest's
session (items, fixtures, reports) waits for one too. Until then every gc pass of the
run walks them: a warm worker measured 2.5x the gc-tracked objects of a cold one and a
full collection 5x as long. So after the purge the worker

1. forgets the last exception (``sys.last_*`` keep a traceback and its frames alive)
   and the shadow run's pytest session: a pytest plugin module kept warm was imported
   through that run's assertion-rewriting hook, which stays its ``__loader__`` and holds
   the run's config, and through it the session, every collected item and the project
   modules the items' classes came from (on pygments 110k objects, 45 MB);
2. collects until nothing more is found (finalizers can free more cycles);
3. hands freed memory back to the OS (``malloc_trim``: glibc keeps freed heap pages);
4. ``gc.freeze()``\\ s the survivors: the imported third-party code is permanent, and a
   run's collections then only walk what the run itself creates. A cold worker's
   full collections walk its imports every time; a frozen warm worker's do not.

Thresholds stay as they are: ``gc.freeze`` leaves the count of the oldest generation
at its last full collection, so the run's first full collection comes after about as
many new long-lived objects as in a cold worker (CPython's ``long_lived_pending >
long_lived_total / 4`` rule).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["HeapState", "heap_state", "rss_kb", "settle"]

_MAX_PASSES = 4


@dataclass(frozen=True)
class HeapState:
    tracked: int  # gc-tracked objects outside the permanent generation
    frozen: int  # objects gc.freeze() moved to the permanent generation
    rss_kb: int
    collected: int = 0  # objects the settling collections freed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_kb(status: str = "/proc/self/status") -> int:
    """Resident set size in kB (0 where /proc is missing)."""
    try:
        with open(status, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def heap_state(collected: int = 0) -> HeapState:
    return HeapState(len(gc.get_objects()), gc.get_freeze_count(), rss_kb(), collected)


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc only; elsewhere a no-op


def detach_stale_loaders() -> int:
    """Unhook ended pytest configs from the rewriting loaders of kept modules; how many.

    A loader pytest still uses sits in ``sys.meta_path`` and is left alone; an ended
    one is only a module's ``__loader__`` now (pytest checks its type, never its config).
    """
    live = {id(finder) for finder in sys.meta_path}
    detached = 0
    for module in list(sys.modules.values()):
        loader: Any = getattr(module, "__loader__", None)
        if type(loader).__name__ != "AssertionRewritingHook" or id(loader) in live:
            continue
        if getattr(loader, "config", None) is not None or getattr(loader, "session", None):
            loader.config = None
            loader.session = None
            detached += 1
    return detached


def settle(freeze: bool = True) -> HeapState:
    """Free what the warm-up left, then freeze the rest (see the module doc)."""
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        with contextlib.suppress(AttributeError):
            delattr(sys, name)
    detach_stale_loaders()
    collected = 0
    for _ in range(_MAX_PASSES):
        found = gc.collect()
        collected += found
        if not found:
            break
    _malloc_trim()
    if freeze:
        gc.freeze()
    return heap_state(collected)
