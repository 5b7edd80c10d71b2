"""``farm forecast --plot``: history, the forecast band and the forecast policy's pool target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_shadowfarm.errors import FarmError

__all__ = ["plot"]


def plot(runs: list[Any], series: Any, acc: Any, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg = "--plot needs matplotlib: pip install 'pytest-shadowfarm[plot]'"
        raise FarmError(msg) from None
    from farm_server.forecast.demand import HOUR
    from farm_server.forecast.models import default_forecaster
    from farm_server.forecast.planner import ForecastPolicy

    first = series.index(acc.first_origin)
    lo = max(0, first - 7 * 24)
    hours = (np.arange(lo, len(series)) - first) / 24.0
    policy = ForecastPolicy(default_forecaster())
    for run in runs:
        if run.time < acc.first_origin:
            policy.observe(run.time, run.workers)
    plan = policy.replan(acc.first_origin)
    fc = plan.forecast
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.step(hours, series.values[lo:], where="post", color="0.4", lw=0.8, label="demand")
    holdout = np.arange(len(acc.forecast)) / 24.0
    ax.step(holdout, acc.forecast, where="post", color="C0", label=f"median ({acc.model})")
    if fc is not None:
        x = (np.arange(len(fc)) * HOUR + fc.start - acc.first_origin) / 86400.0
        ax.fill_between(x, fc.quantiles[0.5], fc.quantiles[0.95], step="post", alpha=0.3,
                        color="C0", label="50-95% band (first origin)")  # fmt: skip
        ax.step(x, plan.levels, where="post", color="C3", label="pool target (busy hours)")
    ax.set_xlabel("days from the first holdout origin")
    ax.set_ylabel("workers per hour")
    ax.set_title(f"MASE {acc.mase:.3f} (seasonal naive {acc.seasonal_naive_mase:.3f})")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
