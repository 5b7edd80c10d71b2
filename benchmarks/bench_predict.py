"""How close the second run's predicted total comes to its actual total.

Each trial starts from an empty history: ``example_project`` runs once to learn, then
once more, and the second run's report (``--sf-report-json``) gives the predicted total
(``predicted_total_s``, the sum of the tests' mean durations, said in the header) and
the actual total (``actual_total_s``, the sum of the tests' setup + call + teardown seconds).
Printed per trial: both totals and the error ``predicted / actual - 1``; then the
median error and the largest one. Target: every second run within 15%.

    python benchmarks/bench_predict.py              # 3 trials, in one process (no xdist)
    python benchmarks/bench_predict.py -n 2         # the same at -n 2
    python benchmarks/bench_predict.py --quick      # CI smoke: 1 trial, a few tests
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example_project"
TARGET = 0.15


def run(history: Path, report: Path, extra: list[str], timeout: float) -> dict[str, object]:
    report.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "shadowfarm",
        # "--opt=PATH": a PATH given apart would be taken for a test path (rootdir lookup)
        f"--sf-history={history}", f"--sf-report-json={report}", *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOWFARM_", "EXAMPLE_"))}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        cmd, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0 or not report.exists():
        tail = (done.stdout + done.stderr)[-3000:]
        sys.exit(f"pytest exited {done.returncode}: {' '.join(cmd)}\n{tail}")
    return json.loads(report.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="fresh histories (default 3)")
    parser.add_argument("-n", dest="workers", help="passed to pytest-xdist's -n")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--quick", action="store_true", help="1 trial of one test module")
    args = parser.parse_args()
    extra = ["-n", args.workers] if args.workers else []
    if args.quick:
        args.trials = 1
        extra += ["tests/test_pricing.py"]
    errors: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sf-predict-") as tmp:
        for trial in range(1, args.trials + 1):
            history = Path(tmp, f"history-{trial}.sqlite")
            report = Path(tmp, "report.json")
            run(history, report, extra, args.timeout)  # learns
            second = run(history, report, extra, args.timeout)
            predicted, actual = second["predicted_total_s"], second["actual_total_s"]
            if not (isinstance(predicted, float) and isinstance(actual, float)):
                sys.exit(f"the second run's report has no totals: {second}")
            errors.append(predicted / actual - 1)
            print(
                f"trial {trial}: predicted {predicted:7.2f}s  actual {actual:7.2f}s  "
                f"error {errors[-1]:+.1%}",
                flush=True,
            )
    worst = max(errors, key=abs)
    print(
        f"median error {statistics.median(errors):+.1%}, largest {worst:+.1%} "
        f"(target: every trial within {TARGET:.0%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
