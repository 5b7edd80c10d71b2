"""At the hand-off: the run gets the prepared session when it matches, a fresh one if not.

xdist's worker code calls ``_pytest.config._prepareconfig(args)`` and then
``config.hook.pytest_cmdline_main(config=config)``. :meth:`Reuse.install` puts a
function in place of the first, which:

1. records the run's context (args, environment, cwd, sys.path; workerinput and basetemp
   once xdist has set them) and reports it (the daemon prepares the next worker with it);
2. hands out the :class:`~.prepare.Prepared` config when the context and the fingerprint
   match; otherwise discards it, purges what its collection imported, collects and
   freezes the heap again (:func:`~farm_server.heap.settle`) and builds a fresh config
   as usual.

For a prepared config, :class:`_Session`'s ``pytest_cmdline_main`` checks workerinput,
gives the run its own tmp path factory, lets plugins that read workerinput at configure
time redo it (``pytest_shadowfarm_prepared_handoff``), replays session start and
collection for the plugins the run registered since (xdist's ``WorkerInteractor`` among
them: it tells the controller the worker is ready and what it collected), and runs the
rest of pytest's ``wrap_session``. On a late mismatch it builds the fresh config there.

The outcome ("reused", or "collected: <why>") goes to ``config.workeroutput``, and from
there into the run's report.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from farm_server.collection.context import VOLATILE_ENV, RunContext, portable
from farm_server.collection.prepare import Prepared
from farm_server.heap import settle
from shadowfarm_wire.protocol import COLLECTION_KEY

__all__ = ["Reuse", "run_prepared"]

#: the hook our pytest plugin implements to re-read workerinput (pytest_shadowfarm.newhooks)
HANDOFF_HOOK = "pytest_shadowfarm_prepared_handoff"


class Reuse:
    """The worker's ``_prepareconfig`` from the hand-off on (see the module doc)."""

    def __init__(
        self,
        prepared: Prepared | None,
        *,
        purge: Callable[[list[str]], None],
        on_context: Callable[[RunContext, str], None],
        why_not: str = "",
    ) -> None:
        self.prepared = prepared
        self.purge = purge
        self.on_context = on_context
        #: why there is no prepared session ("" when there is one)
        self.why_not = why_not or ("" if prepared else "no earlier run to prepare for")
        self.original: Callable[..., Any] | None = None
        #: the modules imported when the preparation ended (the prepared config's own)
        self.imported: frozenset[str] = frozenset()

    def install(self) -> None:
        import _pytest.config

        self.original = _pytest.config._prepareconfig
        _pytest.config._prepareconfig = self._prepareconfig

    def _fresh(self, args: list[str], plugins: Any = None, **kwargs: Any) -> Any:
        assert self.original is not None
        return self.original(args, plugins, **kwargs)

    def drop(self, why: str) -> None:
        """Throw the prepared session away; the project's modules go with it."""
        if self.prepared is not None:
            self.prepared.discard()
            self.purge(self.prepared.collected)
            self.prepared = None
            # The prepared session was frozen with the rest of the heap: give it back to
            # the collector (or the run would carry it to its end), then freeze what is
            # left again, or every full collection of the run walks the warm imports.
            gc.unfreeze()
            settle()
        self.why_not = why

    def _prepareconfig(self, args: Any = None, plugins: Any = None, **kwargs: Any) -> Any:
        import _pytest.config

        # Only xdist's call is the run's; a test's own pytest.main() gets pytest's.
        if self.original is not None:
            _pytest.config._prepareconfig = self.original
        args = list(args or [])
        seen = RunContext.of(args, os.environ, os.getcwd(), sys.path)
        prepared = self.prepared
        if prepared is not None:
            why = "; ".join(prepared.context.differences(seen, with_input=False))
            changed = prepared.fingerprint.changed()
            if changed:
                why = why or f"changed since warm-up: {', '.join(changed[:3])}"
            if why:
                self.drop(f"collected: {why}")
            else:
                _restore(prepared)
        if self.prepared is not None:
            config = self.prepared.config
        else:
            config = self._fresh(args, plugins, **kwargs)
        config.pluginmanager.register(_Session(self, seen), "shadowfarm-reuse")
        return config


