"""The demo of the README's quick start: what pytest-shadowfarm does to a real suite.

Runs ``example_project/`` (about 300 tests, a heavy scipy import) with a fresh history:
1. a first run that learns every test's time;
2. a second run that predicts the total before it starts and compares afterwards;
3. a farm in a temporary home, then ``-n 2`` with cold workers against ``-n 2`` with
   pre-warmed workers claimed from the farm: time to the first result and wall time.

Each step prints the command it runs and the lines pytest-shadowfarm adds to pytest's
output. Nothing outside a temporary directory is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "example_project"


def pytest_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "example_project", "-p", "shadowfarm", *args]
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


def farm(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_shadowfarm.cli.main", "farm", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo: shadowfarm farm {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def wait_for_warm(home: Path, wanted: int, timeout_s: float = 180.0) -> int:
    """Poll the farm until ``wanted`` workers are warm (bounded); return how many are."""
    deadline = time.monotonic() + timeout_s
    warm = 0
    while time.monotonic() < deadline:
        workers = json.loads(farm(home, "workers", "--json"))
        warm = sum(1 for w in workers if w.get("state") == "warm")
        if warm >= wanted:
            break
        time.sleep(1.0)
    print(f"  the farm has {warm} warm workers")
    return warm


def first_result_s(report: dict[str, Any]) -> float:
    return min(t["start_s"] + t["duration_s"] for t in report["tests"])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="shadowfarm-demo-") as tmp:
        history = Path(tmp) / "history.sqlite"
        report = Path(tmp) / "report.json"
        common = (f"--sf-history={history}", f"--sf-report-json={report}")

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

        print("\n== 3. a farm keeps pre-warmed workers: -n 2 cold against -n 2 warm")
        home = Path(tmp) / "farm"
        print(f"$ shadowfarm farm start --home {home}")
        print("  " + farm(home, "start").strip().splitlines()[-1])
        env = {"SHADOWFARM_HOME": str(home), "OPENBLAS_NUM_THREADS": "1"}
        try:
            pytest_run(*common, "-n", "2", "--sf-farm=off", env=env)
            cold = json.loads(report.read_text())
            print("\n-- the first run against the farm registers the project; the farm warms it")
            pytest_run(*common, "-n", "2", env=env)
            wait_for_warm(home, 2)
            pytest_run(*common, "-n", "2", env=env)
            warm = json.loads(report.read_text())
            print("\n$ shadowfarm farm status")
            print("\n".join("  " + line for line in farm(home, "status").splitlines()))
        finally:
            print(f"$ shadowfarm farm stop --home {home}")
            print("  " + farm(home, "stop").strip())
        warm_n = sum(1 for w in warm["workers"] if w.get("warm"))
        print(
            f"\n-n 2 cold: first result at {first_result_s(cold):.2f}s, wall {cold['wall_s']:.2f}s"
            f"\n-n 2 warm: first result at {first_result_s(warm):.2f}s, wall {warm['wall_s']:.2f}s"
            f" ({warm_n} of {len(warm['workers'])} workers warm)"
            f"\nwarm/cold: first result {first_result_s(warm) / first_result_s(cold):.2f}x, "
            f"wall {warm['wall_s'] / cold['wall_s']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
