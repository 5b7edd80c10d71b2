"""The demo of the README's quick start: what pytest-shadowfarm does to a real suite.

Runs ``example_project/`` (about 300 tests, a heavy scipy import) with a fresh history:
1. a first run that learns every test's time;
2. a second run that predicts the total before it starts and compares afterwards.

Each step prints the command it runs and the lines pytest-shadowfarm adds to pytest's
output. Nothing outside a temporary directory is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "example_project"


def pytest_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "example_project", "-p", "shadowfarm", "-q", *args]
    print(f"\n$ {' '.join(['pytest', *cmd[3:]])}", flush=True)
    done = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    for line in done.stdout.splitlines():
        if line.startswith(("shadowfarm:", "predicted", "actual", "history:", "  ")) or (
            " passed" in line or " failed" in line
        ):
            print(f"  {line}")
    if done.returncode not in (0, 1):
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"demo: pytest exited {done.returncode}")
    return done


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="shadowfarm-demo-") as tmp:
        history = Path(tmp) / "history.sqlite"
        report = Path(tmp) / "report.json"
        common = ("--sf-history", str(history), "--sf-report-json", str(report))

        print("== 1. first run: nothing known yet, the history learns every test's time")
        pytest_run(*common)

        print("\n== 2. second run: the header predicts the total, the summary checks it")
        pytest_run(*common)
        data = json.loads(report.read_text())
        predicted, actual = data["predicted_total_s"], data["actual_total_s"]
        print(
            f"\nprediction error on run 2: predicted {predicted:.2f}s, actual {actual:.2f}s "
            f"({(actual - predicted) / predicted * 100:+.1f}%)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
