"""What an xdist worker of a run starts from, and how two runs' contexts differ.

xdist's worker code (``xdist/remote.py``) receives ``(workerinput, args, option_dict,
sys_path)``, sets three ``PYTEST_XDIST_*`` variables and builds its config from ``args``
in the worker's cwd and environment. A collection made under the same context, over
unchanged files (:mod:`.prepare`'s fingerprint), is the collection the run would make.

Left out of the comparison, because they change every run without changing what is
collected: the run's unique id (``testrunuid``, ``PYTEST_XDIST_TESTRUNUID``) and its
basetemp (the run's tmp path factory is rebuilt at the hand-off). Values that cannot
travel as JSON (the execnet channels plugins put in workerinput) compare by type.

The environment is part of the context (a conftest may read it while collecting): a
worker's context holds the run's environment, secrets included. The daemon keeps it in
memory only and gives it to no one but the next worker of the same profile, which the
same user's next run connects to anyway.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shadowfarm_wire.plugins import as_options, plugin_names

__all__ = ["UNPORTABLE", "VOLATILE_ENV", "VOLATILE_INPUT", "RunContext", "portable"]

#: environment variables that differ between runs whatever the run does
VOLATILE_ENV = frozenset({"PYTEST_XDIST_TESTRUNUID", "PYTEST_CURRENT_TEST"})
#: workerinput keys that differ between runs whatever the run does
VOLATILE_INPUT = frozenset({"testrunuid"})
#: key of the stand-in for a workerinput value JSON cannot carry: {UNPORTABLE: type name}
UNPORTABLE = "shadowfarm-unportable"


def portable(workerinput: Mapping[str, Any]) -> dict[str, Any]:
    """``workerinput`` without its volatile keys; values JSON cannot carry become their type."""
    found: dict[str, Any] = {}
    for key, value in workerinput.items():
        if key in VOLATILE_INPUT:
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = {UNPORTABLE: f"{type(value).__module__}.{type(value).__qualname__}"}
        found[str(key)] = value
    return found


@dataclass(frozen=True)
class RunContext:
    """One xdist worker's starting point (see the module doc)."""

    args: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    sys_path: tuple[str, ...]
    workerinput: Mapping[str, Any] = field(default_factory=dict)
    basetemp: str | None = None

    @classmethod
    def of(
        cls,
        args: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        sys_path: Sequence[str],
        workerinput: Mapping[str, Any] | None = None,
        basetemp: str | None = None,
    ) -> RunContext:
        return cls(
            tuple(str(a) for a in args),
            {k: v for k, v in env.items() if k not in VOLATILE_ENV},
            cwd,
            tuple(p for p in sys_path if isinstance(p, str)),
            portable(workerinput or {}),
            basetemp,
        )

    def usable_input(self) -> dict[str, Any]:
        """The workerinput a preparing worker can give pytest: the stand-ins left out."""
        return {
            k: v
            for k, v in self.workerinput.items()
            if not (isinstance(v, dict) and UNPORTABLE in v)
        }

    def plugin_args(self) -> list[str]:
        """The ``-p NAME`` options of the run's arguments (which plugins load, or not)."""
        return as_options(plugin_names(self.args))

    @property
    def workerid(self) -> str:
        return str(self.workerinput.get("workerid", ""))

    def differences(
        self, other: RunContext, *, with_input: bool = True, input_keys: Iterable[str] = ()
    ) -> list[str]:
        """What differs from ``other``, by name (values are not shown: they may be secrets).

        ``input_keys``: the workerinput keys that count (those read while collecting).
        """
        found = []
        if self.args != other.args:
            found.append("arguments")
        if self.cwd != other.cwd:
            found.append("working directory")
        if self.sys_path != other.sys_path:
            found.append("sys.path")
        env = sorted(k for k in {*self.env, *other.env} if self.env.get(k) != other.env.get(k))
        if env:
            shown = ", ".join(env[:3]) + (", ..." if len(env) > 3 else "")
            found.append(f"environment ({shown})")
        if with_input:
            mine, theirs = self.workerinput, other.workerinput
            keys = sorted(k for k in set(input_keys) if mine.get(k) != theirs.get(k))
            if keys:
                found.append(f"workerinput ({', '.join(keys[:3])})")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "args": list(self.args),
            "env": dict(self.env),
            "cwd": self.cwd,
            "sys_path": list(self.sys_path),
            "workerinput": dict(self.workerinput),
            "basetemp": self.basetemp,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunContext:
        return cls.of(
            data["args"],
            data["env"],
            data["cwd"],
            data["sys_path"],
            data.get("workerinput") or {},
            data.get("basetemp"),
        )
