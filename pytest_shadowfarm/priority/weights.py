"""The priority's default weights and half-life: what the settings need of this package.

A leaf module (no imports of the package's other modules), so that resolving the
settings at every start does not import the scoring, the import graph or git.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["DEFAULT_HALF_LIFE", "DEFAULT_WEIGHTS", "Weights"]

#: results this many runs old count half as much as the newest one (a setting: half_life)
DEFAULT_HALF_LIFE = 5.0


@dataclass(frozen=True)
class Weights:
    """How much each signal counts (settings ``weight_<name>``, toml ``weights.<name>``)."""

    #: prior of every test: orders tests without any signal, shortest first
    base: float = 0.001
    #: importance from @pytest.mark.shadowfarm(priority=...): critical 1, high 0.5, low -0.5
    marker: float = 0.4
    #: recency-weighted failure rate; 1 when the last result failed (not flaky)
    failure: float = 1.0
    #: 1 for a changed test file, 0.6 when it imports a changed module, halved per hop
    change: float = 0.5
    #: 1 for a test the history has never seen
    new: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                msg = f"weight {f.name!r} must be a number >= 0, got {value!r}"
                raise ValueError(msg)


DEFAULT_WEIGHTS = Weights()
