"""What a collection read, and whether any of it changed since.

A prepared collection depends on more than the project's modules: a test module may read
a data file while it is imported (a list of cases, a golden file's name), and pytest
lists directories to find tests. :class:`Reads` records, through an audit hook
(:pep:`578`), every file opened for reading and every directory listed while collecting;
:class:`Fingerprint` keeps a content hash of each file and the sorted entries of each
directory (a test file added, removed or renamed changes its directory's entries; an
edit that keeps a file's size and mtime still changes its hash).

Left out, because they change without changing what is collected: installed code (the
profile pins it), ``/proc``, ``/sys``, ``/dev``, ``__pycache__`` (bytecode any run may
rewrite) and pytest's cache directory (unless the run selects by it: ``--lf``, ``--ff``,
``--nf``, ``--sw``).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CACHE_SELECTING", "Fingerprint", "Reads"]

#: options that make a run's collection depend on pytest's cache directory
CACHE_SELECTING = (
    "--lf",
    "--last-failed",
    "--ff",
    "--failed-first",
    "--nf",
    "--new-first",
    "--sw",
    "--stepwise",
)
_SYSTEM = ("/proc/", "/sys/", "/dev/")


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.blake2b(fh.read(), digest_size=16).hexdigest()
    except OSError:
        return ""


def _entries(path: str) -> str:
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return ""
    return hashlib.blake2b("\0".join(names).encode(errors="replace"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """Files (content hash) and directories (hash of their entries) a collection read."""

    files: Mapping[str, str] = field(default_factory=dict)
    dirs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def take(cls, files: Iterable[str], dirs: Iterable[str]) -> Fingerprint:
        return cls({f: _digest(f) for f in sorted(set(files))}, {d: _entries(d) for d in set(dirs)})

    def changed(self) -> list[str]:
        """Files and directories that differ now."""
        found = [f for f, digest in self.files.items() if _digest(f) != digest]
        found += [d for d, entries in self.dirs.items() if _entries(d) != entries]
        return sorted(found)


class Reads:
    """Files opened for reading and directories listed while recording.

    An audit hook cannot be removed, so the process installs one and it records only
    into the :class:`Reads` that is recording (``with reads:``).
    """

    _recording: Reads | None = None
    _installed = False

    def __init__(self, ignored: Sequence[str] = ()) -> None:
        self.ignored = tuple(os.path.join(os.path.realpath(p), "") for p in ignored)
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def __enter__(self) -> Reads:
        if not Reads._installed:
            sys.addaudithook(_audit)
            Reads._installed = True
        Reads._recording = self
        return self

    def __exit__(self, *exc: object) -> None:
        Reads._recording = None

    def kept(self, paths: Iterable[str], cache_dir: str | None) -> list[str]:
        """``paths`` that a fingerprint must cover (see the module doc)."""
        ignored = self.ignored + ((os.path.join(cache_dir, ""),) if cache_dir else ())
        found = []
        for path in paths:
            real = os.path.realpath(path)
            parts = real.split(os.sep)
            if real.startswith(_SYSTEM) or "__pycache__" in parts:
                continue
            if not any(os.path.join(real, "").startswith(i) for i in ignored):
                found.append(real)
        return found


def _audit(event: str, args: tuple[Any, ...]) -> None:
    reads = Reads._recording
    if reads is None:
        return
    if event == "open":
        path, mode = args[0], args[1]
        if isinstance(path, str) and (mode is None or mode == "r" or mode == "rb"):
            reads.files.add(path)
    elif event in ("os.listdir", "os.scandir"):
        path = args[0]
        if isinstance(path, str):
            reads.dirs.add(path)
        elif path is None:
            reads.dirs.add(os.getcwd())
