"""What the benchmark scripts share. They run as scripts (``python benchmarks/bench_x.py``),
so this directory is on ``sys.path`` and ``from _common import ...`` finds this module."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Timed", "pytest_command", "timed_run"]


def pytest_command(*args: str, python: str = sys.executable) -> list[str]:
    """``python -m pytest -q ARGS``."""
    return [python, "-m", "pytest", "-q", *args]


@dataclass(frozen=True)
class Timed:
    """A finished process, its output captured as text, and what it cost."""

    done: subprocess.CompletedProcess[str]
    wall_s: float
    #: user + system CPU seconds of the process and every descendant it waited for
    cpu_s: float


def timed_run(cmd: Sequence[str], **kwargs: Any) -> Timed:
    """``subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)``,
    timed: its wall and CPU seconds (the CPU time drifts less with the host's load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(done, wall, cpu)
