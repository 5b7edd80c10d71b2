"""``shadowfarm farm wait`` and ``farm start --wait``: return once the farm is warm.

"Warm" means every profile the farm keeps workers for (its current ``min_warm``
target above 0: not drained, retired, idle or unfit) has at least that many warm
workers. The wait is bounded: on timeout the error names each profile still short
and what its warming workers are doing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pytest_shadowfarm.errors import FarmError

__all__ = ["DEFAULT_TIMEOUT_S", "describe_step", "not_warm", "wait_warm"]

DEFAULT_TIMEOUT_S = 300.0
POLL_S = 0.2


def describe_step(progress: dict[str, Any]) -> str:
    """``shadow tests 3 of 5`` / ``importing 2 of 4`` / ``collecting``."""
    step = str(progress.get("step") or "starting")
    if progress.get("total"):
        step += f" {progress.get('done') or 0} of {progress['total']}"
    return step


def not_warm(status: dict[str, Any]) -> list[str]:
    """One line per profile that is short of warm workers (empty: the farm is warm)."""
    short = []
    for profile in status.get("profiles", []):
        wanted = profile.get("min_warm") or 0
        warm = profile["counts"].get("warm", 0)
        if profile.get("unfit") or wanted <= 0 or warm >= wanted:
            continue
        steps = "; ".join(
            f"{w['worker']} {describe_step(w)} ({w.get('warming_s') or 0:.1f}s)"
            for w in profile.get("warming", [])
        )
        short.append(
            f"profile {profile['key']} ({profile['rootdir']}): {warm} of {wanted} warm, "
            f"health {profile.get('health', 'unknown')}" + (f"; warming: {steps}" if steps else "")
        )
    return short


def wait_warm(
    fetch: Callable[[], dict[str, Any]],
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll ``fetch()`` (the farm's status) until :func:`not_warm` is empty; the status.

    Raises FarmError after ``timeout_s`` seconds, naming what is not warm.
    """
    deadline = clock() + timeout_s
    while True:
        status = fetch()
        short = not_warm(status)
        if not short:
            return status
        left = deadline - clock()
        if left <= 0:
            msg = (
                f"the farm was not warm after {timeout_s:g}s (wait longer with --timeout S, "
                "or see 'shadowfarm farm status'):\n  " + "\n  ".join(short)
            )
            raise FarmError(msg)
        sleep(min(POLL_S, left))
