"""Demand traces: one row per run request, ``time,workers,seconds`` (CSV, sorted by time).

A bad row is reported with the file, the line and what to write instead; the whole trace
is read before anything is replayed, so a replay never stops half-way.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["HEADER", "Run", "TraceError", "eval_start", "read_trace", "write_trace"]

HEADER = ("time", "workers", "seconds")
#: the scored window: the last 28 days of a trace (earlier rows are history)
EVAL_DAYS = 28


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Run:
    """A run request: ``workers`` warm workers wanted at ``time`` (epoch s), held ``seconds``."""

    time: float
    workers: int
    seconds: float


def _parse_time(raw: str) -> float:
    text = raw.strip()
    if not text.endswith("Z"):
        msg = "not ISO-8601 UTC ending in 'Z'"
        raise ValueError(msg)
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC).timestamp()


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_trace(path: Path) -> list[Run]:
    """Every row of the trace at ``path`` (TraceError naming file and line on a bad one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = (
            f"{path}: cannot read the trace ({exc}); "
            "give a CSV file with the header time,workers,seconds"
        )
        raise TraceError(msg) from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        msg = (
            f"{path}:1: the header must be 'time,workers,seconds', found {','.join(header or [])!r}"
        )
        raise TraceError(msg)
    runs: list[Run] = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{path}:{line}"
        if len(row) != 3:
            msg = f"{where}: expected 3 fields time,workers,seconds, found {len(row)}: {row!r}"
            raise TraceError(msg)
        try:
            when = _parse_time(row[0])
        except ValueError:
            msg = f"{where}: bad time {row[0]!r}; write ISO-8601 UTC like 2026-03-01T14:05:09Z"
            raise TraceError(msg) from None
        try:
            workers = int(row[1])
            seconds = float(row[2])
        except ValueError:
            msg = f"{where}: workers must be a whole number and seconds a number, got {row[1:]!r}"
            raise TraceError(msg) from None
        if workers < 1 or not seconds >= 0:
            msg = f"{where}: workers must be >= 1 and seconds >= 0, got {row[1:]!r}"
            raise TraceError(msg)
        if runs and when < runs[-1].time:
            msg = f"{where}: time {row[0]} is before the previous row's; sort the trace by time"
            raise TraceError(msg)
        runs.append(Run(when, workers, seconds))
    if not runs:
        msg = f"{path}: the trace has no rows; add one row per run request under the header"
        raise TraceError(msg)
    return runs


def write_trace(path: Path, runs: Iterable[Run]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(HEADER) + "\n")
        for run in runs:
            out.write(f"{format_time(run.time)},{run.workers},{run.seconds:g}\n")


def eval_start(runs: list[Run], days: int = EVAL_DAYS) -> float:
    """Start of the scored window: ``days`` before the last row."""
    return runs[-1].time - days * 86400.0
