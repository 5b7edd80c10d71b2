"""Check the run reports of one sharded run and summarise them (the merge action's step).

Usage: python check_shards.py DIR. Reads every ``*.json`` run report under DIR (one per
shard artifact), appends a table of the shards to $GITHUB_STEP_SUMMARY and warns (a
``::warning::`` line, not a failure) when the shards did not split the same way: each
job computes the split from its restored history, so a job that restored a different
history (a cache saved by another run between two jobs' starts) may have run tests that
another shard also ran, or skipped some. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def load_reports(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(directory.rglob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and "tests" in report:
            found.append((path, report))
    return found


def problems(reports: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the set of shards (empty when they fit together)."""
    shards = [r["shard"] for r in reports if isinstance(r.get("shard"), dict)]
    if not shards:
        return ["no shard reports found (was the run sharded?)"]
    found = []
    plans = {s.get("plan") for s in shards}
    if len(plans) > 1:
        found.append(
            f"the shards split the suite differently (plans {', '.join(sorted(map(str, plans)))}):"
            " they restored different histories, so some tests may have run twice or not at all"
        )
    counts = {s.get("count") for s in shards}
    if len(counts) == 1:
        count = counts.pop()
        seen = sorted(s.get("index") for s in shards)
        missing = sorted(set(range(1, int(count) + 1)) - set(seen))
        if missing:
            found.append(f"no report from shard(s) {', '.join(map(str, missing))} of {count}")
        if len(seen) != len(set(seen)):
            found.append(f"more than one report for a shard: {seen}")
    else:
        found.append(f"reports from runs with different shard counts: {sorted(map(str, counts))}")
    return found


def _s(value: object) -> str:
    return f"{value:.2f}s" if isinstance(value, int | float) else "-"


def table(reports: list[dict[str, Any]]) -> list[str]:
    rows = sorted(
        (r for r in reports if isinstance(r.get("shard"), dict)), key=lambda r: r["shard"]["index"]
    )
    lines = [
        "## pytest-shadowfarm: shards",
        "",
        "| shard | tests | predicted | test time | wall | failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    walls = []
    for r in rows:
        shard, counts = r["shard"], r.get("counts") or {}
        failed = counts.get("failed", 0) + counts.get("error", 0)
        lines.append(
            f"| {shard['index']}/{shard['count']} | {shard.get('tests', '-')} | "
            f"{_s(shard.get('predicted_s'))} | {_s(r.get('actual_total_s'))} | "
            f"{_s(r.get('wall_s'))} | {failed} |"
        )
        if isinstance(r.get("wall_s"), int | float):
            walls.append(r["wall_s"])
    if walls:
        mean = sum(walls) / len(walls)
        lines += [
            "",
            f"Largest shard wall time {max(walls):.2f}s, mean {mean:.2f}s "
            f"({(max(walls) / mean - 1) * 100 if mean else 0:+.1f} %).",
        ]
    return [*lines, ""]


def main(argv: list[str]) -> int:
    reports = [report for _, report in load_reports(Path(argv[1]))]
    for problem in problems(reports):
        print(f"::warning title=pytest-shadowfarm shards::{problem}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    text = "\n".join(table(reports)) + "\n"
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
