"""The swarm with a running farm: workers added mid-run come warm, telemetry reaches the farm."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow

#: every pytest run below ends well within this, or the test fails instead of hanging
RUN_TIMEOUT_S = 180

PYPROJECT = """
[tool.pytest.ini_options]
filterwarnings = ["error"]
"""

SUITE = """
import time
import pytest

@pytest.mark.parametrize("i", range(40))
def test_wait(i):
    time.sleep(0.3)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A sleep-bound project with a private farm home."""
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_io=SUITE)
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "farm-home"))
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "shadowfarm", "-p", "no:cacheprovider", *args, timeout=RUN_TIMEOUT_S
    )


def _posted(database: Path) -> list[tuple[str | None, dict[str, Any]]]:
    db = sqlite3.connect(database)
    try:
        rows = db.execute("SELECT claim_id, payload FROM telemetry ORDER BY id").fetchall()
    finally:
        db.close()
    return [(claim, sample) for claim, payload in rows for sample in json.loads(payload)]


class TestSwarmWithAFarm:
    def test_late_workers_come_warm_and_the_run_reaches_the_farm(self, project, start_farm):
        """1:3 after a learning run: the added workers are warm; run, workers, events posted."""
        farm = start_farm(name="farm-home", default_min_warm=3, default_max_warm=3)
        key = current_profile(str(project.path), []).key
        _run(project, "-n", "1").assert_outcomes(passed=40)  # registers the profile, teaches
        farm.wait_status(lambda s: counts(s, key).get("warm", 0) >= 3, "3 warm workers")

        result = _run(project, "--sf-workers", "1:3", "--sf-report-json", "report.json")
        result.assert_outcomes(passed=40)
        report = json.loads((project.path / "report.json").read_text())
        grown = [e for e in report["events"] if e.get("event") == "scale" and e["to"] > e["from"]]
        assert grown, report["events"]
        late = [w for w in report["workers"] if w["id"] != "gw0"]
        assert late
        assert any(w["warm"] for w in late), report["workers"]  # through the farm's hand-off

        samples = [s for _, s in _posted(farm.home.database)]
        runs = [s for s in samples if s.get("kind") == "run" and s.get("range") == "1:3"]
        assert runs
        assert runs[-1]["finished"] is True
        assert runs[-1]["peak_workers"] >= 2
        assert any(s.get("kind") == "worker" and s.get("warm") for s in samples)
        posted_events = [s["event"] for s in samples if s.get("kind") == "event"]
        assert grown[0] in posted_events
