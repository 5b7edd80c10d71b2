"""The farm's logs stay bounded: ``daemon.log``, ``daemon.out`` and every worker's log.

``daemon.out`` once grew to 162 MB. ``daemon.log`` is written through logging, so a
:class:`~logging.handlers.RotatingFileHandler` bounds it. The others are a process's
stderr (the daemon's own, once daemonized, and each worker's), written through a
descriptor that the writer keeps open in append mode: they cannot be renamed away, so
:class:`LogKeeper` copies the newest ``max_bytes`` of an oversized one to ``NAME.1`` and
truncates it in place (``copytruncate``, as logrotate does; ``O_APPEND`` writers go on
at the new end). A few lines written during the copy may be lost: the price of not
owning the writer's descriptor.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["DEFAULT_MAX_BYTES", "LogKeeper", "setup_logging"]

DEFAULT_MAX_BYTES = 10 << 20
#: rotated files kept of daemon.log; stderr logs keep one
BACKUPS = 3
KEEP_PERIOD_S = 2.0


def setup_logging(logs: Path, level: str) -> logging.handlers.RotatingFileHandler:
    handler = logging.handlers.RotatingFileHandler(
        logs / "daemon.log", maxBytes=DEFAULT_MAX_BYTES, backupCount=BACKUPS
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("shadowfarm")
    root.setLevel(level.upper())
    root.addHandler(handler)
    return handler


def truncate_copy(path: Path, max_bytes: int) -> bool:
    """If ``path`` is over ``max_bytes``: its last ``max_bytes`` to ``path.1``, then empty it."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size <= max_bytes:
        return False
    backup = path.with_name(path.name + ".1")
    with contextlib.suppress(OSError):
        with path.open("rb") as src:
            src.seek(size - max_bytes)
            data = src.read(max_bytes)
        tmp = backup.with_name(backup.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as dst:
            dst.write(data)
        os.replace(tmp, backup)
    with contextlib.suppress(OSError):
        os.truncate(path, 0)  # also when the copy failed (full disk): bound it anyway
    return True


class LogKeeper:
    """A thread that keeps the stderr logs in ``logs`` under ``max_bytes()`` each."""

    def __init__(
        self,
        logs: Path,
        max_bytes: Callable[[], int],
        handler: logging.handlers.RotatingFileHandler | None = None,
    ) -> None:
        self.logs = logs
        self.max_bytes = max_bytes
        self.handler = handler
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def once(self) -> list[Path]:
        """One pass; returns the files truncated."""
        limit = self.max_bytes()
        if self.handler is not None:
            self.handler.maxBytes = limit
        done = []
        for path in [self.logs / "daemon.out", *self.logs.glob("w-*.log")]:
            if truncate_copy(path, limit):
                done.append(path)
        return done

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadowfarm-logs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(KEEP_PERIOD_S):
            with contextlib.suppress(Exception):  # never let log keeping end the daemon
                self.once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
