"""``shadowfarm farm simulate|forecast`` as a user runs them (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from farm_server.forecast.trace import write_trace
from tests.farm_server.forecast.forecast_data import seasonal_runs

REPO = Path(__file__).resolve().parents[3]


def shadowfarm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "from pytest_shadowfarm.cli.main import main; raise SystemExit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    write_trace(path, seasonal_runs(5))
    return path


class TestCli:
    def test_simulate_prints_the_policy_figures(self, trace):
        """--json has the documented keys; the oracle hits every claim."""
        done = shadowfarm("farm", "simulate", trace.name, "--policy", "oracle", "--json",
                          cwd=trace.parent)  # fmt: skip
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert {"policy", "runs", "claims", "hit_rate", "idle_worker_s", "wait_p95_s"} <= set(data)
        assert data["hit_rate"] == 1.0

    def test_forecast_scores_the_model_against_the_seasonal_naive(self, trace):
        """--json gives model, mase and seasonal_naive_mase."""
        done = shadowfarm("farm", "forecast", str(trace), "--holdout-days", "7", "--json",
                          cwd=trace.parent)  # fmt: skip
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert {"model", "mase", "seasonal_naive_mase"} <= set(data)
        assert data["mase"] < data["seasonal_naive_mase"]
        assert data["model"]

    def test_forecast_plot_draws_a_png(self, trace):
        """--plot FILE.png writes a PNG of history, forecast band and pool target."""
        pytest.importorskip("matplotlib")
        done = shadowfarm("farm", "forecast", trace.name, "--holdout-days", "7", "--plot",
                          "fc.png", cwd=trace.parent)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (trace.parent / "fc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "plot written to fc.png" in done.stdout

    def test_a_bad_trace_row_is_named(self, tmp_path):
        """A bad row: exit 2, the file and line, the fix."""
        bad = tmp_path / "bad.csv"
        bad.write_text("time,workers,seconds\n2026-03-01T14:05:09Z,2,300\nyesterday,2,300\n")
        done = shadowfarm("farm", "simulate", str(bad), cwd=tmp_path)
        assert done.returncode == 2
        assert f"{bad}:3: bad time 'yesterday'" in done.stderr
