"""The errors and the warning that both the plugin and the farm daemon raise."""

from __future__ import annotations

__all__ = ["FarmError", "ShadowFarmError", "ShadowFarmWarning"]


class ShadowFarmWarning(UserWarning):
    """Something in the environment is off; the run goes on without that part."""


class ShadowFarmError(Exception):
    """Base class of the errors pytest-shadowfarm raises on purpose."""


class FarmError(ShadowFarmError):
    """The farm cannot be used (down, slow, garbage, refused); a run goes on cold."""
