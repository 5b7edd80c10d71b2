"""Which modules a warm worker drops before it serves, and the warm-up's helpers."""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from pathlib import Path

from farm_server.warmup import (
    lowered_priority,
    modules_to_purge,
    plugin_module_names,
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
    def test_project_tests_conftests_and_plugins_go_third_party_stays(self, tmp_path: Path):
        """Only numpy and json survive; everything a run must import fresh is listed."""
        root = tmp_path / "proj"
        rewritten = module("helpers_outside", "/elsewhere/helpers_outside.py")
        rewritten.__loader__ = AssertionRewritingHook()  # type: ignore[assignment]
        modules = {
            "mylib": module("mylib", str(root / "src" / "mylib.py")),
            "mylib.sub": module("mylib.sub", str(root / "src" / "mylib" / "sub.py")),
            "nspkg": module("nspkg", None, path=[str(root / "nspkg")]),
            "conftest": module("conftest", "/anywhere/conftest.py"),
            "tests.conftest": module("tests.conftest", "/anywhere/tests/conftest.py"),
            "helpers_outside": rewritten,
            "xdist": module("xdist", "/site/xdist/__init__.py"),
            "xdist.remote": module("xdist.remote", "/site/xdist/remote.py"),
            "numpy": module("numpy", "/site/numpy/__init__.py"),
            "json": module("json", "/usr/lib/json/__init__.py"),
            "gone": None,
        }
        purge = modules_to_purge(root, modules, plugin_names={"xdist"})  # type: ignore[arg-type]
        assert purge == sorted(
            [
                "mylib",
                "mylib.sub",
                "nspkg",
                "conftest",
                "tests.conftest",
                "helpers_outside",
                "xdist",
                "xdist.remote",
            ]
        )

    def test_a_symlinked_project_path_is_still_the_project(self, tmp_path: Path):
        """A module imported through a symlink to the rootdir is project code."""
        root = tmp_path / "proj"
        (root / "src").mkdir(parents=True)
        (root / "src" / "mylib.py").write_text("")
        link = tmp_path / "link"
        link.symlink_to(root)
        modules = {"mylib": module("mylib", str(link / "src" / "mylib.py"))}
        assert modules_to_purge(root, modules, set()) == ["mylib"]  # type: ignore[arg-type]


class TestPluginModuleNames:
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
    def test_the_block_runs_nicer_and_the_priority_comes_back_when_allowed(self):
        """Inside: +5 niceness; after: the old value if this process may restore it."""
        before = os.getpriority(os.PRIO_PROCESS, 0)
        with lowered_priority(5) as restorable:
            assert os.getpriority(os.PRIO_PROCESS, 0) == min(before + 5, 19)
        after = os.getpriority(os.PRIO_PROCESS, 0)
        assert after == (before if restorable else min(before + 5, 19))

    def test_zero_changes_nothing(self):
        """nice=0 leaves the priority alone."""
        before = os.getpriority(os.PRIO_PROCESS, 0)
        with lowered_priority(0) as restorable:
            assert os.getpriority(os.PRIO_PROCESS, 0) == before
        assert restorable
