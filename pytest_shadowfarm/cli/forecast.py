"""``shadowfarm farm simulate|forecast``: replay a demand trace, score the demand forecast.

Both read a trace (CSV ``time,workers,seconds``; see ``farm_server/forecast/trace.py``)
and need the farm extra's numpy (statsmodels too for the statsmodels model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pytest_shadowfarm.cli import Context
from pytest_shadowfarm.errors import FarmError

__all__ = ["register"]


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        msg = f"expected seconds >= 0, got {raw!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _days(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a whole number of days >= 1, got {raw!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``simulate`` and ``forecast`` to the ``farm`` group's commands."""
    simulate = commands.add_parser(
        "simulate",
        help="replay a demand trace against a pool policy: hit rate, idle worker-seconds",
        description="Replay TRACE (CSV time,workers,seconds) against POLICY, scoring the "
        "trace's last 28 days (earlier rows are history the policy learns from).",
    )
    simulate.add_argument("trace", metavar="TRACE", help="CSV file: time,workers,seconds")
    simulate.add_argument(
        "--policy",
        default="forecast",
        help="static:N, keepalive:SECONDS, histogram, forecast or oracle (default forecast)",
    )
    simulate.add_argument(
        "--warmup-s", type=_seconds, default=20.0, help="seconds a worker takes to warm (20)"
    )
    simulate.add_argument("--json", action="store_true", help="print JSON instead of text")
    simulate.set_defaults(run=_simulate)

    forecast = commands.add_parser(
        "forecast",
        help="score the demand forecast on a trace (rolling origin, MASE)",
        description="Forecast TRACE's hourly demand 24 h ahead from each of the last "
        "--holdout-days days' 00:00 UTC and compare with the weekly seasonal naive.",
    )
    forecast.add_argument("trace", metavar="TRACE", help="CSV file: time,workers,seconds")
    forecast.add_argument("--holdout-days", type=_days, default=14, help="days scored (14)")
    forecast.add_argument("--json", action="store_true", help="print JSON instead of text")
    forecast.add_argument(
        "--plot", metavar="FILE.png", help="draw history, forecast band and pool target"
    )
    forecast.set_defaults(run=_forecast)


def _runs(args: argparse.Namespace, ctx: Context) -> list[Any]:
    try:
        from farm_server.forecast.trace import TraceError, read_trace
    except ImportError as exc:
        msg = f"{exc}: install the farm extra, pip install 'pytest-shadowfarm[farm]'"
        raise FarmError(msg) from None
    try:
        return read_trace(ctx.path(args.trace))
    except TraceError as exc:
        raise FarmError(str(exc)) from None


def _simulate(args: argparse.Namespace, ctx: Context) -> int:
    from farm_server.forecast.policies import make_policy
    from farm_server.forecast.simulate import simulate

    runs = _runs(args, ctx)
    try:
        policy = make_policy(args.policy, runs, args.warmup_s)
    except ValueError as exc:
        raise FarmError(f"--policy: {exc}") from None
    result = simulate(runs, policy, args.warmup_s)
    data = result.to_json()
    if args.json:
        ctx.print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    ctx.print(
        f"{result.policy}: {result.runs} runs, {result.claims} claims, hit rate "
        f"{result.hit_rate:.1%}, idle {result.idle_worker_s:,.0f} worker-s, "
        f"p95 wait {result.wait_p95_s:g}s"
    )
    return 0


def _forecast(args: argparse.Namespace, ctx: Context) -> int:
    from farm_server.forecast.accuracy import score
    from farm_server.forecast.demand import hourly_demand
    from farm_server.forecast.models import default_forecaster

    runs = _runs(args, ctx)
    series = hourly_demand([(r.time, r.workers) for r in runs])
    try:
        acc = score(series, runs[-1].time, default_forecaster(), args.holdout_days)
    except ValueError as exc:
        raise FarmError(f"{ctx.show(ctx.path(args.trace))}: {exc}") from None
    data: dict[str, Any] = {
        "model": acc.model,
        "mase": round(acc.mase, 4),
        "seasonal_naive_mase": round(acc.seasonal_naive_mase, 4),
        "holdout_days": acc.holdout_days,
    }
    if args.plot:
        from pytest_shadowfarm.cli.forecast_plot import plot

        out = ctx.path(args.plot)
        plot(runs, series, acc, out)
        data["plot"] = str(out)
    if args.json:
        ctx.print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    ctx.print(
        f"{acc.model}: MASE {acc.mase:.3f} (seasonal naive {acc.seasonal_naive_mase:.3f}) "
        f"over {acc.holdout_days} days"
    )
    if args.plot:
        ctx.print(f"plot written to {ctx.show(Path(data['plot']))}")
    return 0
