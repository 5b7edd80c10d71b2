"""The errors and the warning that both the plugin and the farm daemon raise."""

from __future__ import annotations

__all__ = ["FarmError", "ShadowFarmError", "ShadowFarmWarning", "TrustError"]


class ShadowFarmWarning(UserWarning):
    """Something in the environment is off; the run goes on without that part."""


class ShadowFarmError(Exception):
    """Base class of the errors pytest-shadowfarm raises on purpose."""


class FarmError(ShadowFarmError):
    """The farm cannot be used (down, slow, garbage, refused); a run goes on cold."""


class TrustError(FarmError, PermissionError):
    """A farm endpoint, file or socket did not prove it is the user's farm: not used."""
