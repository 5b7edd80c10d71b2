"""The project's code in a warm worker: what the purge drops, found the same way each time.

The warm-up purges twice (before and after its shadow run); a worker that collected for
the next run (:mod:`farm_server.collection`) and then cannot use that collection purges
once more. :class:`ProjectCode` keeps what those purges share: the rootdir, the pytest
plugin modules and the editable and ``pythonpath`` source folders.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm_server.warmup import (
    editable_roots,
    installed_code_dirs,
    modules_to_purge,
    plugin_module_names,
    purge_modules,
)
from shadowfarm_wire import OWN_PACKAGES

__all__ = ["ProjectCode", "forget_own_modules"]


@dataclass(frozen=True)
class ProjectCode:
    rootdir: Path
    plugins: frozenset[str]
    sources: tuple[str, ...]

    @classmethod
    def of(cls, rootdir: Path, report: Any) -> ProjectCode:
        """For a worker whose warm-up gave ``report`` (its ``pythonpath`` folders)."""
        sources = (*editable_roots(), *report.source_paths)
        return cls(rootdir, frozenset(plugin_module_names()), tuple(sources))

    def modules(self, collected: Iterable[str] = ()) -> list[str]:
        """The project's modules imported now (``collected``: the test modules)."""
        return modules_to_purge(
            self.rootdir,
            sys.modules,
            set(self.plugins),
            self.sources,
            installed_code_dirs(),
            collected,
        )

    def purge(self, collected: Iterable[str] = ()) -> None:
        purge_modules(self.rootdir, set(self.plugins), self.sources, collected)


def forget_own_modules(keep: Collection[str] = ()) -> None:
    """Drop this worker's own modules' names (the code keeps running), but ``keep``.

    They belong to a pytest plugin distribution: a config built while they are in
    ``sys.modules`` warns that they cannot be rewritten, an error under
    ``filterwarnings = error``. The warm-up drops them first thing; whatever the worker
    imports of its own after that (to collect for the next run, to hand off) goes too,
    except what a prepared config imported as a plugin (``keep``: it imports more of
    itself lazily, and must find the same modules).
    """
    for name in [n for n in sys.modules if n.partition(".")[0] in OWN_PACKAGES]:
        if name not in keep:
            del sys.modules[name]
