"""One test's resource use, as a worker attaches it to the test's teardown report.

The worker side (:mod:`.telemetry`, with psutil) sets :data:`USAGE_ATTR` on each report;
the controller folds it into the test's trace with :func:`add_usage`. Kept apart from
the telemetry so that the controller reads reports without importing psutil.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["USAGE_ATTR", "add_usage"]

#: the report attribute with a test's usage:
#: {"phase", "cpu_s", "peak_rss_kb", "rss_kb" (after the test), "cpu_wait_s"}
USAGE_ATTR = "shadowfarm_usage"


def add_usage(trace: Any, usage: object) -> None:
    """Fold a report's usage (the report attribute) into a recorder ``TestTrace``.

    CPU seconds add up over the reports that carry usage; the peak RSS is the largest
    seen. Anything
    that is not the expected mapping (an old worker, a foreign plugin) is ignored.
    """
    if not isinstance(usage, Mapping):
        return
    cpu = usage.get("cpu_s")
    if isinstance(cpu, int | float) and not isinstance(cpu, bool) and cpu >= 0:
        trace.cpu_s = (trace.cpu_s or 0.0) + float(cpu)
    peak = usage.get("peak_rss_kb")
    if isinstance(peak, int) and not isinstance(peak, bool) and peak > 0:
        trace.peak_rss_kb = max(trace.peak_rss_kb or 0, peak)
