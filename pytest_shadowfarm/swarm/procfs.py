"""Cheap repeated access to this process's own ``/proc`` files (Linux).

A worker reads ``/proc/self/schedstat`` and ``/proc/self/status`` and writes
``/proc/self/clear_refs`` for every test, and its sampler reads them too. Opening the
file each time cost about 15-25 us per access here (with the six schedstat reads per
test the telemetry then made, a third of its cost on 2,000 trivial tests at ``-n 1``).
:class:`ProcFile` opens once and then uses ``pread`` at offset 0, which makes procfs
render the file afresh (about 1 us for ``schedstat``).

``/proc/self`` is resolved when the file is opened, so a forked child would read its
parent's figures through an inherited descriptor: the descriptor is reopened when the
process id changes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["ProcFile"]


class ProcFile:
    """One ``/proc/self`` file, opened on first use and kept open; raises OSError."""

    def __init__(self, path: str, *, write: bool = False, size: int = 4096) -> None:
        self.path = path
        self.size = size
        self._flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_CLOEXEC
        self._fd = -1
        self._pid = -1
        self._lock = threading.Lock()  # the worker's main thread and its sampler share it

    def _fileno(self) -> int:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    if self._fd >= 0:  # a forked child's copy of its parent's descriptor
                        os.close(self._fd)
                        self._fd = -1
                    self._fd = os.open(self.path, self._flags)
                    self._pid = pid
        return self._fd

    def read(self) -> bytes:
        """The file's whole current content (up to ``size`` bytes)."""
        return os.pread(self._fileno(), self.size, 0)

    def write(self, data: bytes) -> None:
        os.write(self._fileno(), data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
            self._fd, self._pid = -1, -1
