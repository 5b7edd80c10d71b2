"""Code a warm worker cannot forget: the project's C extensions, and where it came from.

:func:`farm_server.warmup.purge_modules` drops the project's Python modules after the
warm-up, so a run imports them fresh. A C extension cannot be dropped: CPython keeps
every extension it loaded (and ``dlopen`` keeps the library), so importing it again after
a rebuild in place still gives the old code. Nor does a project package pytest itself
imported at start-up go (farm_server.purge: a cold run's tests use that copy too). A
worker therefore records those files (path, inode, size, mtime) and, when a run
connects, refuses the hand-off if any of them changed: the run gets a cold worker, the
farm a fresh one.

The project's code is found under its rootdir, its editable installs' sources and the
directories pytest's ``pythonpath`` ini option puts on ``sys.path`` (sibling folders).
"""

from __future__ import annotations

import importlib.machinery
import os
import types
from collections.abc import Iterable, Mapping

__all__ = ["changed_files", "module_files", "project_extensions"]

Signature = tuple[int, int, int]


def _signature(path: str) -> Signature | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def project_extensions(
    modules: Mapping[str, types.ModuleType | None], roots: Iterable[str]
) -> dict[str, list[int]]:
    """Extension modules loaded from under ``roots``: file -> [inode, size, mtime_ns]."""
    prefixes = [os.path.realpath(r).rstrip(os.sep) + os.sep for r in roots]
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found: dict[str, list[int]] = {}
    for module in list(modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(suffixes):
            continue
        real = os.path.realpath(path)
        if any(real.startswith(p) for p in prefixes):
            signature = _signature(real)
            if signature is not None:
                found[real] = list(signature)
    return found


def module_files(
    modules: Mapping[str, types.ModuleType | None], tops: Iterable[str]
) -> dict[str, list[int]]:
    """The source files of the modules of the top-level packages ``tops``."""
    wanted = set(tops)
    found: dict[str, list[int]] = {}
    for name, module in list(modules.items()):
        path = getattr(module, "__file__", None)
        if name.partition(".")[0] not in wanted or not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        signature = _signature(real)
        if signature is not None:
            found[real] = list(signature)
    return found


def changed_files(recorded: Mapping[str, list[int]]) -> list[str]:
    """The recorded files that were rebuilt, edited, replaced or removed since."""
    return [path for path, signature in recorded.items() if _signature(path) != tuple(signature)]
