"""What a warm worker does before it is offered: imports, warm-up hook, shadow run, purge.

The shadow run is an in-process ``pytest.main`` over the project: collecting every test
module imports what the suite really imports (lazy submodules included), and a few cheap
tests chosen from history exercise fixtures and first-call code paths. Its outcomes are
the worker's readiness report; a failing shadow run marks the profile unhealthy (a
canary) before a real run uses it.

The assertion-rewritten code of what the shadow run collected is kept by source hash
(:mod:`farm_server.rewrite_cache`): the run re-executes every test module but compiles
again only those whose source changed.

Then :func:`purge_modules` drops every module a run must import fresh: the project's own
code (anything under the rootdir, or under an editable install's source), test modules
and conftests, and any pytest plugin module pytest would find imported without its
rewriting hook (``PytestAssertRewriteWarning``, an error under ``filterwarnings =
error``). A warm worker keeps only third-party and stdlib modules (plugins included when
the shadow run imported them through the hook), so it never runs stale project code.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import linecache
import os
import site
import sys
import sysconfig
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from farm_server.heap import settle
from farm_server.purge import PurgePlan, is_conftest, loose_stdlib, plan_purge, top_hooked
from farm_server.rewrite_cache import RewriteCache
from farm_server.staleness import module_files, project_extensions
from shadowfarm_wire import OWN_PACKAGES

__all__ = [
    "ReadinessReport",
    "ShadowRun",
    "editable_roots",
    "modules_to_purge",
    "plugin_module_names",
    "purge_modules",
    "third_party_modules",
    "warm_up",
]

#: told each step of the warm-up as it starts: (step, done, total); done/total are None
#: when the step has no count. Steps: importing, collecting, warm-up hook, shadow tests,
#: settling (the purge and the heap).
OnStep = Callable[[str, int | None, int | None], None]


def _no_step(step: str, done: int | None, total: int | None) -> None:
    pass


#: environment of the shadow run: it must not write the project's history or report,
#: nor ask the farm for workers (settings read SHADOWFARM_* from the environment)
SHADOW_ENV = {
    "SHADOWFARM_HISTORY": "",  # filled with a path in the worker's temp dir
    "SHADOWFARM_REPORT_JSON": "off",
    "SHADOWFARM_FARM": "off",
}


@dataclass
class ReadinessReport:
    """What the warm-up did; the daemon shows it in ``farm status``."""

    ok: bool = True
    exit_code: int | None = None
    tests: list[dict[str, Any]] = field(default_factory=list)
    import_errors: dict[str, str] = field(default_factory=dict)
    warmup_hook: str = "absent"
    budget_reached: bool = False
    modules: list[str] = field(default_factory=list)
    purged: int = 0
    #: the project's directories pytest's ``pythonpath`` ini option put on sys.path
    source_paths: list[str] = field(default_factory=list)
    #: the test modules the shadow run collected (by name)
    test_modules: list[str] = field(default_factory=list)
    #: project code it keeps (C extensions, packages pytest holds): see staleness.py
    kept_files: dict[str, list[int]] = field(default_factory=dict)
    # the consistent purge (purge.py: "unfit" when impossible), the heap at hand-off
    purge_widened: list[str] = field(default_factory=list)
    purge_dependents: list[str] = field(default_factory=list)
    purge_held: list[str] = field(default_factory=list)
    unfit: str = ""
    heap: dict[str, int] = field(default_factory=dict)
    #: test modules and conftests whose rewritten code the run may reuse (rewrite_cache.py)
    rewritten: int = 0
    #: tests collected for the profile's next run (farm_server.collection), or why not
    prepared: int = 0
    prepared_error: str = ""
    import_s: float = 0.0
    shadow_s: float = 0.0
    total_s: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for t in self.tests if t["outcome"] not in ("passed", "skipped"))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


class ShadowRun:
    """pytest plugin of the shadow run: keep the chosen tests, time-box them, record them."""

    def __init__(
        self,
        selected: Iterable[str],
        budget_s: float,
        report: ReadinessReport,
        on_step: OnStep = _no_step,
    ) -> None:
        self.selected = set(selected)
        self.budget_s = budget_s
        self.report = report
        self.on_step = on_step
        self.t0 = time.perf_counter()
        self.session: Any = None
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.total = 0

    def pytest_collection(self, session: Any) -> None:
        self.on_step("collecting", None, None)

    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        modules = {getattr(getattr(item, "module", None), "__name__", None) for item in items}
        self.report.test_modules = sorted(m for m in modules if m)
        keep = [item for item in items if item.nodeid in self.selected]
        drop = [item for item in items if item.nodeid not in self.selected]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
        self.total = len(keep)

    def pytest_collection_finish(self, session: Any) -> None:
        self.session = session
        self.report.source_paths = [str(p) for p in session.config.getini("pythonpath")]
        # After collection every conftest is loaded, so a hook declared in a nested
        # conftest is seen too.
        hook = getattr(session.config.hook, "pytest_shadowfarm_warmup", None)
        if hook is not None and hook.get_hookimpls():
            self.on_step("warm-up hook", None, None)
            try:
                hook(config=session.config)
                self.report.warmup_hook = "ran"
            except Exception as exc:  # user code: report it, keep the worker
                self.report.warmup_hook = f"error: {type(exc).__name__}: {exc}"
        # The budget is for tests: collection (the imports) always runs to the end.
        self.t0 = time.perf_counter()
        if self.total:
            self.on_step("shadow tests", 0, self.total)

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.outcomes.setdefault(report.nodeid, {"outcome": "passed", "duration_s": 0.0})
        entry["duration_s"] = round(entry["duration_s"] + report.duration, 6)
        if report.failed:
            entry["outcome"] = "failed" if report.when == "call" else "error"
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"
        if report.when == "teardown" and self.total:
            self.on_step("shadow tests", len(self.outcomes), self.total)
        if report.when == "teardown" and time.perf_counter() - self.t0 > self.budget_s:
            self.report.budget_reached = True
            self.session.shouldstop = "shadowfarm: shadow run budget reached"

    def pytest_sessionfinish(self, session: Any) -> None:
        self.report.tests = [{"nodeid": k, **v} for k, v in self.outcomes.items()]


def import_modules(
    names: Iterable[str], report: ReadinessReport, on_step: OnStep = _no_step
) -> None:
    """Import the configured warm modules; one that fails is reported, not fatal."""
    names = list(names)
    for done, name in enumerate(names):
        on_step("importing", done, len(names))
        try:
            importlib.import_module(name)
        except Exception as exc:
            report.import_errors[name] = f"{type(exc).__name__}: {exc}"


def shadow_args(basetemp: Path) -> list[str]:
    args = ["-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}"]
    if importlib.util.find_spec("xdist") is not None:
        args += ["-n", "0"]  # a project's addopts may say "-n auto": the shadow run is local
    return args


def run_shadow(
    rootdir: Path,
    tests: Iterable[str],
    budget_s: float,
    tmpdir: Path,
    report: ReadinessReport,
    environ: MutableMapping[str, str] = os.environ,
    on_step: OnStep = _no_step,
    paths: Iterable[str] = (),
) -> None:
    """Collect the project (or only ``paths``: arguments) and run ``tests`` here."""
    import pytest

    env = {**SHADOW_ENV, "SHADOWFARM_HISTORY": str(tmpdir / "shadow-history.sqlite")}
    saved = {k: environ.get(k) for k in env}
    environ.update(env)
    old_cwd = os.getcwd()
    try:
        os.chdir(rootdir)
        plugin = ShadowRun(tests, budget_s, report, on_step)
        args = [*shadow_args(tmpdir / "basetemp"), *paths]
        report.exit_code = int(pytest.main(args, plugins=[plugin]))
    except BaseException as exc:  # SystemExit from a conftest, anything: keep the worker
        report.exit_code = -1
        report.import_errors["<shadow run>"] = f"{type(exc).__name__}: {exc}"
    finally:
        os.chdir(old_cwd)
        for key, value in saved.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
    # 0 all passed, 5 nothing ran (a collection-only warm-up), 2 interrupted by the
    # budget after a test: all healthy unless a test failed.
    stopped = report.exit_code == 2 and report.budget_reached
    report.ok = (report.exit_code in (0, 5) or stopped) and not report.failed


def plugin_module_names(
    distributions: Callable[[], Iterable[metadata.Distribution]] = metadata.distributions,
) -> set[str]:
    """Top-level module names of every installed pytest plugin (``pytest11`` entry points).

    pytest marks these for assertion rewriting at start-up (``_mark_plugins_for_rewrite``)
    and warns when one is already imported.
    """
    names: set[str] = set()
    for dist in distributions():
        eps = [ep for ep in dist.entry_points if ep.group == "pytest11"]
        if not eps:
            continue
        for ep in eps:
            names.add(ep.value.split(":")[0].strip().split(".")[0])
        for file in dist.files or ():
            parts = Path(str(file)).parts
            if len(parts) == 1 and parts[0].endswith(".py"):
                names.add(parts[0][:-3])
            elif len(parts) == 2 and parts[1] == "__init__.py":
                names.add(parts[0])
    return names


def _module_paths(module: types.ModuleType) -> Iterator[str]:
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        yield file
    for entry in getattr(module, "__path__", None) or ():
        if isinstance(entry, str):
            yield entry


def _is_rewritten(module: types.ModuleType) -> bool:
    loader = getattr(module, "__loader__", None)
    return type(loader).__name__ == "AssertionRewritingHook"


def editable_roots(
    distributions: Callable[[], Iterable[metadata.Distribution]] = metadata.distributions,
) -> list[str]:
    """Source directories of editable installs (PEP 610 ``direct_url.json``).

    Their code can change without any distribution version changing, exactly like the
    project's own: it is never kept warm either.
    """
    roots = []
    for dist in distributions():
        try:
            data = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        url = data.get("url", "") if isinstance(data, dict) else ""
        dir_info = data.get("dir_info") if isinstance(data, dict) else None
        if isinstance(dir_info, dict) and dir_info.get("editable") and url.startswith("file:"):
            roots.append(os.path.realpath(url2pathname(urlparse(url).path)))
    return roots


def modules_to_purge(
    rootdir: Path,
    modules: Mapping[str, types.ModuleType | None],
    plugin_names: set[str],
    editable: Iterable[str] = (),
    installed_dirs: Iterable[str] = (),
    collected: Iterable[str] = (),
) -> list[str]:
    """Names a run must import fresh.

    - code under the rootdir or under an editable install's source (it may have changed);
    - conftests, test modules and other assertion-rewritten project helpers (an installed
      module pytest rewrote only because its name matches ``python_files``, such as
      ``scipy.stats._bws_test``, is third-party code: only the ``collected`` test
      modules go among those);
    - pytest plugin modules that pytest would find imported without its rewriting hook
      (``PytestAssertRewriteWarning``). Plugin modules the shadow run imported through
      the hook pass pytest's check (``mark_rewrite`` accepts a module whose loader is an
      ``AssertionRewritingHook``) and stay warm, as they do across pytester's in-process
      runs; they are third-party code, pinned by the profile's distribution hash.
    """
    roots = [_dir(str(rootdir.resolve())), *(_dir(r) for r in editable)]
    installed = [_dir(os.path.realpath(d)) for d in installed_dirs]

    def is_source(path: str) -> bool:
        real = os.path.realpath(path)
        # A virtualenv inside the project (``proj/.venv``) holds third-party code.
        return any(real.startswith(r) for r in roots) and not any(
            real.startswith(d) for d in installed
        )

    test_modules = set(collected)

    def installed_file(module: types.ModuleType) -> bool:
        paths = [os.path.realpath(p) for p in _module_paths(module)]
        return bool(paths) and all(any(p.startswith(d) for d in installed) for p in paths)

    found = []
    for name, module in modules.items():
        if module is None or name == "__main__":  # the worker's own entry point runs on
            continue
        top = name.partition(".")[0]
        plugin = top in plugin_names
        rewritten = _is_rewritten(module)
        if (
            is_conftest(name)
            or top in OWN_PACKAGES
            or (plugin and not top_hooked(top, modules))
            or (rewritten and not plugin and (name in test_modules or not installed_file(module)))
            or any(is_source(p) for p in _module_paths(module))
        ):
            found.append(name)
    return sorted(found)


def _dir(path: str) -> str:
    return path.rstrip(os.sep) + os.sep


def installed_code_dirs() -> list[str]:
    """Where this interpreter's stdlib and installed distributions live."""
    paths = sysconfig.get_paths()
    found = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    found.update(site.getsitepackages())
    found.add(site.getusersitepackages())
    return sorted(found)


