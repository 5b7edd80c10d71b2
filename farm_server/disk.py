"""Is the farm's disk usable? A full disk must show in the status, not kill threads.

When the disk filled up, the SQLite writes made from the threads that follow the
workers raised, those threads died, their workers stayed ``warming`` forever and the
status said all was well. Now every write failure is recorded here (logged once), the
farm reports itself unhealthy (``/api/health`` answers 503, the status says why), and it
recovers by itself: the next write that works, or a probe once space is back, clears it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DiskHealth"]

log = logging.getLogger("shadowfarm.disk")

#: the farm is unhealthy below this much free space (or 5 % of a smaller disk)
MIN_FREE_BYTES = 64 << 20


class DiskHealth:
    """Write failures and free space of the farm's home."""

    def __init__(self, path: Path, usage: Callable[[Path], Any] = shutil.disk_usage) -> None:
        self.path = path
        self.usage = usage
        self.error = ""
        self._lock = threading.Lock()

    def failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            first = not self.error
            self.error = f"{what} failed: {exc}"
        if first:  # once per episode: a full disk must not fill the log too
            log.error("%s; the farm reports itself unhealthy until writes work again", self.error)

    def succeeded(self) -> None:
        with self._lock:
            was, self.error = self.error, ""
        if was:
            log.warning("writes work again (after: %s)", was)

    def problems(self) -> list[str]:
        """What is wrong now ([] when healthy); probes a write to recover from a past error."""
        found = []
        try:
            usage = self.usage(self.path)
            floor = min(MIN_FREE_BYTES, usage.total // 20)
            if usage.free < floor:
                found.append(
                    f"disk nearly full: {usage.free} bytes free under {self.path} (the farm "
                    f"needs {floor}); free some space, the farm recovers by itself"
                )
        except OSError as exc:
            found.append(f"cannot read the free space under {self.path}: {exc}")
        if self.error and not found:
            self._probe()
        if self.error:
            found.append(self.error)
        return found

    def _probe(self) -> None:
        probe = self.path / f".write-probe-{os.getpid()}"
        try:
            probe.write_bytes(b"x" * 4096)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        self.succeeded()
