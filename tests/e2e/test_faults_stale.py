"""A warm worker never runs stale code: ``pythonpath`` siblings and rebuilt C extensions."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 180

C_SOURCE = """
#include <Python.h>
static PyObject *value(PyObject *self, PyObject *args) { return PyLong_FromLong(VALUE); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "cext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cext(void) { return PyModule_Create(&mod); }
"""

TESTS = """
import os

import helper
{extra_import}


def test_sibling():
    assert helper.VALUE == int(os.environ.get("EXPECTED_SIBLING", "1"))


def test_extension():
    {extension_check}
"""


def build_extension(directory: Path, value: int) -> None:
    source = directory / "cext.c"
    source.write_text(C_SOURCE)
    target = directory / f"cext{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f"-DVALUE={value}", f"-I{include}", str(source), "-o",
         str(target)],
        check=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project importing a sibling folder through ``pythonpath`` (and maybe a C extension)."""
    shared = pytester.path.parent / f"{pytester.path.name}-shared"
    shared.mkdir()
    (shared / "helper.py").write_text("VALUE = 1\n")
    pytester.makefile(
        ".toml",
        pyproject=f'[tool.pytest.ini_options]\npythonpath = ["src", "{shared}"]\n',
    )
    (pytester.path / "src").mkdir()
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "farm-home"))
    monkeypatch.delenv("EXPECTED_SIBLING", raising=False)
    monkeypatch.delenv("EXPECTED_EXTENSION", raising=False)
    pytester.shared = shared  # type: ignore[attr-defined]
    return pytester


def write_tests(pytester: pytest.Pytester, *, extension: bool) -> None:
    pytester.makepyfile(
        test_stale=TESTS.format(
            extra_import="import cext" if extension else "",
            extension_check=(
                'assert cext.value() == int(os.environ.get("EXPECTED_EXTENSION", "1"))'
                if extension
                else "pass"
            ),
        )
    )


def run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "shadowfarm", "-n", "2", "-p", "no:cacheprovider", timeout=RUN_TIMEOUT_S
    )


def warm(pytester: pytest.Pytester, farm) -> None:
    key = current_profile(str(pytester.path), []).key
    run(pytester)  # registers the profile
    farm.wait_status(lambda s: counts(s, key).get("warm", 0) >= 2, "2 warm workers")


class TestStaleCode:
    def test_an_edited_pythonpath_sibling_is_seen_by_warm_workers(
        self, project, start_farm, monkeypatch
    ):
        """A module from a sibling folder on ``pythonpath`` is imported fresh by every run."""
        write_tests(project, extension=False)
        farm = start_farm(name="farm-home")
        warm(project, farm)
        (project.shared / "helper.py").write_text("VALUE = 2\n")
        monkeypatch.setenv("EXPECTED_SIBLING", "2")
        result = run(project)
        result.stdout.fnmatch_lines(["shadowfarm: 2 warm workers (farm), 0 cold"])
        result.assert_outcomes(passed=2)

    @pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build an extension")
    def test_a_rebuilt_c_extension_never_stays_warm(self, project, start_farm, monkeypatch):
        """A worker that loaded a project extension refuses the run once it was rebuilt."""
        build_extension(project.path / "src", 1)
        write_tests(project, extension=True)
        farm = start_farm(name="farm-home")
        warm(project, farm)
        build_extension(project.path / "src", 2)
        monkeypatch.setenv("EXPECTED_EXTENSION", "2")
        result = run(project)
        result.stdout.fnmatch_lines(["shadowfarm: 0 warm workers (farm), 2 cold"])
        result.assert_outcomes(passed=2, warnings=2)
        result.stdout.fnmatch_lines(["*could not be handed over*a cold worker replaces it*"])
