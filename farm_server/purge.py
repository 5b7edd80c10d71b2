"""Make a purge consistent: whole packages, and everything that took objects from them.

The first purge rule (project code, test modules, conftests, unhooked plugins) names
single modules. When those sit inside a package that otherwise stays warm (tests that
live in the installed package under test: ``pkg/core/tests/test_x.py`` collected
through ``testpaths`` or ``--pyargs``), dropping only them is a *partial* purge: the
run re-imports ``pkg.core.tests.test_x``, which registers fresh classes in the kept
``pkg.core`` that still holds the shadow run's ones. Outcomes then differ from a cold
run (duplicate registrations, identity checks on stale classes, lookups of keys that
only the old objects had).

:func:`plan_purge` widens the names to whole top-level packages, then adds every kept
module whose globals hold a module, class or function of a dropped one (it imported
from it), until nothing changes. What cannot be imported twice in one process
(extension modules, the stdlib, pytest itself) is never dropped: a plan that would
need to drop one is *unsafe*, and the worker is not offered warm for that profile.

One kind of project code stays: a package pytest itself imported at start-up (pytest
imports pygments to colour its output, and iniconfig and packaging to read its
configuration). A cold run's tests get that start-up copy too, so a warm worker keeps
its copy (:attr:`PurgePlan.held`) rather than import a second one beside it; the worker
records the files and refuses a hand-off once they change (farm_server.staleness).
Such a package cannot stay when it holds a module that must be fresh (a conftest or a
collected test module); the plan is then unsafe.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "STARTUP_MODULES",
    "PurgePlan",
    "is_conftest",
    "is_extension",
    "loose_stdlib",
    "plan_purge",
    "top_hooked",
]

#: modules a worker must keep whatever happens: the interpreter's own, and pytest's
#: (pytest refuses to run twice in a process whose ``_pytest`` was re-imported)
PINNED_TOPS = frozenset({"__main__", "builtins", "sys", "_pytest", "pytest", "pluggy", "py"})

#: this distribution's top-level packages (shadowfarm_wire.OWN_PACKAGES) are never kept
#: warm: they carry the shadow run's settings, read from its SHADOWFARM_* environment

_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)

#: what the worker process had imported when this module was (its own start-up)
STARTUP_MODULES = frozenset(sys.modules)

#: pytest's own top-level modules: a project package one of them holds was imported by
#: pytest at start-up, before any project code ran
PYTEST_TOPS = frozenset({"_pytest", "pytest"})


@dataclass
class PurgePlan:
    """The names to drop, and why the plan cannot be carried out if it cannot."""

    names: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)  # top-level packages dropped whole
    held: list[str] = field(default_factory=list)  # project packages pytest holds: kept
    dependents: list[str] = field(default_factory=list)  # kept modules that took from them
    unsafe: str = ""  # non-empty: a module that would have to go and cannot

    @property
    def safe(self) -> bool:
        return not self.unsafe

    def report_fields(self) -> dict[str, Any]:
        """The readiness report's fields about the purge."""
        return {
            "purged": len(self.names),
            "purge_widened": self.widened,
            "purge_dependents": self.dependents,
            "purge_held": self.held,
            "unfit": f"a consistent purge is impossible: {self.unsafe}" if self.unsafe else "",
        }


def _top(name: str) -> str:
    return name.partition(".")[0]


def top_hooked(top: str, modules: Mapping[str, types.ModuleType | None]) -> bool:
    """Whether the top-level module ``top`` came in through pytest's rewriting hook.

    pytest checks only the names it marks, a plugin distribution's top-level modules
    (``AssertionRewritingHook.mark_rewrite``): a plugin whose top came in through the
    hook stays whole (its extension modules, never rewritten, included); one whose top
    did not goes whole.
    """
    module = modules.get(top)
    loader = getattr(module, "__loader__", None)
    return type(loader).__name__ == "AssertionRewritingHook"


def is_conftest(name: str) -> bool:
    return name == "conftest" or name.endswith(".conftest")


def is_extension(module: types.ModuleType) -> bool:
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and file.endswith(_EXTENSION_SUFFIXES)


