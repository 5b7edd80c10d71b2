"""``shadowfarm``: the console script (``[project.scripts]`` in pyproject.toml).

To add a subcommand group, import its module here and append it to :data:`GROUPS`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from pytest_shadowfarm import __version__
from pytest_shadowfarm.cli import CommandGroup, Context, farm, history
from pytest_shadowfarm.errors import ShadowFarmError

__all__ = ["GROUPS", "build_parser", "main"]

#: the subcommand groups, in the order ``--help`` lists them
GROUPS: tuple[CommandGroup, ...] = (history, farm)

#: exit code of a usage or environment error (argparse uses it for usage errors too)
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowfarm",
        description="Inspect and manage pytest-shadowfarm's test history and farm.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(subparsers)
    return parser


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``shadowfarm`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    ctx = Context(
        env=os.environ if env is None else env,
        cwd=Path.cwd() if cwd is None else cwd,
        out=sys.stdout if out is None else out,
        err=sys.stderr if err is None else err,
    )
    try:
        code: int = args.run(args, ctx)
    except ShadowFarmError as exc:
        message = str(exc)
    except sqlite3.Error as exc:  # e.g. damage SQLite only finds while reading
        message = f"the history database failed: {exc}"
    except OSError as exc:
        message = _describe_os_error(exc)
    except KeyboardInterrupt:
        print("shadowfarm: interrupted", file=ctx.err)
        return 130
    else:
        return code
    print(f"shadowfarm: error: {message}", file=ctx.err)
    return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
