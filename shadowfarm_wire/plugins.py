"""The ``-p`` options of a run, which a warm-up repeats so that it loads the run's plugins.

A warm-up's shadow run loads the plugins the runs load and blocks those they block
(``-p no:NAME``): a plugin imported while warming stays imported, and some patch other
libraries when they load (schemathesis registers a PRNG with hypothesis), so a plugin the
run blocks must not load in its warm worker either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["PLUGIN_NAME", "as_options", "plugin_names"]

#: what a ``-p`` value may be: a module or entry-point name, ``no:`` before it to block
#: one; never an option (it becomes an argument of the shadow run)
PLUGIN_NAME = r"^(no:)?[A-Za-z0-9_][\w.:-]{0,199}$"
_VALID = re.compile(PLUGIN_NAME)


def plugin_names(args: Sequence[str]) -> list[str]:
    """The NAMEs of the ``-p NAME`` / ``-pNAME`` options in pytest arguments, in order."""
    found: list[str] = []
    for i, arg in enumerate(args):
        if arg == "-p" and i + 1 < len(args):
            name = args[i + 1]
        elif arg.startswith("-p") and len(arg) > 2:
            name = arg[2:].lstrip("=")
        else:
            continue
        if _VALID.match(name):
            found.append(name)
    return found


def as_options(names: Iterable[str]) -> list[str]:
    """``-p NAME`` for each name, as pytest's arguments."""
    return [option for name in names for option in ("-p", name)]