def _cannot_reimport(
    name: str, module: types.ModuleType, stdlib: frozenset[str], loose: frozenset[str]
) -> str:
    top = _top(name)
    if top in PINNED_TOPS or (top in stdlib and name not in loose):
        return "pinned"
    if is_extension(module):
        # CPython cannot load most extension modules twice in one process (numpy says
        # so outright; others keep C-level state pointing at the first copy).
        return "extension module"
    return ""


def _origin(value: object) -> str | None:
    """The module a global came from: modules, classes and functions only.

    Only ``__module__`` of types and functions (held in their own slots) is read, so
    no user ``__getattr__`` or property runs during the scan.
    """
    if isinstance(value, types.ModuleType):
        return value.__name__
    if isinstance(value, (type, types.FunctionType)):
        mod = value.__dict__.get("__module__") if isinstance(value, type) else value.__module__
        return mod if isinstance(mod, str) else None
    return None


def _taken(module: types.ModuleType, tops: set[str]) -> set[str]:
    """Which of ``tops`` the globals of ``module`` hold a module, class or function of."""
    try:
        values = list(vars(module).values())
    except TypeError:
        return set()
    found = set()
    for value in values:
        origin = _origin(value)
        if origin is not None and _top(origin) in tops:
            found.add(_top(origin))
    return found


def loose_stdlib(modules: Mapping[str, types.ModuleType | None]) -> list[str]:
    """Pure-Python stdlib modules imported since the worker started (``plan_purge``'s
    ``loose``): neither frozen, built in nor an extension."""
    found = []
    for name, module in modules.items():
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if (
            name not in STARTUP_MODULES
            and _top(name) in sys.stdlib_module_names
            and isinstance(origin, str)
            and origin.endswith(".py")
        ):
            found.append(name)
    return found


def plan_purge(
    names: Iterable[str],
    modules: Mapping[str, types.ModuleType | None],
    keep: Iterable[str] = (),
    stdlib: Iterable[str] = sys.stdlib_module_names,
    fresh: Iterable[str] = (),
    loose: Iterable[str] = (),
) -> PurgePlan:
    """Widen ``names`` into a consistent purge of ``modules`` (see the module doc).

    ``keep`` are top-level names that stay whatever refers to them (the worker's own
    running code: its re-imported copy is the run's, the old one only finishes serving);
    ``fresh`` are the names that must go whatever holds them (conftests, test modules);
    ``loose`` are stdlib modules that may go with them: pure Python, imported since the
    worker started (a project that patched ``doctest`` with its own function, as sympy
    does, leaves doctest holding it; the run imports a fresh doctest and patches that).
    """
    stdlib_set, loose_set = frozenset(stdlib), frozenset(loose)
    kept_tops = set(keep)
    live = {n: m for n, m in modules.items() if m is not None}
    first = set(names) & set(live)
    dropped_tops = {_top(n) for n in first} - kept_tops
    plan = PurgePlan()
    must_go = {_top(n) for n in fresh}
    held: set[str] = set()
    for name, module in live.items():
        if _top(name) in PYTEST_TOPS:
            held |= _taken(module, dropped_tops) - must_go
    dropped_tops -= held
    first = {n for n in first if _top(n) not in held}
    # A top-level package is dropped whole when any of its modules goes.
    widened = {t for t in dropped_tops if any(_top(n) == t and n not in first for n in live)}
    plan.widened = sorted(widened)
    dependents: set[str] = set()
    while True:
        more = {
            _top(n)
            for n, m in live.items()
            if _top(n) not in dropped_tops
            and _top(n) not in kept_tops
            and _top(n) != "__main__"
            and _taken(m, dropped_tops)
        }
        if not more:
            break
        dependents |= more
        dropped_tops |= more
    plan.dependents = sorted(dependents)
    plan.held = sorted(held - dropped_tops)  # one that took from a dropped one goes
    chosen = first | {n for n in live if _top(n) in dropped_tops}
    plan.names = sorted(chosen)
    for name in plan.names:
        if name in first and _top(name) not in widened and _top(name) not in dependents:
            continue  # the first rule's own names: pure Python by construction
        reason = _cannot_reimport(name, live[name], stdlib_set, loose_set)
        if reason:
            plan.unsafe = f"{name} ({reason}) would have to be imported again"
            break
    return plan
