"""The ``shadowfarm`` command line: one module per subcommand group.

A group module (``history.py``, ...) has a ``register(subparsers)`` function that adds
its parser and sets ``run`` on each command: ``run(args, ctx) -> exit code``. The
:class:`Context` carries the outside world (environment, working directory, output
streams, clock) so that ``main([...])`` can be tested in-process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

__all__ = ["CommandGroup", "Context", "whole_number"]


def whole_number(raw: str) -> int:
    """An argparse ``type``: a count, 0 or more."""
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"expected a whole number >= 0, got {raw!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


class CommandGroup(Protocol):
    """A module that adds one subcommand group to ``shadowfarm``."""

    def register(self, subparsers: argparse._SubParsersAction[Any]) -> None: ...


@dataclass(frozen=True)
class Context:
    """What a command may touch besides its arguments."""

    env: Mapping[str, str]
    cwd: Path
    out: TextIO
    err: TextIO
    clock: Callable[[], float] = field(default=time.time)

    def print(self, line: str = "") -> None:
        print(line, file=self.out)

    def warn(self, message: str) -> None:
        print(f"shadowfarm: warning: {message}", file=self.err)

    def path(self, raw: str | Path) -> Path:
        """A path from the command line or environment, relative to :attr:`cwd`."""
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.cwd / path

    def show(self, path: Path) -> str:
        """``path`` as the user wants to read it: relative to :attr:`cwd` when inside it."""
        try:
            return str(path.relative_to(self.cwd))
        except ValueError:
            return str(path)
