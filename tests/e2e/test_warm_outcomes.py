"""A warm-up followed by a run in the same process gives the outcomes of a cold run.

The package under test holds its tests (``gpkg/tests/``), sits outside the rootdir like
an installed distribution and is collected through ``testpaths``: the case where a
purge of only the test modules left the package holding the shadow run's classes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.farmtools import REPO, WAIT_S

pytestmark = pytest.mark.slow

#: the first registration of a name wins, as in a library's caches: a class that
#: a stale package saw first is the one its canonicalisation returns
CORE = """\
registry = {}


class Basic:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry.setdefault(cls.__qualname__, cls)


def canonical(obj):
    return registry[type(obj).__qualname__] is type(obj)
"""

TESTS = """\
from gpkg.core import Basic, canonical


class Thing(Basic):
    pass


def test_canonical():
    assert canonical(Thing())


def test_registered_once():
    from gpkg.core import registry
    assert list(registry) == ["Thing"]
"""

#: warm up (or not) in this process, then run the suite as a worker would
SCRIPT = """\
import gc, json, os, sys
from pathlib import Path
import pytest

root, mode, tmp = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
edit = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
report = None
if mode != "cold":
    from farm_server import purge, warmup
    if mode == "partial":  # the old rule: only the first names, never widened
        warmup.plan_purge = lambda names, modules, **kw: purge.PurgePlan(names=sorted(names))
    report = warmup.warm_up(
        rootdir=root, warm_modules=[], shadow_tests=[], budget_s=5.0, tmpdir=tmp
    ).to_dict()
for path, text in edit.items():  # edited after the warm-up, before the run
    Path(path).write_text(text)


class Outcomes:
    def __init__(self):
        self.seen = {}
        self.after_collection = 0

    def pytest_collection_finish(self, session):
        gc.collect()
        self.after_collection = len(gc.get_objects()) + gc.get_freeze_count()

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.seen[report.nodeid.rpartition("::")[2]] = report.outcome


