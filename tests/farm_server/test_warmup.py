"""Which modules a warm worker drops before it serves, and the warm-up's helpers."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from farm_server.idle import _can_restore as can_restore
from farm_server.idle import lowered_priority
from farm_server.staleness import changed_files, module_files
from farm_server.warmup import (
    editable_roots,
    modules_to_purge,
    plugin_module_names,
    purge_modules,
    third_party_modules,
)


class AssertionRewritingHook:
    """Stands for pytest's loader: only its class name is checked."""


def module(
    name: str, file: str | None = None, *, path: list[str] | None = None
) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = file
    if path is not None:
        mod.__path__ = path
    return mod


@dataclass
class EntryPoint:
    group: str
    value: str


@dataclass
class FakeDist:
    entry_points: list[EntryPoint]
    files: list[str]


class TestModulesToPurge:
    def test_project_tests_conftests_and_unhooked_plugins_go(self, tmp_path: Path):
        """Only numpy, json and a plugin imported through pytest's hook survive."""
        root = tmp_path / "proj"
        hooked = AssertionRewritingHook()
        helper = module("helpers_outside", "/elsewhere/helpers_outside.py")
        helper.__loader__ = hooked  # type: ignore[assignment]
        timeout = module("pytest_timeout", "/site/pytest_timeout.py")
        timeout.__loader__ = hooked  # type: ignore[assignment]
        modules = {
            "mylib": module("mylib", str(root / "src" / "mylib.py")),
            "mylib.sub": module("mylib.sub", str(root / "src" / "mylib" / "sub.py")),
            "nspkg": module("nspkg", None, path=[str(root / "nspkg")]),
            "conftest": module("conftest", "/anywhere/conftest.py"),
            "tests.conftest": module("tests.conftest", "/anywhere/tests/conftest.py"),
            "helpers_outside": helper,
            "xdist": module("xdist", "/site/xdist/__init__.py"),
            "xdist.remote": module("xdist.remote", "/site/xdist/remote.py"),
            "pytest_timeout": timeout,
            "devlib": module("devlib", "/src/devlib/devlib/__init__.py"),
            "numpy": module("numpy", "/site/numpy/__init__.py"),
            "json": module("json", "/usr/lib/json/__init__.py"),
            "gone": None,
        }
        purge = modules_to_purge(
            root,
            modules,  # type: ignore[arg-type]
            plugin_names={"xdist", "pytest_timeout"},
            editable=["/src/devlib"],
        )
        kept = sorted(set(modules) - set(purge) - {"gone"})
        assert kept == ["json", "numpy", "pytest_timeout"]

    def test_a_virtualenv_inside_the_project_is_third_party(self, tmp_path: Path):
        """proj/.venv/lib/site-packages is installed code, not the project's own."""
        root = tmp_path / "proj"
        site_packages = root / ".venv" / "lib" / "python3" / "site-packages"
        modules = {
            "numpy": module("numpy", str(site_packages / "numpy" / "__init__.py")),
            "mylib": module("mylib", str(root / "src" / "mylib.py")),
        }
        purge = modules_to_purge(
            root,
            modules,  # type: ignore[arg-type]
            set(),
            editable=[str(root)],
            installed_dirs=[str(site_packages)],
        )
        assert purge == ["mylib"]

    def test_an_installed_module_rewritten_for_its_name_alone_stays_warm(self, tmp_path: Path):
        """scipy.stats._bws_test matches ``*_test.py``, so pytest rewrites it on import; it
        is third-party code all the same. A test module collected from an installed
        package (tests inside the package under test) still goes."""
        site_packages = tmp_path / "site-packages"
        hooked = AssertionRewritingHook()

        def rewritten(name: str, path: Path) -> types.ModuleType:
            made = module(name, str(path))
            made.__loader__ = hooked  # type: ignore[assignment]
            return made

        modules = {
            "scipy.stats._bws_test": rewritten(
                "scipy.stats._bws_test", site_packages / "scipy" / "stats" / "_bws_test.py"
            ),
            "pkg.tests.test_core": rewritten(
                "pkg.tests.test_core", site_packages / "pkg" / "tests" / "test_core.py"
            ),
        }
        purge = modules_to_purge(
            tmp_path / "proj",
            modules,  # type: ignore[arg-type]
            set(),
            installed_dirs=[str(site_packages)],
            collected=["pkg.tests.test_core"],
        )
        assert purge == ["pkg.tests.test_core"]

    def test_the_main_module_stays_even_when_its_file_is_project_code(self, tmp_path: Path):
        """The worker runs as ``python -m farm_server.worker``: with the farm installed
        editable (or its own repository under test) ``__main__``'s file is source code,
        and without ``sys.modules['__main__']`` inspect.getmodule raises KeyError (a
        sympy test failed warm only)."""
        root = tmp_path / "proj"
        modules = {
            "__main__": module("__main__", str(root / "farm_server" / "worker.py")),
            "mylib": module("mylib", str(root / "src" / "mylib.py")),
        }
        assert modules_to_purge(root, modules, set()) == ["mylib"]  # type: ignore[arg-type]

    def test_a_symlinked_project_path_is_still_the_project(self, tmp_path: Path):
        """A module imported through a symlink to the rootdir is project code."""
        root = tmp_path / "proj"
        (root / "src").mkdir(parents=True)
        (root / "src" / "mylib.py").write_text("")
        link = tmp_path / "link"
        link.symlink_to(root)
        modules = {"mylib": module("mylib", str(link / "src" / "mylib.py"))}
        assert modules_to_purge(root, modules, set()) == ["mylib"]  # type: ignore[arg-type]


