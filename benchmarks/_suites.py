"""Pinned real suites for ``bench_real_suites.py``, built from PyPI with pip and cached.

Each suite is an unpacked source tree (sdist) or wheel plus the environment a run needs
(``PYTHONPATH`` to its code, deselections). Builds go to a cache directory
(``--cache``, else ``$SHADOWFARM_BENCH_CACHE``, else ``~/.cache/shadowfarm-bench``)
and are reused; only ``pip download`` needs the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SUITES", "Suite", "build", "default_cache", "tiny_suite"]


@dataclass(frozen=True)
class Suite:
    name: str
    requirement: str  # what pip downloads
    sdist: bool  # True: the sdist (tests next to the package), False: the wheel
    #: (tree) -> pytest arguments and extra PYTHONPATH entries
    args: Callable[[Path], list[str]]
    pythonpath: Callable[[Path], list[str]] = lambda tree: []
    #: modules the suite imports that must already be installed
    needs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: pinned test-only requirements, pip-installed into a folder beside the tree (not
    #: inside it: under the rootdir they would count as the project's own code)
    deps: tuple[str, ...] = ()

    def deps_dir(self, cache: Path) -> Path:
        return cache / (self.requirement.replace("==", "-") + "-deps")


NETWORKX_SUBSET = [
    "networkx.classes",
    "networkx.generators",
    "networkx.algorithms.shortest_paths",
    "networkx.algorithms.flow",
    "networkx.readwrite",
]

SUITES = {
    # src/ layout: the package is project code (purged, re-imported by every run)
    "attrs": Suite(
        "attrs",
        "attrs==26.1.0",
        sdist=True,
        args=lambda tree: [
            "tests",
            "-p",
            "no:randomly",
            # fails on Python 3.11 in every mode (not a benchmark matter)
            "--deselect=tests/test_converters.py::TestPipe::test_wrapped_annotation",
        ],
        pythonpath=lambda tree: [str(tree / "src")],
        needs=("hypothesis",),
    ),
    # thousands of tiny tests of custom item types: coordination overhead dominates
    "pygments": Suite(
        "pygments",
        "pygments==2.21.0",
        sdist=True,
        args=lambda tree: ["tests", "-p", "no:randomly"],
        pythonpath=lambda tree: [str(tree)],
        deps=("wcag-contrast-ratio==0.9",),  # tox.ini's test deps; else a collection error
    ),
    # tests inside the package, collected with --pyargs from an unpacked wheel; a subset
    # of five packages (2,515 tests) keeps a round within minutes on 2 cores
    "networkx": Suite(
        "networkx",
        "networkx==3.6.1",
        sdist=False,
        args=lambda tree: ["--pyargs", *NETWORKX_SUBSET, "-p", "no:randomly"],
        pythonpath=lambda tree: [str(tree)],
        needs=("numpy", "scipy", "pandas"),
        env={"OPENBLAS_NUM_THREADS": "1"},
    ),
    # tests inside the package with its own conftest, which patches the stdlib (doctest);
    # not in the default set: a round of sympy.core takes minutes on 2 cores
    "sympy": Suite(
        "sympy",
        "sympy==1.14.0",
        sdist=False,
        args=lambda tree: ["--pyargs", "sympy.core", "-p", "no:randomly"],
        pythonpath=lambda tree: [str(tree)],
        deps=("mpmath==1.3.0",),
    ),
}


def default_cache() -> Path:
    env = os.environ.get("SHADOWFARM_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "shadowfarm-bench"


def _unpack(archive: Path, dest: Path) -> Path:
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        root = tmp
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        (root,) = list(tmp.iterdir())  # an sdist holds one top directory
    shutil.move(str(root), dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def build(suite: Suite, cache: Path) -> Path | str:
    """The suite's unpacked tree, or why it cannot be built here (a sentence)."""
    missing = [m for m in suite.needs if not _importable(m)]
    if missing:
        return f"{suite.name}: needs {', '.join(missing)} installed in this interpreter"
    tree = cache / suite.requirement.replace("==", "-")
    if suite.deps and not suite.deps_dir(cache).is_dir():
        problem = _install_deps(suite, cache)
        if problem:
            return problem
    if tree.is_dir():
        return tree
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    kind = ["--no-binary", ":all:"] if suite.sdist else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *kind]
    done = subprocess.run(
        [*cmd, "-d", str(downloads), suite.requirement],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    name = suite.requirement.split("==")[0].lower()
    version = suite.requirement.split("==")[1]
    found = [
        p
        for p in downloads.iterdir()
        if p.name.lower().startswith(f"{name}-{version}")
        and p.name.endswith((".whl", ".tar.gz") if not suite.sdist else (".tar.gz",))
    ]
    if not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"{suite.name}: pip download {suite.requirement} failed ({tail[0]})"
    return _unpack(found[0], tree)


def _install_deps(suite: Suite, cache: Path) -> str:
    target = suite.deps_dir(cache)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(partial)]
    done = subprocess.run(
        [*pip, *suite.deps],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"{suite.name}: pip install {' '.join(suite.deps)} failed ({tail[0]})"
    partial.rename(target)
    return ""


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


#: the smoke suite when nothing is cached and the network is out of reach: a package
#: under test with tests inside it and a registry, like the real suites' shapes
TINY_CORE = """\
registry = {}


class Basic:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry.setdefault(cls.__qualname__, cls)
"""
TINY_TEST = """\
import pytest
from tinypkg.core import Basic, registry


class Thing{i}(Basic):
    pass


@pytest.mark.parametrize("n", range(40))
def test_canonical(n):
    assert registry["Thing{i}"] is Thing{i}
    assert sum(range(n * 50)) >= 0
"""


def tiny_suite(root: Path) -> tuple[Path, list[str], list[str]]:
    """(rootdir, pytest args, PYTHONPATH): 400 tests in 10 modules, generated under root."""
    pkg = root / "tinypkg"
    (pkg / "tests").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text(TINY_CORE)
    (pkg / "tests" / "__init__.py").write_text("")
    for i in range(10):
        (pkg / "tests" / f"test_m{i}.py").write_text(TINY_TEST.format(i=i))
    (root / "pytest.ini").write_text("[pytest]\n")
    return root, ["tinypkg", "-p", "no:randomly"], [str(root)]
