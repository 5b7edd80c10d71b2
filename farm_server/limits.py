"""Bounds that keep the daemon answering under a flood of connections (slowloris).

A daemon started under the common soft limit of 1,024 descriptors stopped answering
after as many half-open connections, then logged a traceback for every failed accept
(25 MB in 8 s). So:

- :func:`raise_fd_limit`: the soft ``RLIMIT_NOFILE`` goes up to the hard limit at start;
- :class:`BoundedH11Protocol`: at most :data:`MAX_CONNECTIONS` connections; one more
  closes the oldest connection with no request under way (unlogged; if every one is busy,
  the newcomer is closed instead), and a connection that has not sent a request's
  headers within :data:`HEADER_TIMEOUT_S` is closed (the request body has its own
  deadline in :class:`farm_server.auth.Guard`);
- :class:`OncePerMinute`: asyncio logs "socket.accept() out of system resource" with a
  traceback on every failed accept; this filter lets one through per minute.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "HEADER_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "BoundedH11Protocol",
    "OncePerMinute",
    "quiet_accept_errors",
    "raise_fd_limit",
]

#: open HTTP connections at once: the plugin and the CLI use one or two each
MAX_CONNECTIONS = 256
#: a client has this long from connecting to the end of its request's headers
HEADER_TIMEOUT_S = 10.0


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE := hard; return the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a deadline for the headers."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= MAX_CONNECTIONS and not self._evict_idlest():
            # Every connection is busy with a request: not counted, not logged, closed.
            self.transport = transport
            transport.abort()
            return
        self._opened = time.monotonic()
        super().connection_made(transport)
        self._headers_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            HEADER_TIMEOUT_S, self._headers_late
        )

    def _evict_idlest(self) -> bool:
        """Close the oldest connection that has no request under way; False if none.

        A flood of half-open connections then costs each of them its place as soon as
        a newer client comes, and a real client (whose request is quick) gets in.
        """
        idle = [c for c in self.connections if getattr(c, "cycle", 1) is None]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: getattr(c, "_opened", 0.0))
        oldest.transport.abort()
        self.connections.discard(oldest)
        return True

    def _headers_late(self) -> None:
        self._headers_deadline = None
        if self.cycle is None:  # no request's headers yet: a slow or idle client
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        deadline = getattr(self, "_headers_deadline", None)
        if deadline is not None:
            deadline.cancel()
        if self not in self.connections:  # refused in connection_made
            return
        super().connection_lost(exc)


class OncePerMinute(logging.Filter):
    """Let a record with a given message start through at most once per minute."""

    def __init__(self, prefix: str, period_s: float = 60.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.period_s = period_s
        self.last = -period_s
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        now = time.monotonic()
        if now - self.last < self.period_s:
            self.dropped += 1
            return False
        self.last = now
        record.exc_info = None  # the traceback says nothing new; the message does
        record.exc_text = None
        if self.dropped:
            record.msg = f"{record.msg} ({self.dropped} more since the last report)"
            self.dropped = 0
        return True


def quiet_accept_errors(logger: Any = None) -> OncePerMinute:
    """Install the once-per-minute filter for asyncio's failed-accept message."""
    accept_filter = OncePerMinute("socket.accept() out of system resource")
    (logger or logging.getLogger("asyncio")).addFilter(accept_filter)
    return accept_filter
