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

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Profile",
    "cached_distributions_hash",
    "current_profile",
    "distributions_hash",
    "installed_distributions",
    "path_fingerprint",
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


#: what :mod:`importlib.metadata` reads a distribution from, in a ``sys.path`` directory
METADATA_SUFFIXES = (".dist-info", ".egg-info")


def _metadata_entries(entry: str) -> str:
    """The distribution metadata a ``sys.path`` entry holds: names and mtimes, or its stat."""
    try:
        with os.scandir(entry or ".") as it:
            found = sorted(
                f"{e.name}:{e.stat().st_mtime_ns}" for e in it if e.name.endswith(METADATA_SUFFIXES)
            )
    except NotADirectoryError:  # a zip or an egg: it changes as a whole
        try:
            st = os.stat(entry)
        except OSError:
            return "-"
        return f"file:{st.st_mtime_ns}:{st.st_size}"
    except OSError:
        return "-"
    return ",".join(found)


def path_fingerprint(paths: Iterable[str] | None = None) -> str:
    """A hash of the interpreter and of the distribution metadata on ``sys.path``.

    Installing, upgrading or removing a distribution adds, renames or removes a
    ``*.dist-info`` (or ``*.egg-info``) entry in a ``sys.path`` directory. Other files
    in those directories do not count: the project's own directory is often on
    ``sys.path`` (``python -m pytest``, ``PYTHONPATH``), and a report or coverage file
    written there must not cost a full metadata read on the next run's claim.
    """
    parts = [sys.executable]
    for entry in sys.path if paths is None else paths:
        parts.append(f"{entry}\0{_metadata_entries(entry)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cached_distributions_hash(cache: Path, keep: int = 20) -> str:
    """:func:`distributions_hash` of the installed set, remembered per path fingerprint.

    Reading every distribution's metadata costs 70 ms (53 distributions) on the
    critical path of a run's start; listing the metadata entries of each ``sys.path``
    directory tells whether it can have changed, in under a millisecond. A wrong cache
    entry cannot hand out a stale worker: the worker computes its key from the metadata
    itself and refuses a client whose key differs.
    """
    fingerprint = path_fingerprint()
    try:
        known = json.loads(cache.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    value = known.get(fingerprint)
    if isinstance(value, str):
        return value
    value = distributions_hash(installed_distributions())
    known = {k: v for k, v in list(known.items())[-(keep - 1) :]}
    known[fingerprint] = value
    with contextlib.suppress(OSError):
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, cache)
    return value


def current_profile(
    rootdir: str,
    warm_modules: Iterable[str] = (),
    *,
    distributions: Iterable[tuple[str, str]] | None = None,
    executable: str | None = None,
    version: str | None = None,
    cache: Path | None = None,
) -> Profile:
    """The profile of this interpreter for a project at ``rootdir``.

    ``distributions`` replaces the installed set (tests use it to simulate an upgrade);
    ``cache`` remembers the distributions hash per :func:`path_fingerprint`.
    """
    if distributions is not None:
        dists_hash = distributions_hash(distributions)
    elif cache is not None:
        dists_hash = cached_distributions_hash(cache)
    else:
        dists_hash = distributions_hash(installed_distributions())
    return Profile(
        interpreter=executable or sys.executable,
        python_version=version or ".".join(map(str, sys.version_info[:3])),
        distributions_hash=dists_hash,
        rootdir=str(rootdir),
        warm_modules=tuple(sorted(set(warm_modules))),
    )
