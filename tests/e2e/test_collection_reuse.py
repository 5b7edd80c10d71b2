"""A warm worker collects for the next run before it is claimed, and the run reuses that.

Real farm, real ``pytest -n 2`` runs in subprocesses. The first run registers the
profile; the second runs warm and teaches the farm its context (args, environment,
workerinput); the workers warmed after it collect for a run like it, and the third run
takes their collection (``workers[].collection == "reused"``) unless something it
depends on changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shadowfarm_wire.profile import current_profile
from tests.e2e.test_farm_plugin import PYPROJECT, RUN_TIMEOUT_S
from tests.e2e.test_warm_outcomes import TESTS as PACKAGE_TESTS
from tests.e2e.test_warm_outcomes import make_project
from tests.farmtools import counts

pytestmark = pytest.mark.slow

TESTS = """
import os

import mylib

COLLECTED_UNDER = os.environ.get("PYTEST_XDIST_WORKER")


def test_version():
    assert mylib.VERSION == 1


def test_worker_id_seen_at_collection_is_this_workers(worker_id):
    assert COLLECTED_UNDER == (None if worker_id == "master" else worker_id)


def test_tmp_path_is_under_this_runs_basetemp(tmp_path, tmp_path_factory, worker_id, testrun_uid):
    assert tmp_path.is_relative_to(tmp_path_factory.getbasetemp())
    assert os.environ["PYTEST_XDIST_TESTRUNUID"] == testrun_uid
    out = os.path.join(os.environ["OUT_DIR"], f"{testrun_uid}-{worker_id}")
    with open(out, "w") as fh:
        fh.write(str(tmp_path_factory.getbasetemp()))