class TestEditableRoots:
    def test_editable_installs_are_found_from_direct_url(self):
        """PEP 610 direct_url.json with dir_info.editable names the source directory."""

        class Dist:
            def __init__(self, text: str | None) -> None:
                self.text = text

            def read_text(self, name: str) -> str | None:
                return self.text

        dists = [
            Dist('{"url": "file:///src/devlib", "dir_info": {"editable": true}}'),
            Dist('{"url": "file:///src/built", "dir_info": {}}'),
            Dist('{"url": "https://example.org/x.whl", "archive_info": {}}'),
            Dist("not json"),
            Dist(None),
        ]
        assert editable_roots(lambda: dists) == [os.path.realpath("/src/devlib")]  # type: ignore[arg-type, return-value]


class TestPluginModuleNames:
    def test_a_package_pytest_holds_stays_and_its_files_are_watched(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        """A project package pytest imported for itself keeps its warm copy (a cold run's
        tests share pytest's); its files are recorded, an edit shows as a change."""
        root = tmp_path / "proj"
        (root / "heldpkg").mkdir(parents=True)
        init = root / "heldpkg" / "__init__.py"
        init.write_text("class Lexer: pass\n")
        held = module("heldpkg", str(init), path=[str(root / "heldpkg")])
        exec(init.read_text(), vars(held))
        holder = module("_pytest.holder", "/site/_pytest/holder.py")
        holder.Lexer = held.Lexer  # type: ignore[attr-defined]
        mods = {"heldpkg": held, "_pytest.holder": holder}
        mods["conftest"] = module("conftest", str(root / "conftest.py"))
        monkeypatch.setattr(sys, "modules", mods)
        plan = purge_modules(root, plugin_names=set(), editable=[])
        assert (plan.safe, plan.held, plan.names) == (True, ["heldpkg"], ["conftest"])
        assert set(mods) == {"heldpkg", "_pytest.holder"}
        recorded = module_files(mods, plan.held)
        assert list(recorded) == [os.path.realpath(init)]
        assert changed_files(recorded) == []
        init.write_text("class Lexer: pass\nEDITED = 1\n")
        assert changed_files(recorded) == [os.path.realpath(init)]

    def test_top_level_names_of_pytest11_distributions(self):
        """Packages and modules of a plugin distribution; other distributions are ignored."""
        dists = [
            FakeDist(
                [EntryPoint("pytest11", "xdist.plugin")], ["xdist/__init__.py", "xdist/plugin.py"]
            ),
            FakeDist([EntryPoint("pytest11", "pytest_timeout")], ["pytest_timeout.py"]),
            FakeDist([EntryPoint("pytest11", "shadow.plugin:x")], []),  # editable: no files
            FakeDist([EntryPoint("console_scripts", "numpy.f2py")], ["numpy/__init__.py"]),
        ]
        assert plugin_module_names(lambda: dists) == {"xdist", "pytest_timeout", "shadow"}  # type: ignore[arg-type, return-value]


class TestThirdPartyModules:
    def test_stdlib_private_and_submodules_fold_away(self):
        """numpy.linalg counts as numpy; json, _ctypes and __main__ are not third-party."""
        names = ["numpy", "numpy.linalg", "json", "_ctypes", "__main__", "scipy.stats"]
        assert third_party_modules(names) == ["numpy", "scipy"]


class TestLoweredPriority:
    def test_the_block_runs_at_idle_priority_and_every_thread_comes_back(self):
        """Inside: +5 niceness and SCHED_IDLE; after: the old priority, also for a thread
        started inside (the BLAS pool case), when this process may restore it."""
        before = os.getpriority(os.PRIO_PROCESS, 0)
        if not can_restore(before):  # the rest of this test session would stay niced
            pytest.skip("this process may not raise its priority again (RLIMIT_NICE)")
        release = threading.Event()
        started: list[int] = []

        def helper() -> None:
            started.append(threading.get_native_id())
            release.wait(10)

        thread = threading.Thread(target=helper)
        with lowered_priority(5) as restorable:
            assert os.getpriority(os.PRIO_PROCESS, 0) == min(before + 5, 19)
            if hasattr(os, "SCHED_IDLE"):
                assert os.sched_getscheduler(0) == os.SCHED_IDLE
            thread.start()
            deadline = time.monotonic() + 10
            while not started and time.monotonic() < deadline:
                time.sleep(0.01)
            assert started, "the helper thread did not start within 10 s"
            assert os.getpriority(os.PRIO_PROCESS, started[0]) == min(before + 5, 19)
        try:
            assert restorable
            assert os.getpriority(os.PRIO_PROCESS, 0) == before
            assert os.getpriority(os.PRIO_PROCESS, started[0]) == before
            if hasattr(os, "SCHED_IDLE"):
                assert os.sched_getscheduler(started[0]) == os.SCHED_OTHER
        finally:
            release.set()
            thread.join(10)

    def test_zero_changes_nothing(self):
        """nice=0 leaves the priority alone."""
        before = os.getpriority(os.PRIO_PROCESS, 0)
        with lowered_priority(0) as restorable:
            assert os.getpriority(os.PRIO_PROCESS, 0) == before
        assert restorable


AUTOGROUP = Path("/proc/self/autogroup")
needs_autogroup = pytest.mark.skipif(
    not AUTOGROUP.exists() or not hasattr(os, "sched_setaffinity"),
    reason="Linux autogroup scheduling (/proc/self/autogroup) is not available",
)

#: a worker-like process: leads its own session; inside lowered_priority(NICE) when
#: ``idle``, says "ready", waits for a line on stdin, burns CPU 0 for ``seconds``; prints
#: its autogroup nice before/inside/after and the CPU seconds it got
BURNER = """
import os, sys, time
from farm_server.idle import AUTOGROUP, lowered_priority

idle, seconds = sys.argv[1] == "idle", float(sys.argv[2])
os.sched_setaffinity(0, {0})
nice = lambda: AUTOGROUP.read_text().split()[-1]
seen = [nice()]
with lowered_priority(10 if idle else 0):
    seen.append(nice())
    print("ready", flush=True)
    sys.stdin.readline()
    start, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - start < seconds:
        pass
    used = time.process_time() - cpu
seen.append(nice())
print(*seen, round(used, 3))
"""


def burners(*modes: str, seconds: float) -> list[list[str]]:
    """Run one BURNER per mode at once, each in its own session as the farm launches
    workers (one autogroup each), all burning in the same window; their outputs."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BURNER, mode, str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for mode in modes
    ]
    try:
        for proc in procs:  # ready: imported and, if idle, at its warm-up priority
            assert proc.stdout is not None
            readable, _, _ = select.select([proc.stdout], [], [], 60)
            assert readable, "a burner did not start within 60 s"
            assert proc.stdout.readline() == "ready\n"
        for proc in procs:  # go, all at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return [proc.communicate(timeout=60)[0].split() for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


@needs_autogroup
class TestAutogroup:
    def test_a_warming_worker_lowers_its_session_group_and_restores_it(self):
        [out] = burners("idle", seconds=0.0)
        before, inside, after = map(int, out[:3])
        assert inside == min(before + 10, 19)
        assert after == before

    def test_a_warming_worker_yields_the_cpu_to_a_run_in_another_session(self):
        """Both on CPU 0, each in its own session (autogroup): the warming one gets a
        small share (nice 10: about 1/10); without the group's nice it got half, as
        SCHED_IDLE alone only yields within its own group."""
        warming, testing = burners("idle", "busy", seconds=2.0)
        idle_cpu, busy_cpu = float(warming[-1]), float(testing[-1])
        # 10% of the window: this VM's hypervisor has been seen to take more than half
        assert busy_cpu > 0.2, "the busy process hardly ran: is the machine overloaded?"
        assert idle_cpu < 0.25 * busy_cpu, (idle_cpu, busy_cpu)
