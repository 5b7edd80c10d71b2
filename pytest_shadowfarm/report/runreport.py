"""The run report JSON (``--sf-report-json``): versioned, read by scripts and benchmarks.

Every time is in seconds since the controller's session start, taken before any worker
is started. Version 1 fields are documented in the README; later versions only add.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_shadowfarm.files import ensure_state_dir, readable_by_umask
from pytest_shadowfarm.recorder import RunRecorder
from pytest_shadowfarm.registry import WorkerRecord

__all__ = ["REPORT_VERSION", "RunSummary", "build_report", "write_report"]

REPORT_VERSION = 1


@dataclass
class RunSummary:
    """Everything the report and the terminal summary need besides the per-test traces."""

    wall_s: float
    predicted_total_s: float | None
    etc: Mapping[str, float] = field(default_factory=dict)
    workers: Sequence[WorkerRecord] = ()
    events: Sequence[Mapping[str, Any]] = ()
    #: nodeid -> extra fields for that test's entry (priority components, reruns…)
    test_extras: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def build_report(recorder: RunRecorder, summary: RunSummary) -> dict[str, Any]:
    tests = []
    for trace in recorder.ordered():
        entry: dict[str, Any] = {
            "nodeid": trace.nodeid,
            "outcome": trace.outcome,
            "duration_s": _round(trace.duration_s),
            "start_s": _round(trace.start_s),
            "worker": trace.worker,
            "etc_s": _round(summary.etc.get(trace.nodeid)),
            "order": trace.order,
        }
        if trace.reruns:
            entry["reruns"] = trace.reruns
        if trace.peak_rss_kb is not None:
            entry["peak_rss_kb"] = trace.peak_rss_kb
        if trace.cpu_s is not None:
            entry["cpu_s"] = _round(trace.cpu_s)
        entry.update(summary.test_extras.get(trace.nodeid, {}))
        tests.append(entry)
    return {
        "version": REPORT_VERSION,
        "wall_s": _round(summary.wall_s),
        "predicted_total_s": _round(summary.predicted_total_s),
        "actual_total_s": _round(recorder.actual_total_s),
        "first_failure_s": _round(recorder.first_failure_s),
        "counts": recorder.counts(),
        "tests": tests,
        "workers": [w.report() for w in summary.workers],
        "events": list(summary.events),
    }


def write_report(path: Path, report: Mapping[str, Any], *, on_error: Callable[[str], None]) -> bool:
    """Write atomically (temp file + rename); on OSError call ``on_error`` and return False."""
    try:
        ensure_state_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        readable_by_umask(fd)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            # one line: ``indent`` would switch json to its pure-Python encoder, 10x
            # slower (0.2 s for 1,400 tests, spent after the last test); ``jq .`` reads it
            fh.write(json.dumps(report))
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        on_error(f"cannot write the run report to {path}: {exc}")
        return False
    return True
