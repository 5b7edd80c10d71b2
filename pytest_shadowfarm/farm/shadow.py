"""Which tests a farm worker runs while warming: the shadow subset (pure).

The cheapest test that passed last time, one per test module, cheapest modules first,
until the time budget is spent. One test per module exercises that module's imports,
fixtures and first calls; a test that failed last time would only make the worker's
readiness report (the canary) noisy.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["choose_shadow_tests"]


def choose_shadow_tests(last: Mapping[str, tuple[str, float | None]], budget_s: float) -> list[str]:
    """Nodeids to warm with, from ``nodeid -> (last outcome, last duration in seconds)``."""
    cheapest: dict[str, tuple[float, str]] = {}
    for nodeid, (outcome, seconds) in last.items():
        if outcome != "passed" or seconds is None:
            continue
        module = nodeid.split("::", 1)[0]
        candidate = (seconds, nodeid)
        if module not in cheapest or candidate < cheapest[module]:
            cheapest[module] = candidate
    chosen: list[str] = []
    spent = 0.0
    for seconds, nodeid in sorted(cheapest.values()):
        if spent + seconds > budget_s:
            break
        chosen.append(nodeid)
        spent += seconds
    return chosen
