"""Tests for pytest_shadowfarm.priority.imports: parsing, resolution, cache and traversal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_shadowfarm.priority.imports import (
    CACHE_VERSION,
    ImportCache,
    ImportGraph,
    ImportSpec,
    basedir,
    parse_imports,
)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def names(paths, root: Path) -> set[str]:
    return {p.relative_to(root.resolve()).as_posix() for p in paths}


class TestParseImports:
    def test_every_import_form_is_found(self):
        """import, import as, from-import, relative and star imports all give specs."""
        source = (
            b"import a.b as c, d\nfrom e import f, g as h\nfrom ..i import j\nfrom . import *\n"
        )
        assert parse_imports(source) == (
            ImportSpec("a.b"),
            ImportSpec("d"),
            ImportSpec("e", 0, ("f", "g")),
            ImportSpec("i", 2, ("j",)),
            ImportSpec("", 1, ()),
        )

    def test_imports_inside_functions_and_try_blocks_count(self):
        """Imports anywhere in the file are edges, not only at the top."""
        source = b"def f():\n    import x\ntry:\n    import y\nexcept ImportError:\n    pass\n"
        assert {s.module for s in parse_imports(source)} == {"x", "y"}

    @pytest.mark.parametrize(
        "source",
        [b"def (:\n", b"x = 1\x00", b"a" + b".b" * 200_000, b"-" * 200_000 + b"1"],
        ids=["syntax", "nul", "deep-attributes", "deep-unary"],
    )
    def test_a_file_that_does_not_parse_has_no_imports(self, source):
        """Syntax errors, NUL bytes and absurd nesting give no imports instead of an error."""
        assert parse_imports(source) == ()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "src/pkg/__init__.py": "from pkg import core\n",
            "src/pkg/core.py": "from .util import helper\n",
            "src/pkg/util.py": "import json\n",
            "src/pkg/sub/__init__.py": "",
            "src/pkg/sub/deep.py": "from .. import util\nfrom ..core import thing\n",
            "src/nspkg/mod.py": "",
            "tests/helper.py": "",
            "tests/test_x.py": (
                "import pkg.sub.deep\nimport helper\nimport nspkg.mod\nimport numpy\n"
            ),
            "tests/test_y.py": "from pkg import util, not_a_module\n",
        },
    )
    return tmp_path


class TestResolution:
    def test_dotted_imports_run_every_package_init_on_the_way(self, project):
        """import pkg.sub.deep depends on pkg/__init__, pkg/sub/__init__ and deep.py."""
        graph = ImportGraph([project, project / "src"])
        deps = names(graph.dependencies(project / "tests/test_x.py"), project)
        assert {"src/pkg/__init__.py", "src/pkg/sub/__init__.py", "src/pkg/sub/deep.py"} <= deps

    def test_sibling_modules_resolve_through_the_basedir(self, project):
        """A test module imports its neighbour as pytest's prepend mode allows."""
        graph = ImportGraph([project])
        assert "tests/helper.py" in names(graph.dependencies(project / "tests/test_x.py"), project)

    def test_namespace_packages_resolve(self, project):
        """A directory without __init__.py still leads to its modules."""
        graph = ImportGraph([project / "src"])
        assert "src/nspkg/mod.py" in names(graph.dependencies(project / "tests/test_x.py"), project)

    def test_third_party_modules_are_not_in_the_graph(self, project):
        """numpy is found in no project root and adds no edge."""
        graph = ImportGraph([project / "src"])
        assert all("numpy" not in p.name for p in graph.dependencies(project / "tests/test_x.py"))

    def test_from_package_import_submodule_and_name(self, project):
        """from pkg import util depends on util.py; a plain name only on the package."""
        graph = ImportGraph([project / "src"])
        deps = names(graph.dependencies(project / "tests/test_y.py"), project)
        assert deps == {"src/pkg/__init__.py", "src/pkg/util.py"}

    def test_relative_imports_resolve_from_the_importing_package(self, project):
        """from .. import util and from ..core import thing resolve inside pkg."""
        graph = ImportGraph([])
        deps = names(graph.dependencies(project / "src/pkg/sub/deep.py"), project)
        assert deps == {"src/pkg/__init__.py", "src/pkg/util.py", "src/pkg/core.py"}

    def test_one_file_importing_submodules_does_not_leak_them_into_another(self, tmp_path):
        """from pkg import a in one file adds nothing to a plain import pkg elsewhere."""
        write(
            tmp_path,
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "",
                "one.py": "from pkg import a\n",
                "two.py": "import pkg\n",
            },
        )
        graph = ImportGraph([tmp_path])
        assert "pkg/a.py" in names(graph.dependencies(tmp_path / "one.py"), tmp_path)
        assert names(graph.dependencies(tmp_path / "two.py"), tmp_path) == {"pkg/__init__.py"}

    def test_roots_are_searched_in_order(self, tmp_path):
        """The first root that has the module wins, like sys.path."""
        write(tmp_path, {"one/m.py": "", "two/m.py": "", "t.py": "import m\n"})
        graph = ImportGraph([tmp_path / "two", tmp_path / "one"])
        assert names(graph.dependencies(tmp_path / "t.py"), tmp_path) == {"two/m.py"}

    def test_basedir_is_the_first_directory_outside_packages(self, project):
        """A module in a package has the directory above its top package as basedir."""
        assert basedir(project / "src/pkg/sub/deep.py") == project / "src"
        assert basedir(project / "tests/test_x.py") == project / "tests"

    def test_an_unreadable_file_has_no_dependencies(self, tmp_path):
        """A file that vanished is a leaf, not an error."""
        assert ImportGraph([tmp_path]).dependencies(tmp_path / "gone.py") == frozenset()


