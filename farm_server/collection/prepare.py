"""Configure pytest and collect the suite during warm-up, as the next run's worker would.

:func:`prepare` does what ``xdist/remote.py`` and pytest's ``wrap_session`` do up to the
end of collection (config from the run's args, xdist's ``setup_config``, configure,
session start, collection) under a :class:`~.context.RunContext` learned from the
profile's last run, and stops there. The :class:`Prepared` session waits for the run.

Stale code stays impossible: the :class:`Fingerprint` holds the content hash of every
project module the collection imported (test modules, conftests, the code under test)
and of the ini file, and the mtime of every directory pytest looked into (a file added,
removed or renamed changes its directory's). Any change since, and the run collects
afresh (:mod:`.reuse`).

A collection with errors is not kept: its reports would have to reach the run's
controller, and a broken collection is not worth a warm start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm_server.collection.context import RunContext

__all__ = ["TESTED", "Fingerprint", "Prepared", "WatchedInput", "prepare", "untested"]

#: what :func:`prepare` and :func:`~.reuse.run_prepared` mirror (pytest's ``wrap_session``,
#: xdist's ``remote.py``) was checked on: distribution -> (lowest, first untested)
TESTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "pytest": ((9, 0), (10,)),
    "pytest-xdist": ((3, 8), (3, 9)),
}


def untested(version_of: Callable[[str], str] | None = None) -> str:
    """Why this interpreter's pytest or xdist cannot be prepared for ("" if they can)."""
    from importlib import metadata

    for dist, (low, high) in TESTED.items():
        try:
            found = (version_of or metadata.version)(dist)
        except metadata.PackageNotFoundError:
            return f"{dist} is not installed"
        parts = tuple(int(p) for p in found.split(".")[:3] if p.isdigit())
        if not low <= parts < high:
            return f"{dist} {found} is outside the tested range"
    return ""


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.blake2b(fh.read(), digest_size=16).hexdigest()
    except OSError:
        return ""


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


@dataclass(frozen=True)
class Fingerprint:
    """Files (content hash) and directories (mtime) a collection depended on."""

    files: Mapping[str, str] = field(default_factory=dict)
    dirs: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def take(cls, files: Iterable[str], dirs: Iterable[str]) -> Fingerprint:
        return cls({f: _digest(f) for f in sorted(set(files))}, {d: _mtime(d) for d in set(dirs)})

    def changed(self) -> list[str]:
        """Files and directories that differ now."""
        found = [f for f, digest in self.files.items() if _digest(f) != digest]
        found += [d for d, mtime in self.dirs.items() if _mtime(d) != mtime]
        return sorted(found)


class WatchedInput(dict[str, Any]):
    """A workerinput that remembers which keys were read (only those decide a match).

    A plugin that reads a per-run value at run time (a seed in a fixture) reads the
    run's own; one that reads it while configuring or collecting makes it count.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def _all(self) -> None:
        self.read.update(super().keys())

    def __iter__(self) -> Any:
        self._all()
        return super().__iter__()

    def keys(self) -> Any:
        self._all()
        return super().keys()

    def items(self) -> Any:
        self._all()
        return super().items()

    def values(self) -> Any:
        self._all()
        return super().values()

    def copy(self) -> dict[str, Any]:
        self._all()
        return dict(super().items())


class _Recorder:
    """Plugin of the preparing config: the directories collected, and any error."""

    def __init__(self) -> None:
        self.dirs: set[str] = set()
        self.errors: list[str] = []

    def pytest_collect_directory(self, path: Path, parent: Any) -> None:
        self.dirs.add(str(path))

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.errors.append(report.nodeid or "<session>")


@dataclass
class Prepared:
    """A configured pytest, session started and collected, waiting for its run."""

    context: RunContext
    config: Any
    session: Any
    fingerprint: Fingerprint
    #: the plugins registered at preparation (the hand-off replays the session-start and
    #: collection hooks for the ones the run registers after)
    plugins: frozenset[int]
    #: the test modules collected (by name)
    collected: list[str] = field(default_factory=list)
    #: ``sys.path`` and the environment as configuring left them (pytest's rootdir and
    #: test directories on sys.path, variables a plugin set): the run gets them back
    sys_path: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: the workerinput keys configuring and collecting read (WatchedInput)
    input_read: frozenset[str] = frozenset()

    @property
    def tests(self) -> int:
        return len(self.session.items)

    def discard(self) -> None:
        """Unconfigure it (pytest_unconfigure for every plugin; capture stops)."""
        # third-party unconfigure code may fail: the run must still start
        with contextlib.suppress(Exception):
            self.config._ensure_unconfigure()


def _apply(context: RunContext) -> None:
    os.environ.clear()
    os.environ.update(context.env)
    os.chdir(context.cwd)
    sys.path[:] = list(context.sys_path)


def _module_files(names: Iterable[str]) -> list[str]:
    files = []
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(path, str):
            files.append(path)
    return files


def prepare(
    context: RunContext,
    project_modules: Callable[[Iterable[str]], list[str]],
) -> Prepared | str:
    """Collect under ``context``; a :class:`Prepared`, or why not (then the caller purges).

    ``project_modules(collected)`` names the project's modules now imported (what the
    warm-up's purge would drop), given the test modules collected.
    """
    from _pytest.config import _prepareconfig
    from _pytest.main import Session
    from xdist.remote import setup_config

    config = None
    try:
        _apply(context)
        config = _prepareconfig(list(context.args), None)
        setup_config(config, context.basetemp)
        argv0 = (context.workerinput.get("mainargv") or ["pytest"])[0]
        config._parser.prog = os.path.basename(str(argv0))
        workerinput = WatchedInput(context.usable_input())
        config.workerinput = workerinput  # type: ignore[attr-defined]
        config.workeroutput = {}  # type: ignore[attr-defined]
        recorder = _Recorder()
        config.pluginmanager.register(recorder, "shadowfarm-prepare")
        config._do_configure()
        session = Session.from_config(config)
        session.exitstatus = 0
        config.hook.pytest_sessionstart(session=session)
        config.hook.pytest_collection(session=session)
        config.pluginmanager.unregister(recorder)
    except BaseException as exc:  # a conftest's SystemExit included: the worker goes on
        if config is not None:
            Prepared(context, config, None, Fingerprint(), frozenset()).discard()
        return f"collecting for the run failed: {type(exc).__name__}: {exc}"
    if recorder.errors or session.testsfailed or session.shouldstop or session.shouldfail:
        Prepared(context, config, session, Fingerprint(), frozenset()).discard()
        errors = ", ".join(recorder.errors[:3])
        return f"collecting for the run reported errors ({errors or 'session stopped'})"
    names = {getattr(getattr(i, "module", None), "__name__", "") for i in session.items}
    collected = sorted(n for n in names if n)
    files = _module_files(project_modules(collected))
    if config.inipath is not None:
        files.append(str(config.inipath))
    fingerprint = Fingerprint.take(files, recorder.dirs)
    plugins = frozenset(id(p) for p in config.pluginmanager.get_plugins())
    config.workerinput = dict(workerinput)  # type: ignore[attr-defined]
    read = frozenset(workerinput.read)
    env = dict(os.environ)
    return Prepared(
        context, config, session, fingerprint, plugins, collected, list(sys.path), env, read
    )
