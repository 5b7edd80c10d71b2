"""Every exception and warning pytest-shadowfarm raises, in one place."""

from __future__ import annotations

__all__ = [
    "ChangeDetectionError",
    "ConfigError",
    "FarmError",
    "HistoryError",
    "ImportFormatError",
    "ShadowFarmError",
    "ShadowFarmWarning",
]


class ShadowFarmWarning(UserWarning):
    """Something in the environment is off; the run goes on without that part."""


class ShadowFarmError(Exception):
    """Base class of the errors pytest-shadowfarm raises on purpose."""


class ConfigError(ShadowFarmError, ValueError):
    """A setting has a bad value; the message names where it came from and the fix."""


class HistoryError(ShadowFarmError, OSError):
    """The history database cannot be used."""


class ImportFormatError(ShadowFarmError, ValueError):
    """A file given to ``shadowfarm history import`` is not in the expected format."""


class ChangeDetectionError(ShadowFarmError):
    """Git cannot say which files changed; the change-impact signal is off for this run."""


class FarmError(ShadowFarmError):
    """The farm cannot be used (down, slow, garbage, refused); a run goes on cold."""
