"""pytest-shadowfarm: history-driven test ordering, warm workers and an elastic xdist swarm."""

from __future__ import annotations

from pytest_shadowfarm.errors import ConfigError, ShadowFarmError, ShadowFarmWarning

__version__ = "0.1.0"

__all__ = ["ConfigError", "ShadowFarmError", "ShadowFarmWarning", "__version__"]
