"""The farm's tunables: one pydantic model for defaults, validation, the API and storage."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["FarmConfig", "ValidationError", "describe_errors"]


class FarmConfig(BaseModel):
    """``GET|PUT /api/swarm/config`` and ``shadowfarm farm config get|set``."""

    # NaN passes every ``gt``/``le`` bound (all comparisons are false) and infinity is no
    # duration: neither is a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    default_min_warm: int = Field(
        default=2, ge=0, le=256, description="warm workers kept per profile"
    )
    default_max_warm: int = Field(
        default=4, ge=0, le=256, description="most unclaimed workers per profile"
    )
    max_processes: int = Field(
        default=16, ge=1, le=4096, description="cap on live worker processes (all states)"
    )
    max_warming: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        le=256,
        description="cap on workers warming at once (CPU spent warming)",
    )
    idle_ttl_s: float = Field(
        default=3600.0, gt=0, description="a profile unclaimed this long keeps no warm workers"
    )
    claim_timeout_s: float = Field(
        default=120.0, gt=0, description="a claimed worker not connected by then is ended"
    )
    release_grace_s: float = Field(
        default=30.0, ge=0, description="a released worker still running after this is ended"
    )
    shadow_budget_s: float = Field(
        default=5.0, ge=0, le=3600, description="time box of a worker's shadow run"
    )
    max_shadow_tests: int = Field(
        default=50, ge=0, le=10_000, description="most shadow tests kept per profile"
    )
    warm_nice: int = Field(default=10, ge=0, le=19, description="niceness added while warming")
    warm_spare_cores: float = Field(
        default=1.0,
        ge=0,
        le=256,
        description=(
            "while a run uses claimed workers, a warm-up starts only with this many idle "
            "cores (0: at once)"
        ),
    )
    log_max_bytes: int = Field(
        default=10 << 20,
        ge=64 << 10,
        le=1 << 40,
        description="each log (daemon, its stderr, every worker's) is kept under this size",
    )
    forecast: bool = Field(
        default=False,
        description=(
            "keep warm workers from each profile's demand forecast (min_warm ignored, "
            "max_warm the cap) instead of a static min_warm"
        ),
    )
    forecast_objective: float = Field(
        default=0.95, gt=0, le=1, description="hit rate the forecast policy aims at"
    )
    tick_s: float = Field(default=0.5, ge=0.01, le=60, description="supervisor period")

    def updated(self, changes: dict[str, Any]) -> FarmConfig:
        """A copy with ``changes`` applied and validated (ValidationError on a bad one)."""
        return FarmConfig.model_validate({**self.model_dump(), **changes})


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: ``field: message (got value)``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(parts)
