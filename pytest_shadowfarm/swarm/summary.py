"""The swarm's lines in the terminal summary, from plain values (no pytest import)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_shadowfarm.registry import WorkerRecord
from pytest_shadowfarm.swarm.channel import WorkerTelemetryState

__all__ = ["summary_lines", "worker_seconds"]


def worker_seconds(workers: Sequence[WorkerRecord], wall_s: float) -> float:
    """What the workers cost: from being asked for to release (or the end of the run)."""
    return math.fsum(
        max(0.0, (w.left_s if w.left_s is not None else wall_s) - w.joined_s) for w in workers
    )


def _event_line(event: Mapping[str, Any]) -> str | None:
    t = f"{event.get('t', 0.0):7.1f}s"
    if event.get("event") == "scale":
        return f"swarm {t}  {event['from']} -> {event['to']}: {event.get('reason', '')}"
    if event.get("event") == "scale_failed":
        who = event.get("worker") or "a new worker"
        return f"swarm {t}  {who} failed to start: {event.get('error', '')}"
    return None


def summary_lines(
    *,
    events: Sequence[Mapping[str, Any]],
    workers: Sequence[WorkerRecord],
    wall_s: float,
    max_workers: int | None,
    telemetry: Sequence[WorkerTelemetryState] = (),
    cpu_fraction: float | None = None,
    auto_workers: int | None = None,
) -> list[str]:
    """One line per scaling decision, the worker-seconds spent, and the telemetry in brief.

    ``max_workers`` is the swarm's MAX when it scaled (None for a fixed swarm). What was
    spent is compared with what the user would otherwise have run: ``-n auto``, which
    starts ``auto_workers`` workers (the machine's CPUs); without that count, with a
    static ``-n MAX``. The line names its baseline either way.
    """
    lines = [line for line in map(_event_line, events) if line is not None]
    spent = worker_seconds(workers, wall_s)
    if workers:
        cost = f"swarm: {spent:.1f} worker-s over {wall_s:.1f} s wall, {len(workers)} workers"
        if max_workers is not None:
            base = auto_workers if auto_workers else max_workers
            name = f"-n auto ({base} workers here)" if auto_workers else f"-n {max_workers}"
            static = base * wall_s
            saved = 1.0 - spent / static if static > 0 else 0.0
            cost += (
                f"; baseline static {name}: {static:.1f} worker-s "
                f"({base} x {wall_s:.1f} s; {abs(saved):.0%} "
                f"{'less' if saved >= 0 else 'more'} spent)"
            )
        lines.append(cost)
    sampled = [state for state in telemetry if state.samples]
    if sampled:
        top = max(sampled, key=lambda state: state.peak_rss_kb)
        line = (
            f"telemetry: {sum(s.samples for s in sampled)} samples from {len(sampled)} workers; "
            f"peak RSS {top.peak_rss_kb / 1024:.0f} MB ({top.worker})"
        )
        if cpu_fraction is not None:
            kind = "I/O-bound" if cpu_fraction < 0.5 else "CPU-bound"
            line += f"; tests' CPU demand {cpu_fraction:.2f} of their wall time ({kind})"
        lines.append(line)
    return lines
