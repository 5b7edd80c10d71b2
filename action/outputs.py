"""Write the action's outputs from the pytest-shadowfarm run report to $GITHUB_OUTPUT.

Usage: python outputs.py REPORT_JSON [TIMELINE_SVG]. Standard library only: it runs on
the runner's Python whatever is installed. A missing or unreadable report (pytest could
not start) gives empty outputs, never a failed step: the pytest step's exit code is
what fails the job.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else ""


def outputs(report_path: Path, timeline_path: Path | None) -> dict[str, str]:
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = {}
    if not isinstance(report, dict):
        report = {}
    counts = report.get("counts") or {}
    return {
        "report-path": str(report_path) if report else "",
        "first-failure-seconds": number(report.get("first_failure_s")),
        "predicted-seconds": number(report.get("predicted_total_s")),
        "actual-seconds": number(report.get("actual_total_s")),
        "wall-seconds": number(report.get("wall_s")),
        "failed": str(counts.get("failed", 0) + counts.get("error", 0)) if report else "",
        "timeline-path": str(timeline_path) if timeline_path and timeline_path.exists() else "",
    }


def main(argv: list[str]) -> int:
    report = Path(argv[1])
    timeline = Path(argv[2]) if len(argv) > 2 else None
    lines = [f"{key}={value}" for key, value in outputs(report, timeline).items()]
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