"""


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # filterwarnings = error: a warm worker's own modules left in sys.modules made the
    # run's config warn that they "cannot be rewritten", and the worker fail
    pytester.makefile(".toml", pyproject=PYPROJECT)
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "mylib.py").write_text("VERSION = 1\n")
    pytester.makepyfile(test_lib=TESTS)
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "farm-home"))
    monkeypatch.setenv("RUN_TAG", "")
    (tmp_path / "out").mkdir()
    monkeypatch.setenv("OUT_DIR", str(tmp_path / "out"))
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    return run_in(pytester.path, *args)


def run_in(root: Path, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    """``pytest -n 2`` as a user types it (pytester's own runs add a new --basetemp each).

    Without schemathesis, installed here for another test: it reads a per-run seed from
    workerinput while configuring, so no collection made before the run can serve it.
    """
    options = "-p shadowfarm -n 2 -p no:schemathesis -p no:cacheprovider"
    command = [sys.executable, "-m", "pytest", *options.split(), "--sf-report-json"]
    command += ["report.json", *args]
    started = time.monotonic()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    result = pytest.RunResult(
        done.returncode,
        done.stdout.splitlines(),
        done.stderr.splitlines(),
        time.monotonic() - started,
    )
    return result, json.loads((root / "report.json").read_text())


def collections(report: dict[str, Any]) -> dict[str, str | None]:
    return {w["id"]: w.get("collection") for w in report["workers"]}


def prepared_workers(farm: Any, key: str, n: int) -> dict[str, Any]:
    """Wait for ``n`` warm workers of ``key`` that collected for the next run."""

    def ready(status: dict[str, Any]) -> bool:
        warm = [w for w in status["workers"] if w["profile"] == key and w["state"] == "warm"]
        return sum(1 for w in warm if (w["ready"] or {}).get("prepared")) >= n

    return farm.wait_status(ready, f"{n} warm workers with a prepared collection")


@pytest.fixture
def taught(project, start_farm):
    """A farm whose warm workers collected for a run like ``run(project)``."""
    return teach(project, start_farm)


def teach(project: pytest.Pytester, start_farm: Any) -> Any:
    farm = start_farm(name="farm-home")
    key = current_profile(str(project.path), []).key
    first, _ = run(project)  # registers the profile: cold
    first.stdout.fnmatch_lines(["shadowfarm: 0 warm workers (farm), 2 cold; new profile *"])
    farm.wait_status(lambda s: counts(s, key).get("warm", 0) >= 2, "2 warm workers")
    _, report = run(project)  # warm; tells the farm its context
    assert all(w["warm"] for w in report["workers"])
    assert set(collections(report).values()) == {"collected: no earlier run to prepare for"}
    status = prepared_workers(farm, key, 2)
    expects = sorted(w["expects"] for w in status["workers"] if w["state"] == "warm")
    assert expects == ["gw0", "gw1"]
    return farm


def test_the_next_run_reuses_the_prepared_collection(project, taught):
    result, report = run(project)
    result.assert_outcomes(passed=3)
    assert collections(report) == {"gw0": "reused", "gw1": "reused"}
    # The tests checked the worker id seen while collecting and this run's tmp paths;
    # and no two runs shared a basetemp (the prepared one was the last run's).
    out = Path(os.environ["OUT_DIR"])
    basetemps = {(p.read_text(), p.name.rpartition("-")[2]) for p in out.iterdir()}
    assert len(basetemps) == 3  # the tmp_path test ran once in each of the 3 runs
    assert len({Path(b).parent for b, _ in basetemps}) == 3
    assert all(Path(b).name == f"popen-{worker}" for b, worker in basetemps)


def test_an_edited_test_file_is_collected_afresh_and_its_new_code_runs(project, taught):
    test_file = project.path / "test_lib.py"
    test_file.write_text(test_file.read_text() + "\n\ndef test_added():\n    assert True\n")
    result, report = run(project)
    result.assert_outcomes(passed=4)
    for outcome in collections(report).values():
        assert outcome is not None
        assert outcome.startswith("collected: changed since warm-up")
        assert "test_lib.py" in outcome


def test_an_edited_project_module_is_collected_afresh(project, taught):
    (project.path / "src" / "mylib.py").write_text("VERSION = 2\n")
    result, report = run(project)
    result.assert_outcomes(passed=2, failed=1)  # test_version sees the new code
    assert all("mylib.py" in (c or "") for c in collections(report).values())


def test_other_arguments_are_collected_afresh(project, taught):
    result, report = run(project, "-k", "version")
    result.assert_outcomes(passed=1)
    assert set(collections(report).values()) == {"collected: arguments"}


def test_another_environment_is_collected_afresh(project, taught, monkeypatch):
    monkeypatch.setenv("RUN_TAG", "other")
    result, report = run(project)
    result.assert_outcomes(passed=3)
    assert set(collections(report).values()) == {"collected: environment (RUN_TAG)"}


def test_collection_errors_and_warnings_reach_the_run_from_a_reused_collection(project, start_farm):
    """xdist's worker tells its controller about failed collections and warnings: the
    prepared collection's reach it at hand-off, so the run reports them as a cold one."""
    # warnings stay warnings here (the project's filterwarnings = error would fail them)
    project.makefile(".toml", pyproject='[tool.pytest.ini_options]\npythonpath = ["src"]\n')
    project.makepyfile(test_broken="import no_such_module_anywhere\n")
    project.makepyfile(test_odd=ODD_CLASS)  # a collection warning, once from each worker
    teach(project, start_farm)
    result, report = run(project)
    result.assert_outcomes(passed=3, errors=1, warnings=2)
    result.stdout.fnmatch_lines(["*ERROR collecting test_broken.py*"])
    result.stdout.fnmatch_lines(["*cannot collect test class 'TestOdd'*"])
    assert set(collections(report).values()) == {"reused"}


ODD_CLASS = """
class TestOdd:
    def __init__(self):
        pass

    def test_never(self):
        pass
"""


NONCE_CONFTEST = """
import uuid

import pytest


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["run_nonce"] = uuid.uuid4().hex


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        config.run_nonce = config.workerinput["run_nonce"]


@pytest.fixture
def nonce_ok(request):
    return request.config.run_nonce == request.config.workerinput["run_nonce"]
"""


def test_a_per_run_value_read_while_configuring_is_collected_afresh(project, start_farm):
    """The mismatch is only seen once xdist hands over workerinput: the prepared config
    is dropped there and a fresh one serves the same channel."""
    project.makeconftest(NONCE_CONFTEST)
    project.makepyfile(test_nonce="def test_nonce(nonce_ok):\n    assert nonce_ok\n")
    teach(project, start_farm)
    result, report = run(project)
    result.assert_outcomes(passed=4)
    assert set(collections(report).values()) == {"collected: workerinput (run_nonce)"}


class TestTestsInsideAnInstalledPackage:
    """``testpaths`` into an installed package that holds its own tests: a reused
    collection gives the cold outcomes, and one discarded after an edit purges the
    package whole (a partial purge left stale classes behind: tests/e2e/test_warm_outcomes)."""

    @pytest.fixture
    def package_project(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        root = make_project(tmp_path, "testpaths into site")
        monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
        monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "farm-home"))
        return root

    def test_reused_and_discarded_collections_give_the_cold_outcomes(
        self, package_project: Path, start_farm: Any
    ):
        farm = start_farm(name="farm-home")
        key = current_profile(str(package_project), []).key
        cold, _ = run_in(package_project)
        cold.assert_outcomes(passed=2)
        farm.wait_status(lambda s: counts(s, key).get("warm", 0) >= 2, "2 warm workers")
        teach, _ = run_in(package_project)
        teach.assert_outcomes(passed=2)
        prepared_workers(farm, key, 2)
        reused, report = run_in(package_project)
        reused.assert_outcomes(passed=2)
        assert set(collections(report).values()) == {"reused"}

        prepared_workers(farm, key, 2)
        test_file = package_project.parent / "site" / "gpkg" / "tests" / "test_reg.py"
        test_file.write_text(PACKAGE_TESTS.replace("assert canonical", "assert not canonical"))
        edited, report = run_in(package_project)
        edited.assert_outcomes(passed=1, failed=1)  # the new code, on a consistent package
        for outcome in collections(report).values():
            assert "test_reg.py" in (outcome or "")