def purge_modules(
    rootdir: Path,
    plugin_names: set[str] | None = None,
    editable: Iterable[str] | None = None,
    collected: Iterable[str] = (),
) -> PurgePlan:
    """Drop :func:`modules_to_purge` widened by :func:`~farm_server.purge.plan_purge` (or
    only them if unsafe) from ``sys.modules`` and every cache of their source."""
    first = modules_to_purge(
        rootdir,
        sys.modules,
        plugin_module_names() if plugin_names is None else plugin_names,
        editable_roots() if editable is None else editable,
        installed_code_dirs(),
        collected,
    )
    fresh = [n for n in first if n in collected or is_conftest(n)]
    plan = plan_purge(first, sys.modules, fresh=fresh, loose=loose_stdlib(sys.modules))
    names = plan.names if plan.safe else first
    for name in names:
        sys.modules.pop(name, None)
    # Directory listings and source lines cached during the warm-up would hide files
    # created or edited since: a run must see the tree as it is now.
    importlib.invalidate_caches()
    linecache.clearcache()
    return plan


def third_party_modules(modules: Iterable[str]) -> list[str]:
    """Top-level names of the non-stdlib modules kept warm (the closest-match signal)."""
    stdlib = sys.stdlib_module_names
    tops = {name.partition(".")[0] for name in modules}
    return sorted(t for t in tops if t not in stdlib and not t.startswith("_") and t != "__main__")