class TestTraversal:
    def test_reachable_follows_imports_transitively(self, project):
        """From test_y the walk reaches pkg's __init__, core, util."""
        graph = ImportGraph([project / "src"])
        reach = graph.reachable([project / "tests/test_y.py"])
        assert names(reach, project) == {
            "tests/test_y.py",
            "src/pkg/__init__.py",
            "src/pkg/util.py",
            "src/pkg/core.py",
        }

    def test_nearest_counts_hops_to_the_closest_changed_file(self, project):
        """util.py is 1 hop from test_y and 2 from test_x's deep.py import chain."""
        graph = ImportGraph([project, project / "src"])
        starts = [project / "tests/test_x.py", project / "tests/test_y.py"]
        found = graph.nearest(starts, [project / "src/pkg/util.py"])
        hops = {p.name: h for p, (h, _) in found.items()}
        assert hops == {"test_y.py": 1, "test_x.py": 2}

    def test_a_start_that_is_changed_itself_is_zero_hops(self, project):
        """A changed start is at distance 0 from itself."""
        graph = ImportGraph([project / "src"])
        start = project / "tests/test_y.py"
        assert graph.nearest([start], [start]) == {start.resolve(): (0, start.resolve())}

    def test_import_cycles_terminate(self, tmp_path):
        """Two modules importing each other are walked once each."""
        write(tmp_path, {"a.py": "import b\n", "b.py": "import a\n", "t.py": "import a\n"})
        graph = ImportGraph([tmp_path])
        assert (
            graph.nearest([tmp_path / "t.py"], [tmp_path / "b.py"])[(tmp_path / "t.py").resolve()][
                0
            ]
            == 2
        )

    def test_extra_edges_count_like_imports(self, tmp_path):
        """add_edges makes a file depend on another without an import statement."""
        write(tmp_path, {"t.py": "", "conftest.py": ""})
        graph = ImportGraph([tmp_path])
        graph.add_edges(tmp_path / "t.py", [tmp_path / "conftest.py"])
        assert graph.dependencies(tmp_path / "t.py") == {(tmp_path / "conftest.py").resolve()}


class TestImportCache:
    def test_a_second_run_reads_parsed_imports_from_the_file(self, tmp_path):
        """Unchanged content is a cache hit after a save and reload."""
        path = tmp_path / "c.json"
        first = ImportCache(path)
        first.specs(b"import os\n")
        assert first.save()
        second = ImportCache(path)
        assert second.specs(b"import os\n") == (ImportSpec("os"),)
        assert (second.hits, second.misses) == (1, 0)

    def test_changed_content_is_parsed_again(self, tmp_path):
        """The key is the content hash: new content is a miss."""
        path = tmp_path / "c.json"
        cache = ImportCache(path)
        cache.specs(b"import os\n")
        cache.save()
        again = ImportCache(path)
        assert again.specs(b"import sys\n") == (ImportSpec("sys"),)
        assert again.misses == 1

    def test_save_keeps_only_entries_used_in_this_run(self, tmp_path):
        """Entries of content no longer seen are dropped from the file."""
        path = tmp_path / "c.json"
        cache = ImportCache(path)
        cache.specs(b"import a\n")
        cache.specs(b"import b\n")
        cache.save()
        later = ImportCache(path)
        later.specs(b"import a\n")
        later.save()
        assert len(json.loads(path.read_text())["files"]) == 1

    def test_nothing_looked_up_leaves_the_file_alone(self, tmp_path):
        """A run that parsed nothing does not rewrite (empty) the cache."""
        path = tmp_path / "c.json"
        cache = ImportCache(path)
        cache.specs(b"import a\n")
        cache.save()
        assert not ImportCache(path).save()
        assert len(json.loads(path.read_text())["files"]) == 1

    @pytest.mark.parametrize(
        "content",
        ["not json", "[]", json.dumps({"version": CACHE_VERSION + 1, "files": {}}), '{"files": 1}'],
    )
    def test_a_bad_cache_file_is_an_empty_cache(self, tmp_path, content):
        """Garbage, a foreign shape or another version is ignored, never an error."""
        path = tmp_path / "c.json"
        path.write_text(content)
        cache = ImportCache(path)
        assert cache.specs(b"import a\n") == (ImportSpec("a"),)
        assert cache.misses == 1

    def test_an_unwritable_cache_is_not_an_error(self, tmp_path):
        """save returns False when the directory cannot be created."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        cache = ImportCache(blocker / "sub" / "c.json")
        cache.specs(b"import a\n")
        assert cache.save() is False
