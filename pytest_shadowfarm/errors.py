"""Every exception and warning the plugin raises, in one place.

The base classes, :class:`FarmError` and :class:`TrustError` live in
:mod:`shadowfarm_wire.errors` (the daemon raises them too) and are re-exported here.
"""

from __future__ import annotations

from shadowfarm_wire.errors import FarmError, ShadowFarmError, ShadowFarmWarning, TrustError

__all__ = [
    "ChangeDetectionError",
    "ConfigError",
    "FarmError",
    "HistoryError",
    "ImportFormatError",
    "ShadowFarmError",
    "ShadowFarmWarning",
    "TrustError",
]


class ConfigError(ShadowFarmError, ValueError):
    """A setting has a bad value; the message names where it came from and the fix."""


class HistoryError(ShadowFarmError, OSError):
    """The history database cannot be used."""


class ImportFormatError(ShadowFarmError, ValueError):
    """A file given to ``shadowfarm history import`` is not in the expected format."""


class ChangeDetectionError(ShadowFarmError):
    """Git cannot say which files changed; the change-impact signal is off for this run."""
