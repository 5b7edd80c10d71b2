"""The fault campaign (benchmarks/bench_faults.py --quick): every fault once, nothing lost."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.farmtools import REPO

pytestmark = pytest.mark.slow


def test_the_quick_fault_campaign_loses_nothing():
    """kill -9 of a worker and of the daemon, slowloris, concurrent claims, full disk."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_faults.py"), "--quick"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = done.stdout
    assert "tests lost: 0" in out, out + done.stderr[-3000:]
    assert "tests duplicated: 0" in out, out
    assert "orphans: 0" in out, out
    assert done.returncode == 0, out
