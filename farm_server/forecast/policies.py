"""``POLICY`` specs of ``shadowfarm farm simulate``: static:N, keepalive:S, histogram,
forecast, oracle."""

from __future__ import annotations

from farm_server.forecast.models import default_forecaster
from farm_server.forecast.planner import ForecastPolicy
from farm_server.forecast.policy import Histogram, KeepAlive, Oracle, PoolPolicy, Static
from farm_server.forecast.trace import Run

__all__ = ["POLICY_HELP", "make_policy"]

POLICY_HELP = "static:N, keepalive:SECONDS, histogram, forecast or oracle"


def make_policy(
    spec: str, runs: list[Run], warmup_s: float = 20.0, *, cap: int = 16, objective: float = 0.95
) -> PoolPolicy:
    """The policy ``spec`` names (ValueError saying what is accepted otherwise)."""
    kind, _, arg = spec.partition(":")
    try:
        if kind == "static" and arg:
            n = int(arg)
            if n < 0:
                raise ValueError
            return Static(n, warmup_s)
        if kind == "keepalive" and arg:
            seconds = float(arg)
            if not seconds >= 0:
                raise ValueError
            return KeepAlive(seconds, warmup_s)
    except ValueError:
        pass
    else:
        if spec == "histogram":
            return Histogram(warmup_s)
        if spec == "forecast":
            return ForecastPolicy(default_forecaster(), warmup_s, objective=objective, cap=cap)
        if spec == "oracle":
            return Oracle([r.time for r in runs], [r.workers for r in runs], warmup_s)
    msg = f"unknown policy {spec!r}: use {POLICY_HELP} (N a whole number, SECONDS >= 0)"
    raise ValueError(msg)
