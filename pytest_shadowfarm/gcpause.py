"""Bulk work of the plugin without the garbage collector's interruptions.

At session start and end the plugin creates tens of thousands of short-lived objects
(history rows, estimates, result records) inside a process that holds the whole
collected suite. Each few hundred allocations start a young-generation collection,
and every tenth of those can start a full one, which walks every object of the
suite: for 5,000 tests two extra full collections cost about 0.2 s (measured with
``gc.callbacks``). Our bulk work creates no reference cycles worth collecting, so
it runs with the collector paused; the young objects it leaves are examined by the
next collection as usual. A collector the user disabled stays disabled.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused_gc"]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with automatic garbage collection off, then as it was."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