os.chdir(root)
plugin = Outcomes()
pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly"], plugins=[plugin])
from _pytest.assertion import rewrite
stats = getattr(getattr(rewrite._rewrite_test, "__self__", None), "stats", dict)()
gc.collect()
at_end = len(gc.get_objects()) + gc.get_freeze_count()
print("RESULT " + json.dumps({
    "outcomes": plugin.seen, "report": report,
    "after_collection": plugin.after_collection, "at_end": at_end, "rewrites": stats,
}))
"""


def write_package(where: Path) -> None:
    """``gpkg`` with its tests inside it (``gpkg/tests/``) under ``where``."""
    (where / "gpkg" / "tests").mkdir(parents=True)
    (where / "gpkg" / "__init__.py").write_text("")
    (where / "gpkg" / "core.py").write_text(CORE)
    (where / "gpkg" / "tests" / "__init__.py").write_text("")
    (where / "gpkg" / "tests" / "test_reg.py").write_text(TESTS)


#: how the suite reaches the package's tests: pytest.ini of the rootdir, where gpkg lives
LAYOUTS = {
    # installed outside the rootdir, collected through testpaths into "site-packages"
    "testpaths into site": ("testpaths = {site}/gpkg", "site"),
    # installed outside the rootdir, collected by module name
    "--pyargs": ("addopts = --pyargs\ntestpaths = gpkg", "site"),
    # the project's own src/ layout, tests inside the package
    "src layout": ("pythonpath = src\ntestpaths = src/gpkg", "proj/src"),
}


def make_project(tmp_path: Path, layout: str) -> Path:
    ini, where = LAYOUTS[layout]
    root = tmp_path / "proj"
    root.mkdir()
    write_package(tmp_path / where)
    (root / "pytest.ini").write_text("[pytest]\n" + ini.format(site=tmp_path / "site") + "\n")
    return root


@pytest.fixture
def installed_package_project(tmp_path: Path) -> Path:
    """``site/gpkg`` (tests inside it) and a rootdir whose testpaths point there."""
    return make_project(tmp_path, "testpaths into site")


def run(root: Path, mode: str, tmp_path: Path, edit: dict[str, str] | None = None) -> dict:
    warm_tmp = tmp_path / f"warm-{mode}"
    warm_tmp.mkdir()
    site = root.parent / "site"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), mode, str(warm_tmp), json.dumps(edit or {})],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT_S * 6,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("RESULT ") :])


class TestWarmOutcomes:
    @pytest.mark.parametrize("layout", list(LAYOUTS))
    def test_tests_inside_the_package_pass_warm_as_they_do_cold(self, layout, tmp_path):
        """Wherever the package lives and however its tests are named, the warm run
        re-imports gpkg whole (an empty registry) and gets the cold outcomes."""
        project = make_project(tmp_path, layout)
        cold = run(project, "cold", tmp_path)
        warm = run(project, "warm", tmp_path)
        assert cold["outcomes"] == {"test_canonical": "passed", "test_registered_once": "passed"}
        assert warm["outcomes"] == cold["outcomes"]
        assert warm["report"]["unfit"] == ""
        assert not any(m == "gpkg" or m.startswith("gpkg.") for m in warm["report"]["modules"])

    def test_the_purge_widens_to_the_whole_installed_package(
        self, installed_package_project, tmp_path
    ):
        """Only gpkg.tests.* are project-like (rewritten); the purge takes gpkg whole."""
        warm = run(installed_package_project, "warm", tmp_path)
        assert warm["report"]["purge_widened"] == ["gpkg"]

    def test_a_partial_purge_would_change_the_outcomes(self, installed_package_project, tmp_path):
        """The reproduction: dropping only gpkg.tests.test_reg keeps the stale registry."""
        partial = run(installed_package_project, "partial", tmp_path)
        assert partial["outcomes"] == {"test_canonical": "failed", "test_registered_once": "passed"}


class TestRewrittenCodeReuse:
    def test_the_run_reuses_the_code_the_warm_up_rewrote(self, installed_package_project, tmp_path):
        """The test module is executed afresh but not rewritten again: a hit, no miss."""
        warm = run(installed_package_project, "warm", tmp_path)
        assert warm["report"]["rewritten"] >= 1
        assert warm["rewrites"]["hits"] >= 1
        assert warm["rewrites"]["misses"] == warm["report"]["rewritten"]  # the warm-up's own

    def test_a_test_file_edited_after_the_warm_up_runs_its_new_code(
        self, installed_package_project, tmp_path
    ):
        """Stale code is impossible: the edited module is rewritten and its new test fails."""
        test_file = tmp_path / "site" / "gpkg" / "tests" / "test_reg.py"
        edited = TESTS.replace("assert canonical(Thing())", "assert not canonical(Thing())")
        warm = run(installed_package_project, "warm", tmp_path, {str(test_file): edited})
        assert warm["outcomes"] == {"test_canonical": "failed", "test_registered_once": "passed"}
        assert warm["rewrites"]["misses"] == warm["report"]["rewritten"] + 1


class TestHeapAtHandOff:
    def test_the_heap_is_frozen_and_holds_no_more_than_a_cold_worker(
        self, installed_package_project, tmp_path
    ):
        """At hand-off the gc has almost nothing left to walk (the rest is frozen), and
        after collecting the suite a warm process holds no more objects than a cold one
        that ran it: the shadow run imported earlier what the cold run imports while
        testing (hypothesis' plugin imports hypothesis at the first test), nothing more."""
        cold = run(installed_package_project, "cold", tmp_path)
        warm = run(installed_package_project, "warm", tmp_path)
        heap = warm["report"]["heap"]
        assert heap["frozen"] > 10_000
        assert heap["tracked"] < 1_000
        assert heap["rss_kb"] > 0
        assert warm["after_collection"] <= 1.15 * cold["at_end"]