def warm_up(
    *,
    rootdir: Path,
    warm_modules: Iterable[str],
    shadow_tests: Iterable[str],
    budget_s: float,
    tmpdir: Path,
    on_step: OnStep = _no_step,
    plugin_args: Iterable[str] = (),
) -> ReadinessReport:
    """Imports, warm-up hook and shadow run, then the purge. Never raises.

    The shadow run collects only the shadow tests' files, one per test module the runs
    used (not a whole rootdir far larger than what the runs test, nor the suite twice),
    or everything with no shadow tests yet; ``plugin_args``: the runs' ``-p`` options, so
    that the shadow run loads (and keeps warm) the plugins the runs do."""
    report = ReadinessReport()
    t0 = time.perf_counter()
    import_modules(warm_modules, report, on_step)
    report.import_s = round(time.perf_counter() - t0, 3)
    # This worker's own code (farm_server, pytest_shadowfarm) belongs to a pytest plugin
    # distribution: pytest would find it imported and warn that it cannot rewrite it.
    # Dropping the names leaves the running code alone and lets pytest import it afresh.
    plugins = plugin_module_names()
    editable = editable_roots()
    purge_modules(rootdir, plugins, editable)
    rewrites = RewriteCache()
    rewrites.install()
    tests = list(shadow_tests)
    paths = sorted({t.partition("::")[0] for t in tests})
    paths = [*plugin_args, *paths]
    run_shadow(rootdir, tests, budget_s, tmpdir, report, on_step=on_step, paths=paths)
    report.rewritten = len(rewrites.entries)
    report.shadow_s = round(time.perf_counter() - t0 - report.import_s, 3)
    roots = [str(rootdir), *editable, *report.source_paths]
    report.kept_files = project_extensions(sys.modules, roots)
    on_step("settling", None, None)
    plan = purge_modules(rootdir, plugins, [*editable, *report.source_paths], report.test_modules)
    vars(report).update(plan.report_fields())  # purged, purge_widened, ..., unfit
    report.kept_files.update(module_files(sys.modules, plan.held))
    report.modules = third_party_modules(sys.modules)
    report.heap = settle().to_dict()
    report.total_s = round(time.perf_counter() - t0, 3)
    return report
