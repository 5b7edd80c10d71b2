"""The errors the farm daemon raises (on top of :mod:`shadowfarm_wire.errors`)."""

from __future__ import annotations

from shadowfarm_wire.errors import FarmError

__all__ = ["FarmDaemonError", "InterpreterRejected"]


class FarmDaemonError(FarmError):
    """The daemon cannot start, or did not stop; the message says why and where to look."""


class InterpreterRejected(FarmError, PermissionError):
    """A claim named an interpreter the farm will not run; the message says why and the fix."""
