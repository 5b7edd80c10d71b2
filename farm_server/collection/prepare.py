"""Configure pytest and collect the suite during warm-up, as the next run's worker would.

:func:`prepare` does what ``xdist/remote.py`` and pytest's ``wrap_session`` do up to the
end of collection (config from the run's args, xdist's ``setup_config``, configure,
session start, collection) under a :class:`~.context.RunContext` learned from the
profile's last run, and stops there. The :class:`Prepared` session waits for the run.

Stale code stays impossible: the :class:`~.fingerprint.Fingerprint` holds the content
hash of every project module the collection imported (test modules, conftests, the code
under test), of the ini file and of every other file it read, and the entries of every
directory it listed. Any change since, and the run collects afresh (:mod:`.reuse`).

What the collection told plugins that only the run brings (xdist's worker sends failed
collections to its controller) is recorded and told to them at hand-off.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from farm_server.collection.context import RunContext
from farm_server.collection.fingerprint import CACHE_SELECTING, Fingerprint, Reads

__all__ = ["TESTED", "Prepared", "WatchedInput", "prepare", "untested"]

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
    """Plugin of the preparing config: what the run's own plugins must still be told
    (failed collections), as (hook name, kwargs). Warnings need no recording: pytest
    calls ``pytest_warning_recorded`` as a historic hook, and pluggy repeats it to every
    plugin registered later, the run's included."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def pytest_collectreport(self, report: Any) -> None:
        if not report.passed:  # what xdist's worker sends to its controller, too
            self.calls.append(("pytest_collectreport", {"report": report}))


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
    #: hook calls to repeat for the run's plugins: (hook name, kwargs), in order
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def tests(self) -> int:
        return len(self.session.items)

    def discard(self) -> None:
        _unconfigure(self.config)


def _unconfigure(config: Any) -> None:
    """pytest_unconfigure for every plugin (capture stops); third-party unconfigure code
    may fail, and the run must still start."""
    with contextlib.suppress(Exception):
        config._ensure_unconfigure()


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
    installed: Iterable[str] = (),
) -> Prepared | str:
    """Collect under ``context``; a :class:`Prepared`, or why not (then the caller purges).

    ``project_modules(collected)`` names the project's modules now imported (what the
    warm-up's purge would drop), given the test modules collected; ``installed``: where
    installed code lives (its reads are pinned by the profile, not fingerprinted).
    """
    from _pytest.config import _prepareconfig
    from _pytest.main import Session
    from xdist.remote import setup_config

    config = None
    reads = Reads(ignored=list(installed))
    try:
        _apply(context)
        with reads:
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
            _unconfigure(config)
        return f"collecting for the run failed: {type(exc).__name__}: {exc}"
    if session.shouldstop or session.shouldfail:
        _unconfigure(config)
        return f"collecting for the run stopped: {session.shouldstop or session.shouldfail}"
    read = frozenset(workerinput.read)
    names = {getattr(getattr(i, "module", None), "__name__", "") for i in session.items}
    collected = sorted(n for n in names if n)
    files = [*_module_files(project_modules(collected)), *reads.files]
    if config.inipath is not None:
        files.append(str(config.inipath))
    selects_by_cache = any(a.split("=")[0] in CACHE_SELECTING for a in context.args)
    cache = None if selects_by_cache else _cache_dir(config)
    fingerprint = Fingerprint.take(reads.kept(files, cache), reads.kept(reads.dirs, cache))
    plugins = frozenset(id(p) for p in config.pluginmanager.get_plugins())
    env, path = dict(os.environ), list(sys.path)
    calls = recorder.calls
    return Prepared(
        context, config, session, fingerprint, plugins, collected, path, env, read, calls
    )


def _cache_dir(config: Any) -> str | None:
    cache = getattr(config, "cache", None)
    path = getattr(cache, "_cachedir", None)
    return os.path.realpath(path) if path is not None else None
