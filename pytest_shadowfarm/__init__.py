"""pytest-shadowfarm: history-driven test ordering, warm workers and an elastic xdist swarm.

PYTEST_DONT_REWRITE: our modules are imported without assertion rewriting (see
:mod:`pytest_shadowfarm.rewrite`); the marker keeps pytest from warning that they were
imported before it could rewrite them.
"""

from __future__ import annotations

from pytest_shadowfarm.errors import ConfigError, ShadowFarmError, ShadowFarmWarning

__version__ = "0.1.0"

__all__ = ["ConfigError", "ShadowFarmError", "ShadowFarmWarning", "__version__"]
