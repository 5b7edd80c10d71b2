"""``shadowfarm history show|import|export|merge``: look at and move the test history."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pytest_shadowfarm.cli import Context, whole_number
from pytest_shadowfarm.errors import ConfigError, HistoryError
from pytest_shadowfarm.estimate import Estimator
from pytest_shadowfarm.history import FAILING, OUTCOMES, HistoryStore, RunRecord
from pytest_shadowfarm.history.formats import FORMATS, export_history, read_history_file
from pytest_shadowfarm.settings import OPTIONS

__all__ = ["history_path", "register"]

_OPTIONS = {opt.name: opt for opt in OPTIONS}
_HISTORY = _OPTIONS["history"]
_KEEP = _OPTIONS["history_keep"]

HISTORY_HELP = (
    f"the history file (default: ${_HISTORY.env}, else .shadowfarm/history.sqlite in the "
    "current directory: the file the pytest plugin uses when pytest runs from here as "
    f"rootdir and neither {_HISTORY.flag} nor [tool.shadowfarm] {_HISTORY.toml} is set)"
)
KEEP_HELP = (
    f"results kept per test when writing (default: ${_KEEP.env}, else {_KEEP.default}; "
    f"use the plugin's {_KEEP.flag} value so that it does not prune more)"
)

#: "show" reads this JSON version; bump it when a key changes meaning or goes away
SHOW_JSON_VERSION = 1


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    group = subparsers.add_parser(
        "history",
        help="show, import, export and merge the test history",
        description="Show, import, export and merge pytest-shadowfarm's test history.",
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    show = commands.add_parser(
        "show",
        help="what the history knows: runs, slowest tests, last failures",
        description="Summarise the history: its runs, the slowest tests and the last failures.",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.add_argument(
        "--top", type=whole_number, default=10, metavar="N", help="slowest tests to list"
    )
    show.add_argument(
        "--runs", type=whole_number, default=5, metavar="N", help="latest runs to list"
    )
    show.set_defaults(run=run_show)

    imp = commands.add_parser(
        "import",
        help="add a pytest-split, JUnit XML or lastfailed file to the history",
        description="Record one file of another tool as one run in the history.",
    )
    imp.add_argument("file", metavar="FILE")
    imp.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="the file's format (default: auto, detected from its content and name)",
    )
    imp.add_argument(
        "--rootdir",
        metavar="DIR",
        help="where JUnit classnames are looked up as test files (default: current directory)",
    )
    imp.add_argument("--keep", metavar="N", help=KEEP_HELP)
    imp.set_defaults(run=run_import)

    exp = commands.add_parser(
        "export",
        help="write the history as a pytest-split, JUnit XML or lastfailed file",
        description=(
            "Write the history for other tools: test-durations (each test's median "
            "duration, for pytest-split), junit (each test's newest result, for CI "
            "dashboards) or lastfailed (pytest's cache format, for --lf)."
        ),
    )
    exp.add_argument("file", metavar="FILE")
    exp.add_argument(
        "--format",
        choices=FORMATS,
        help="the format to write (default: from FILE's name: *.xml junit, "
        "lastfailed lastfailed, *.json or .test_durations test-durations)",
    )
    exp.set_defaults(run=run_export)

    merge = commands.add_parser(
        "merge",
        help="combine histories (e.g. of CI shards) into one",
        description=(
            "Copy every run of each SOURCE history into TARGET (created if missing). "
            "Runs TARGET already holds are skipped, so shards that started from one "
            "restored history can be merged without counting old runs twice."
        ),
    )
    merge.add_argument("target", metavar="TARGET")
    merge.add_argument("sources", metavar="SOURCE", nargs="+")
    merge.add_argument("--keep", metavar="N", help=KEEP_HELP)
    merge.set_defaults(run=run_merge)

    for command in (show, imp, exp):
        command.add_argument("--history", metavar="PATH", help=HISTORY_HELP)


# --- shared -------------------------------------------------------------------------------


def history_path(raw: str | None, ctx: Context) -> Path:
    """``--history``, else ``$SHADOWFARM_HISTORY``, else ``./.shadowfarm/history.sqlite``."""
    for value in (raw, ctx.env.get(_HISTORY.env)):
        if value and value.strip():
            return ctx.path(value.strip())
    return ctx.cwd / ".shadowfarm" / "history.sqlite"


def _keep(raw: str | None, ctx: Context) -> int:
    for value, source in ((raw, "--keep"), (ctx.env.get(_KEEP.env), _KEEP.env)):
        if value is None or not value.strip():
            continue
        try:
            return int(_KEEP.parse(value))
        except ValueError as exc:
            msg = f"{source}={value!r} is not valid: {exc}"
            raise ConfigError(msg) from None
    return int(_KEEP.default)


def _open_existing(path: Path, ctx: Context) -> HistoryStore:
    """Open a history the user named as input: it must exist and is never moved aside."""
    if not path.is_file():
        msg = (
            f"{ctx.show(path)}: no history file there; run pytest -p shadowfarm first, "
            "import one with 'shadowfarm history import', or pass --history"
        )
        raise HistoryError(msg)
    return HistoryStore.open(path, warn=ctx.warn, repair=False)


# --- show ---------------------------------------------------------------------------------


def _counts_text(counts: dict[str, int]) -> str:
    order = [*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))]
    parts = [f"{counts[o]} {o}" for o in order if counts.get(o)]
    return ", ".join(parts) or "no tests"


def _run_json(run_id: int, run: RunRecord) -> dict[str, Any]:
    return {
        "id": run_id,
        "started": run.started,
        "finished": run.finished,
        "wall_s": run.wall_s,
        "counts": run.counts,
        "git_commit": run.git_commit,
        "git_branch": run.git_branch,
        "workers": run.workers,
        "source": run.source,
    }


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    path = history_path(args.history, ctx)
    with _open_existing(path, ctx) as store:
        summary = store.summary()
        # by start time, not by row id: a merge appends older runs after newer ones
        runs = sorted(store.runs(), key=lambda run: (run[1].started, run[0]))
        by_test = store.results_by_test()
        durations = store.durations()
    estimator = Estimator(durations)
    estimates = sorted(((estimator.etc(n), n) for n in durations), key=lambda e: (-e[0], e[1]))
    slowest = estimates[: args.top]
    last_id = runs[-1][0] if runs else None
    failed = sorted(
        (nodeid, r.outcome)
        for nodeid, results in by_test.items()
        for r in results
        if r.run_id == last_id and r.outcome in FAILING
    )
    latest = list(reversed(runs[-args.runs :])) if args.runs else []
    if args.json:
        data = {
            "version": SHOW_JSON_VERSION,
            "path": str(path),
            "runs": summary.runs,
            "tests": summary.tests,
            "latest_runs": [_run_json(run_id, run) for run_id, run in latest],
            "slowest": [{"nodeid": n, "estimate_s": s} for s, n in slowest],
            "last_run_id": last_id,
            "failed_last_run": [{"nodeid": n, "outcome": o} for n, o in failed],
        }
        ctx.print(json.dumps(data, indent=2))
        return 0
    ctx.print(f"history: {ctx.show(path)}")
    ctx.print(f"runs known: {summary.runs}, tests known: {summary.tests}")
    if latest:
        ctx.print(f"latest {len(latest)} runs (newest first):")
        for run_id, run in latest:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
            commit = f"  commit {run.git_commit[:10]}" if run.git_commit else ""
            ctx.print(
                f"  #{run_id}  {when}  wall {run.wall_s:.1f}s  {_counts_text(run.counts)}"
                f"{commit}  ({run.source})"
            )
    if slowest:
        ctx.print(f"slowest {len(slowest)} tests (estimated seconds):")
        for seconds, nodeid in slowest:
            ctx.print(f"  {seconds:10.3f}  {nodeid}")
    if last_id is not None:
        if failed:
            ctx.print(f"failed in the last run (#{last_id}):")
            for nodeid, outcome in failed:
                ctx.print(f"  {nodeid}  {outcome}")
        else:
            ctx.print(f"no failures in the last run (#{last_id})")
    return 0


# --- import / export / merge ------------------------------------------------------------------


def run_import(args: argparse.Namespace, ctx: Context) -> int:
    file = ctx.path(args.file)
    rootdir = ctx.path(args.rootdir) if args.rootdir else ctx.cwd
    path = history_path(args.history, ctx)
    keep = _keep(args.keep, ctx)
    # Read and check the whole file before the history is opened: a bad file writes nothing.
    imported = read_history_file(file, fmt=args.format, rootdir=rootdir)
    if not imported.results:
        ctx.print(f"{ctx.show(file)} lists no tests; nothing imported")
        return 0
    with HistoryStore.open(path, keep=keep, warn=ctx.warn) as store:
        run_id = store.record_run(imported.run, imported.results)
    ctx.print(
        f"imported {len(imported.results)} results from {ctx.show(file)} into "
        f"{ctx.show(path)} (run #{run_id}, {imported.run.source})"
    )
    return 0


def export_format(file: Path) -> str:
    """The export format a file name asks for; ConfigError saying how to choose one."""
    name = file.name.lower()
    if name == "lastfailed":
        return "lastfailed"
    if file.suffix.lower() == ".xml":
        return "junit"
    if name == ".test_durations" or file.suffix.lower() == ".json":
        return "test-durations"
    msg = (
        f"{file.name}: cannot tell the format from the file name; pass --format "
        f"({', '.join(FORMATS)}) or name it *.xml, *.json, .test_durations or lastfailed"
    )
    raise ConfigError(msg)


def run_export(args: argparse.Namespace, ctx: Context) -> int:
    file = ctx.path(args.file)
    fmt = args.format or export_format(file)
    path = history_path(args.history, ctx)
    with _open_existing(path, ctx) as store:
        count = export_history(store, file, fmt, now=ctx.clock())
    ctx.print(f"exported {count} tests from {ctx.show(path)} to {ctx.show(file)} ({fmt})")
    return 0


def run_merge(args: argparse.Namespace, ctx: Context) -> int:
    target = ctx.path(args.target)
    keep = _keep(args.keep, ctx)
    sources = [ctx.path(raw) for raw in args.sources]
    # Open every source before writing: a bad third source must not leave half a merge.
    opened: list[HistoryStore] = []
    try:
        for source in sources:
            if target.exists() and source.exists() and source.samefile(target):
                ctx.warn(f"{ctx.show(source)} is the target itself; skipped")
                continue
            opened.append(_open_existing(source, ctx))
        with HistoryStore.open(target, keep=keep, warn=ctx.warn) as store:
            for other in opened:
                copied = store.merge_from(other)
                ctx.print(f"merged {copied} runs from {ctx.show(other.path)}")
            summary = store.summary()
    finally:
        for other in opened:
            other.close()
    ctx.print(
        f"{ctx.show(target)} now holds {summary.runs} runs of {summary.tests} tests "
        f"(merged from {len(opened)} files)"
    )
    return 0
