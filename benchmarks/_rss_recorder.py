"""A pytest plugin that records each process's RSS after each test, for the health replays.

With ``SF_RSS_DIR`` set, every process of the run (each xdist worker, and the controller
as ``main``) appends "tests done, wall time, RSS, peak RSS" (bytes) after each test to
``$SF_RSS_DIR/<worker id>.csv``. ``bench_health.py`` copies this file into its generated
suites as their ``conftest.py``; another project loads it with ``-p _rss_recorder``.
The peak is the kernel's high-water mark ``VmHWM``, reset at the start of each test
(``clear_refs``, Linux >= 4.0), as the plugin's own worker telemetry does.
"""

from __future__ import annotations

import contextlib
import os
import time

import psutil

_PROC = psutil.Process()
_DONE = [0]


def _peak() -> int:
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM: the peak is this test's


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    out = os.environ.get("SF_RSS_DIR")
    if not out:
        return
    _DONE[0] += 1
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    rss = _PROC.memory_info().rss
    line = f"{_DONE[0]},{time.time():.3f},{rss},{_peak()}\n"  # one clock for all processes
    with open(os.path.join(out, f"{worker}.csv"), "a") as f:
        f.write(line)