class _Session:
    """pytest_cmdline_main of the run's config: report the context; run a prepared session."""

    def __init__(self, reuse: Reuse, seen: RunContext) -> None:
        self.reuse = reuse
        #: the context as xdist's code called _prepareconfig (before pytest changed it)
        self.seen = seen
        self.args = list(seen.args)

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: Any) -> Any:
        reuse = self.reuse
        basetemp = getattr(config.option, "basetemp", None)
        workerinput = getattr(config, "workerinput", {})
        seen = dataclasses.replace(
            self.seen,
            workerinput=portable(workerinput),
            basetemp=str(basetemp) if basetemp else None,
        )
        prepared = reuse.prepared
        if prepared is None or prepared.config is not config:
            reuse.on_context(seen, reuse.why_not)
            _outcome(config, reuse.why_not)
            return None  # pytest's own wrap_session
        why = "; ".join(prepared.context.differences(seen, input_keys=prepared.input_read))
        if why:
            return self._fresh_instead(config, seen, f"collected: {why}")
        reuse.on_context(seen, "reused")
        _outcome(config, "reused")
        return run_prepared(config, prepared)

    def _fresh_instead(self, config: Any, seen: RunContext, why: str) -> Any:
        """Late mismatch: build the run's config as xdist would have, on the same channel."""
        from xdist.remote import setup_config

        prepared = self.reuse.prepared
        assert prepared is not None
        new = [p for p in config.pluginmanager.get_plugins() if id(p) not in prepared.plugins]
        interactors = [p for p in new if hasattr(p, "sendevent") and hasattr(p, "channel")]
        self.reuse.drop(why)
        self.reuse.on_context(seen, why)
        _restore_to(self.seen.env, list(self.seen.sys_path))  # as the run set them
        fresh = self.reuse._fresh(self.args)
        setup_config(fresh, config.option.basetemp)
        fresh._parser.prog = config._parser.prog
        fresh.workerinput = config.workerinput
        fresh.workeroutput = config.workeroutput
        for interactor in interactors:
            config.pluginmanager.unregister(interactor)
            type(interactor)(fresh, interactor.channel)
        _outcome(fresh, why)
        return fresh.hook.pytest_cmdline_main(config=fresh)


def _restore(prepared: Prepared) -> None:
    """sys.path and the environment as configuring left them, with this run's volatile ids."""
    _restore_to(prepared.env, prepared.sys_path)


def _restore_to(env: Mapping[str, str], path: list[str]) -> None:
    volatile = {k: os.environ[k] for k in VOLATILE_ENV if k in os.environ}
    os.environ.clear()
    os.environ.update(env)
    os.environ.update(volatile)
    sys.path[:] = path


def _outcome(config: Any, outcome: str) -> None:
    output = getattr(config, "workeroutput", None)
    if isinstance(output, dict):
        output[COLLECTION_KEY] = outcome or "collected"


def run_prepared(config: Any, prepared: Prepared) -> Any:
    """The rest of pytest's ``wrap_session`` (``_pytest/main.py``) for a prepared session."""
    import _pytest._code
    from _pytest.main import ExitCode
    from _pytest.outcomes import Exit, Failed
    from _pytest.tmpdir import TempPathFactory

    session = prepared.session
    config._tmp_path_factory = TempPathFactory.from_config(config, _ispytest=True)
    handoff = getattr(config.hook, HANDOFF_HOOK, None)
    if handoff is not None:
        handoff(config=config)
    new = [p for p in config.pluginmanager.get_plugins() if id(p) not in prepared.plugins]
    session.exitstatus = ExitCode.OK
    started = False
    try:
        try:
            old = [p for p in config.pluginmanager.get_plugins() if p not in new]

            def tell(name: str, **kwargs: Any) -> None:
                config.pluginmanager.subset_hook_caller(name, remove_plugins=old)(**kwargs)

            tell("pytest_sessionstart", session=session)
            started = True
            tell("pytest_collection", session=session)
            for name, kwargs in prepared.calls:
                tell(name, **kwargs)
            tell(
                "pytest_collection_modifyitems", session=session, config=config, items=session.items
            )
            tell("pytest_collection_finish", session=session)
            config.hook.pytest_runtestloop(session=session)
            if session.testsfailed:
                session.exitstatus = ExitCode.TESTS_FAILED
            elif session.testscollected == 0:
                session.exitstatus = ExitCode.NO_TESTS_COLLECTED
        except Failed:
            session.exitstatus = ExitCode.TESTS_FAILED
        except (KeyboardInterrupt, Exit):
            excinfo = _pytest._code.ExceptionInfo.from_current()
            status: Any = ExitCode.INTERRUPTED
            if isinstance(excinfo.value, Exit) and excinfo.value.returncode is not None:
                status = excinfo.value.returncode
            config.hook.pytest_keyboard_interrupt(excinfo=excinfo)
            session.exitstatus = status
        except BaseException:
            session.exitstatus = ExitCode.INTERNAL_ERROR
            excinfo = _pytest._code.ExceptionInfo.from_current()
            try:
                config.notify_exception(excinfo, config.option)
            except Exit as exc:
                if exc.returncode is not None:
                    session.exitstatus = exc.returncode
    finally:
        os.chdir(session.startpath)
        if started:
            try:
                config.hook.pytest_sessionfinish(session=session, exitstatus=session.exitstatus)
            except Exit as exc:
                if exc.returncode is not None:
                    session.exitstatus = exc.returncode
        config._ensure_unconfigure()
    return session.exitstatus
