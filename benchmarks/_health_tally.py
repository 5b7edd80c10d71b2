"""Health replacements counted across a benchmark's runs, from each run's report JSON.

The real-suite benchmarks run with the health watch on (the default): a healthy suite
must see no worker replaced. Each run's report adds its ``health`` object here; the
benchmark prints :func:`summary` at the end.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add", "summary"]

_runs: list[dict[str, Any]] = []


def add(report: dict[str, Any]) -> None:
    """Count one run's report (a run without a ``health`` object had the watch off)."""
    health = report.get("health")
    workers = report.get("workers", [])
    _runs.append(
        {
            "watched": health is not None,
            "replacements": (health or {}).get("replacements", 0),
            "crashes": (health or {}).get("crashes", 0),
            "workers": len(workers),
            "ended_replaced": sum(1 for w in workers if w.get("ended") == "replaced"),
        }
    )


def summary() -> str:
    watched = [r for r in _runs if r["watched"]]
    replaced = sum(r["replacements"] for r in watched)
    crashes = sum(r["crashes"] for r in watched)
    workers = sum(r["workers"] for r in watched)
    ended = sum(r["ended_replaced"] for r in watched)
    return (
        f"health: {replaced} replacements, {crashes} crashes, {ended} workers ended 'replaced' "
        f"over {len(watched)} runs with the health watch on ({workers} workers; "
        f"{len(_runs) - len(watched)} runs without it)"
    )
