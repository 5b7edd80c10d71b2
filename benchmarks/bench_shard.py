"""Shard balance: ``--sf-shard K/N`` against pytest-split's ``least_duration``.

On example_project: teach a history (--learn full runs), export it as pytest-split's
``.test_durations`` with ``shadowfarm history export``, then run every shard of both
splits for real, one after the other, each shard from a fresh copy of the learned
history (as CI jobs restoring one cache do). Per shard it measures the test time (sum of
the tests' setup+call+teardown, from the run report) and the process wall time, and
prints the largest shard against the mean shard for both tools; with --reps > 1 each
shard's median is used. It also scores both partitions against the same exported
durations, which is free of machine noise.

pytest-split is installed from PyPI into a temporary directory for this benchmark only
(``pip install --target``), never into the project's environment.

    python benchmarks/bench_shard.py              # 4 shards, 2 learning runs, 3 reps
    python benchmarks/bench_shard.py --quick      # 2 shards of 3 modules, 1 rep (CI smoke)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import pytest_command, timed_run

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "example_project"
QUICK_MODULES = ("tests/test_money.py", "tests/test_tax.py", "tests/test_cart.py")


def pytest_run(
    tmp: Path, history: Path, report: Path, args: list[str], env: dict[str, str]
) -> tuple[float, float, dict]:
    """One pytest process in example_project: its wall time, CPU time and run report.

    The CPU time is what a shard costs on a machine of its own: example_project's tests
    do CPU work, so on a shared, loaded machine it stays put while wall times swing.
    """
    cmd = pytest_command(
        "-p",
        "no:cacheprovider",
        "-p",
        "shadowfarm",
        "--sf-github=off",
        f"--sf-history={history}",  # --opt=value: see pytest-dev/pytest#8846
        f"--sf-report-json={report}",
        *args,
    )
    run = timed_run(cmd, cwd=PROJECT, env=env, timeout=1800)
    done, wall, cpu = run.done, run.wall_s, run.cpu_s
    if done.returncode not in (0, 5):
        sys.exit(
            f"pytest failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        )
    return wall, cpu, json.loads(report.read_text())


def install_pytest_split(target: Path) -> str | None:
    """pip install pytest-split into ``target``; return why not, or None when it worked."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target,
         "pytest-split"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pip failed"
    return None


def export_durations(history: Path, out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pytest_shadowfarm.cli.main", "history", "export", str(out),
         "--format", "test-durations", f"--history={history}"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def balance(values: list[float]) -> tuple[float, float, float]:
    """(largest, mean, largest / mean)."""
    mean = statistics.fmean(values)
    return max(values), mean, (max(values) / mean if mean else float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--learn", type=int, default=2, help="full learning runs")
    parser.add_argument("--reps", type=int, default=3, help="runs of every shard")
    parser.add_argument("--quick", action="store_true", help="2 shards of 3 modules, 1 rep")
    args = parser.parse_args()
    selection: list[str] = []
    if args.quick:
        args.shards, args.learn, args.reps = 2, 1, 1
        selection = list(QUICK_MODULES)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("GITHUB_ACTIONS", None)
    with tempfile.TemporaryDirectory(prefix="sf-shard-bench-") as name:
        tmp = Path(name)
        learned = tmp / "learned.sqlite"
        print(
            f"example_project, {args.shards} shards, {args.learn} learning runs, {args.reps} "
            "reps of every shard (machine shared and loaded: read the ratios)"
        )
        for i in range(args.learn):
            wall, _, report = pytest_run(tmp, learned, tmp / "learn.json", selection, env)
            print(f"  learning run {i + 1}: {len(report['tests'])} tests, "
                  f"test time {report['actual_total_s']:.2f}s, wall {wall:.2f}s")  # fmt: skip
        durations = tmp / ".test_durations"
        export_durations(learned, durations)

        split_dir = tmp / "pytest-split"
        why_not = install_pytest_split(split_dir)
        if why_not:
            print(f"pytest-split not available ({why_not}): measuring shadowfarm only")
        split_env = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(split_dir), env.get("PYTHONPATH", "")]),
        }

        tools = {"shadowfarm": {}, "pytest-split": {}} if not why_not else {"shadowfarm": {}}
        for rep in range(args.reps):
            for k in range(1, args.shards + 1):
                for tool in tools:
                    history = tmp / f"{tool}-{k}.sqlite"
                    shutil.copyfile(learned, history)
                    if tool == "shadowfarm":
                        extra, run_env = [f"--sf-shard={k}/{args.shards}"], env
                    else:
                        extra = [f"--splits={args.shards}", f"--group={k}",
                                 "--splitting-algorithm=least_duration",
                                 f"--durations-path={durations}"]  # fmt: skip
                        run_env = split_env
                    wall, cpu, report = pytest_run(
                        tmp, history, tmp / f"{tool}-{k}.json", [*extra, *selection], run_env
                    )
                    runs = tools[tool].setdefault(k, [])
                    runs.append((wall, report["actual_total_s"], cpu, report))
            print(f"  rep {rep + 1} done")

        known = json.loads(durations.read_text())
        print()
        print(f"{'':8}" + "".join(f"| {tool:^48} " for tool in tools))
        print(f"{'shard':8}" + "| {:>6} {:>10} {:>9} {:>9} {:>9} ".format(
            "tests", "test time", "wall", "cpu", "durations") * len(tools))  # fmt: skip
        summary: dict[str, dict[str, list[float]]] = {}
        for k in range(1, args.shards + 1):
            row = f"{k:<8}"
            for tool, per_shard in tools.items():
                runs = per_shard[k]
                wall = statistics.median(r[0] for r in runs)
                test_time = statistics.median(r[1] for r in runs)
                cpu = statistics.median(r[2] for r in runs)
                ran = [t["nodeid"] for t in runs[-1][3]["tests"]]
                # Both partitions scored with the same exported durations (no noise).
                predicted = sum(known.get(n, 0.0) for n in ran)
                row += (
                    f"| {len(ran):>6} {test_time:>9.2f}s {wall:>8.2f}s {cpu:>8.2f}s "
                    f"{predicted:>8.2f}s "
                )
                agg = summary.setdefault(tool, {"wall": [], "test": [], "cpu": [], "durations": []})
                agg["wall"].append(wall)
                agg["test"].append(test_time)
                agg["cpu"].append(cpu)
                agg["durations"].append(predicted)
            print(row)
        print()
        for measure, label in (
            ("durations", "by the exported durations (no noise)"),
            ("test", "actual test time"),
            ("wall", "actual wall time"),
            ("cpu", "actual CPU time of the shard's process (load-independent)"),
        ):
            parts = []
            for tool, agg in summary.items():
                largest, mean, ratio = balance(agg[measure])
                parts.append(f"{tool} {largest:.2f}s / {mean:.2f}s = {ratio:.3f}")
            print(f"largest / mean shard, {label}: " + "; ".join(parts))
        for measure in ("test", "cpu"):
            ours = balance(summary["shadowfarm"][measure])[2]
            verdict = f"shadowfarm largest shard within 10% of the mean ({measure}): {ours <= 1.10}"
            if "pytest-split" in summary:
                theirs = balance(summary["pytest-split"][measure])[2]
                verdict += f"; at least as balanced as pytest-split: {ours <= theirs + 1e-9}"
            print(verdict)
        if "pytest-split" in summary:
            total = {t: sum(a["test"]) for t, a in summary.items()}
            print("total test time over all shards: "
                  + "; ".join(f"{t} {s:.2f}s" for t, s in total.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
