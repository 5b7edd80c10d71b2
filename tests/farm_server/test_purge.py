"""A consistent purge: whole packages, the modules that took from them, or none at all."""

from __future__ import annotations

import importlib.machinery
import sys
import types

from farm_server.purge import STARTUP_MODULES, loose_stdlib, plan_purge


def module(name: str, file: str | None = None, **globals_: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = file
    vars(mod).update(globals_)
    return mod


def pytest_module(name: str, holds: str) -> types.ModuleType:
    """One of pytest's modules whose globals hold a function of module ``holds``."""
    return module(name, f"/site/{name.replace('.', '/')}.py", f=function_of(holds))


def function_of(module_name: str) -> types.FunctionType:
    def f() -> None:
        pass

    f.__module__ = module_name
    return f


class TestPlanPurge:
    def test_tests_inside_a_kept_package_drop_the_whole_package(self):
        """pkg.core.tests.test_x going takes pkg and every pkg.* module with it."""
        mods = {
            "pkg": module("pkg", "/site/pkg/__init__.py"),
            "pkg.core": module("pkg.core", "/site/pkg/core.py"),
            "pkg.core.tests": module("pkg.core.tests", "/site/pkg/core/tests/__init__.py"),
            "pkg.core.tests.test_x": module("pkg.core.tests.test_x", "/site/pkg/t.py"),
            "numpy": module("numpy", "/site/numpy/__init__.py"),
        }
        plan = plan_purge(["pkg.core.tests.test_x"], mods, stdlib=())
        assert plan.safe
        assert plan.widened == ["pkg"]
        assert plan.names == ["pkg", "pkg.core", "pkg.core.tests", "pkg.core.tests.test_x"]

    def test_a_kept_module_that_imported_from_a_dropped_one_goes_too(self):
        """Its globals would keep the old classes and functions alive and in use."""
        lib = module("lib", "/proj/lib.py")
        mods = {
            "lib": lib,
            "ext": module("ext", "/site/ext.py", helper=function_of("lib"), mod=None),
            "users_of_ext": module("users_of_ext", "/site/u.py", ext=None),
            "numpy": module("numpy", "/site/numpy/__init__.py", x=function_of("numpy")),
        }
        vars(mods["users_of_ext"])["ext"] = mods["ext"]
        plan = plan_purge(["lib"], mods, stdlib=())
        assert plan.dependents == ["ext", "users_of_ext"]
        assert plan.names == ["ext", "lib", "users_of_ext"]

    def test_instances_and_plain_values_are_not_dependencies(self):
        """Only modules, classes and functions count: no attribute of a value is read."""

        class Lazy:
            def __getattr__(self, name: str) -> object:
                raise AssertionError(f"read {name}")

        mods = {
            "lib": module("lib", "/proj/lib.py"),
            "other": module("other", "/site/other.py", lazy=Lazy(), n=1, s="lib"),
        }
        assert plan_purge(["lib"], mods, stdlib=()).names == ["lib"]

    def test_a_package_with_an_extension_module_cannot_be_dropped(self):
        """Extension modules load once per process: the plan is unsafe, names the module."""
        mods = {
            "npkg": module("npkg", "/site/npkg/__init__.py"),
            "npkg._core": module("npkg._core", "/site/npkg/_core.cpython-311-x86_64-linux-gnu.so"),
            "npkg.tests.test_a": module("npkg.tests.test_a", "/site/npkg/tests/test_a.py"),
        }
        plan = plan_purge(["npkg.tests.test_a"], mods)
        assert not plan.safe
        assert "npkg._core (extension module)" in plan.unsafe

    def test_the_stdlib_and_pytest_are_never_dropped(self):
        """A stdlib module holding a project function makes the plan unsafe."""
        mods = {
            "lib": module("lib", "/proj/lib.py"),
            "json": module("json", "/usr/lib/json/__init__.py", hook=function_of("lib")),
        }
        plan = plan_purge(["lib"], mods, stdlib=["json"])
        assert plan.unsafe == "json (pinned) would have to be imported again"

    def test_a_patched_stdlib_module_imported_since_start_goes_with_the_project(self):
        """sympy sets doctest._indent to its own function: doctest, imported by the
        warm-up, goes too, and the run imports a fresh one (and patches that)."""
        mods = {
            "sympy": module("sympy", "/site/sympy/__init__.py"),
            "sympy.testing.runtests": module("sympy.testing.runtests", "/site/sympy/t.py"),
            "doctest": module("doctest", "/usr/lib/doctest.py", _indent=function_of("sympy")),
        }
        names = ["sympy", "sympy.testing.runtests"]
        plan = plan_purge(names, mods, stdlib=["doctest"], loose=["doctest"])
        assert (plan.safe, plan.dependents) == (True, ["doctest"])
        assert "doctest" in plan.names
        pinned = plan_purge(names, mods, stdlib=["doctest"])
        assert pinned.unsafe == "doctest (pinned) would have to be imported again"

    def test_a_loose_stdlib_module_pytest_took_from_stays_pinned_through_pytest(self):
        """pytest's doctest plugin keeps a runner class built on doctest's: unsafe."""
        mods = {
            "sympy": module("sympy", "/site/sympy/__init__.py"),
            "doctest": module("doctest", "/usr/lib/doctest.py", _indent=function_of("sympy")),
            "_pytest.doctest": pytest_module("_pytest.doctest", holds="doctest"),
        }
        plan = plan_purge(["sympy"], mods, stdlib=["doctest"], loose=["doctest"])
        assert plan.unsafe == "_pytest.doctest (pinned) would have to be imported again"

    def test_main_and_kept_names_never_widen_the_purge(self):
        """The worker's own __main__ refers to its purged code and still stays."""
        mods = {
            "farm_server.gate": module("farm_server.gate", "/site/farm_server/gate.py"),
            "__main__": module("__main__", "/site/w.py", f=function_of("farm_server.gate")),
            "keepme": module("keepme", "/site/k.py", f=function_of("farm_server.gate")),
        }
        plan = plan_purge(["farm_server.gate"], mods, keep=["keepme"], stdlib=())
        assert plan.safe
        assert plan.names == ["farm_server.gate"]

    def test_a_package_pytest_imported_at_start_up_stays_warm(self):
        """The pygments suite: pytest's terminal writer holds pygments classes, so a cold
        run's tests get pytest's start-up copy; the warm worker keeps its copy too."""
        mods = {
            "pygments": module("pygments", "/proj/pygments/__init__.py"),
            "pygments.lexer": module("pygments.lexer", "/proj/pygments/lexer.py"),
            "_pytest._io.terminalwriter": pytest_module(
                "_pytest._io.terminalwriter", holds="pygments.lexer"
            ),
            "conftest": module("conftest", "/proj/conftest.py"),
        }
        plan = plan_purge(
            ["pygments", "pygments.lexer", "conftest"], mods, stdlib=(), fresh=["conftest"]
        )
        assert (plan.safe, plan.dependents, plan.held) == (True, [], ["pygments"])
        assert plan.names == ["conftest"]

    def test_a_held_package_with_tests_inside_cannot_stay(self):
        """Its test modules must be fresh and pytest holds the package: unsafe."""
        mods = {
            "gpkg": module("gpkg", "/proj/gpkg/__init__.py"),
            "gpkg.tests.test_a": module("gpkg.tests.test_a", "/proj/gpkg/tests/test_a.py"),
            "_pytest.other": pytest_module("_pytest.other", holds="gpkg"),
        }
        test_a = "gpkg.tests.test_a"
        plan = plan_purge(["gpkg", test_a], mods, stdlib=(), fresh=[test_a])
        assert not plan.safe
        assert plan.unsafe == "_pytest.other (pinned) would have to be imported again"

    def test_a_held_package_that_took_from_a_dropped_one_cannot_stay(self):
        """It would keep the old objects: it goes, and pytest holding it makes the plan unsafe."""
        mods = {
            "lib": module("lib", "/proj/lib.py"),
            "gpkg": module("gpkg", "/proj/gpkg/__init__.py", f=function_of("lib")),
            "_pytest.other": pytest_module("_pytest.other", holds="gpkg"),
        }
        plan = plan_purge(["gpkg", "lib"], mods, stdlib=())
        assert plan.held == []
        assert not plan.safe

    def test_a_purge_inside_one_module_package_is_not_widened(self):
        """A top-level module alone is its own whole package."""
        mods = {"conftest": module("conftest", "/proj/conftest.py")}
        plan = plan_purge(["conftest"], mods, stdlib=())
        assert (plan.widened, plan.names) == ([], ["conftest"])


def spec_module(name: str, origin: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=origin)
    return mod


def test_loose_stdlib_is_pure_python_stdlib_imported_since_start():
    """Not frozen or built in, not an extension, not third-party, not there at start."""
    started = next(n for n in sorted(STARTUP_MODULES) if n in sys.stdlib_module_names)
    mods = {
        "doctest": spec_module("doctest", "/usr/lib/python3/doctest.py"),
        "_json": spec_module("_json", "/usr/lib/python3/lib-dynload/_json.cpython-311.so"),
        "posixpath": spec_module("posixpath", "frozen"),
        "numpy": spec_module("numpy", "/site/numpy/__init__.py"),
        started: spec_module(started, f"/usr/lib/python3/{started}.py"),
    }
    assert loose_stdlib(mods) == ["doctest"]
