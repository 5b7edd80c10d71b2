"""The profile: what makes a warm worker reusable by a run.

A warm worker has imported third-party code into its memory. A run may use it only if
that code is exactly what the run would import itself: the same interpreter, the same
installed distributions (names and versions), the same project rootdir and the same
configured warm imports. :attr:`Profile.key` hashes all four; the plugin computes it for
its claim, the daemon registers it, and the worker computes it again in its own
interpreter, so a worker whose environment changed is never handed out.

One module for both sides (plugin and ``farm_server``): two copies would drift apart.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

__all__ = [
    "Profile",
    "current_profile",
    "distributions_hash",
    "installed_distributions",
]

_NORMALIZE = re.compile(r"[-_.]+")


def _normalize(name: str) -> str:
    """PEP 503 normalisation: ``Foo_Bar`` and ``foo-bar`` are one distribution."""
    return _NORMALIZE.sub("-", name).lower()


def installed_distributions(
    distributions: Callable[[], Iterable[metadata.Distribution]] = metadata.distributions,
) -> list[tuple[str, str]]:
    """Sorted ``(normalized name, version)`` of every distribution importable now.

    When a name is installed twice on ``sys.path``, the first one wins, as it does for
    ``import`` and for ``importlib.metadata.version``.
    """
    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if not name:
            continue  # a broken or half-removed install: nothing to import from it
        found.setdefault(_normalize(name), dist.version)
    return sorted(found.items())


def distributions_hash(distributions: Iterable[tuple[str, str]]) -> str:
    """A short stable hash of ``(name, version)`` pairs, whatever their order."""
    text = "\n".join(f"{name}=={version}" for name, version in sorted(set(distributions)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Profile:
    """Everything a warm worker must share with the run that claims it."""

    interpreter: str
    python_version: str
    distributions_hash: str
    rootdir: str
    warm_modules: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        data = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    @property
    def lineage(self) -> tuple[str, str]:
        """Profiles of one lineage replace each other: a newer key retires the older."""
        return (self.interpreter, self.rootdir)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warm_modules"] = list(self.warm_modules)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Build from :meth:`to_dict` output; ValueError names the bad field."""
        values: dict[str, Any] = {}
        for name in ("interpreter", "python_version", "distributions_hash", "rootdir"):
            value = data.get(name)
            if not isinstance(value, str) or not value:
                msg = f"profile field {name!r} must be a non-empty string, got {value!r}"
                raise ValueError(msg)
            values[name] = value
        modules = data.get("warm_modules", [])
        if not isinstance(modules, list | tuple) or not all(isinstance(m, str) for m in modules):
            msg = f"profile field 'warm_modules' must be a list of module names, got {modules!r}"
            raise ValueError(msg)
        return cls(**values, warm_modules=tuple(sorted(set(modules))))


def current_profile(
    rootdir: str,
    warm_modules: Iterable[str] = (),
    *,
    distributions: Iterable[tuple[str, str]] | None = None,
    executable: str | None = None,
    version: str | None = None,
) -> Profile:
    """The profile of this interpreter for a project at ``rootdir``.

    ``distributions`` replaces the installed set (tests use it to simulate an upgrade).
    """
    dists = installed_distributions() if distributions is None else distributions
    return Profile(
        interpreter=executable or sys.executable,
        python_version=version or ".".join(map(str, sys.version_info[:3])),
        distributions_hash=distributions_hash(dists),
        rootdir=str(rootdir),
        warm_modules=tuple(sorted(set(warm_modules))),
    )
