"""Tests for pytest_shadowfarm.priority.changes and .impact: changed files and their reach."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_shadowfarm.errors import ChangeDetectionError
from pytest_shadowfarm.priority.changes import changed_files, default_branch
from pytest_shadowfarm.priority.impact import (
    CHANGED_TEST_FILE,
    DIRECT_IMPORT,
    Impact,
    analyze_changes,
    conftest_chain,
    impact_value,
)
from tests.gittools import GIT_ENV


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit_all(repo: Path, message: str = "c") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed project: src/pkg/{a,b}.py (b imports a), tests importing each."""
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(
        root,
        {
            "src/pkg/__init__.py": "",
            "src/pkg/a.py": "X = 1\n",
            "src/pkg/b.py": "from pkg.a import X\n",
            "src/pkg/c.py": "from . import b\n",
            "tests/test_a.py": "from pkg import a\n",
            "tests/test_b.py": "import pkg.b\n",
            "tests/test_c.py": "from pkg.c import b\n",
            "tests/test_none.py": "import os\n",
        },
    )
    commit_all(root)
    return root


NODEIDS = [
    "tests/test_a.py::test_x",
    "tests/test_b.py::test_x",
    "tests/test_c.py::test_x",
    "tests/test_none.py::test_x",
]


def rel(paths: frozenset[Path], root: Path) -> set[str]:
    return {p.relative_to(root.resolve()).as_posix() for p in paths}


class TestChangedFiles:
    def test_a_clean_tree_on_the_default_branch_has_no_changes(self, repo):
        """On main with nothing edited, nothing changed."""
        changes = changed_files(repo)
        assert changes.paths == frozenset()
        assert "main" in changes.base

    def test_working_tree_edits_and_untracked_files_count(self, repo):
        """An edited tracked file and a new untracked test file are both changed."""
        (repo / "src/pkg/a.py").write_text("X = 2\n")
        (repo / "tests/test_new.py").write_text("def test_n(): pass\n")
        assert rel(changed_files(repo).paths, repo) == {"src/pkg/a.py", "tests/test_new.py"}

    def test_ignored_files_do_not_count(self, repo):
        """Files matched by .gitignore are not changes (but the .gitignore itself is)."""
        (repo / ".gitignore").write_text(".shadowfarm/\n")
        (repo / ".shadowfarm").mkdir()
        (repo / ".shadowfarm" / "history.sqlite").write_text("x")
        assert rel(changed_files(repo).paths, repo) == {".gitignore"}

    def test_a_branch_compares_with_its_merge_base_with_main(self, repo):
        """Commits on a feature branch count, and so do uncommitted edits."""
        git(repo, "checkout", "-q", "-b", "feature")
        (repo / "src/pkg/a.py").write_text("X = 3\n")
        commit_all(repo)
        (repo / "src/pkg/b.py").write_text("from pkg.a import X\nY = 1\n")
        changes = changed_files(repo)
        assert rel(changes.paths, repo) == {"src/pkg/a.py", "src/pkg/b.py"}
        assert changes.base.startswith("main (merge base ")

    def test_changes_on_main_after_branching_do_not_count(self, repo):
        """Only the branch's own changes count: main moving on is not a change here."""
        git(repo, "checkout", "-q", "-b", "feature")
        git(repo, "checkout", "-q", "main")
        (repo / "tests/test_none.py").write_text("import sys\n")
        commit_all(repo)
        git(repo, "checkout", "-q", "feature")
        assert changed_files(repo).paths == frozenset()

    def test_an_explicit_base_is_used(self, repo):
        """--sf-base REF compares against that ref's merge base."""
        first = git(repo, "rev-parse", "HEAD")
        (repo / "src/pkg/a.py").write_text("X = 4\n")
        commit_all(repo)
        changes = changed_files(repo, first)
        assert rel(changes.paths, repo) == {"src/pkg/a.py"}
        assert first[:7] in changes.base

    def test_an_unknown_explicit_base_says_how_to_fix_it(self, repo):
        """A base git does not know raises ChangeDetectionError naming the ref."""
        with pytest.raises(ChangeDetectionError, match=r"--sf-base 'origin/nope'.*fetch"):
            changed_files(repo, "origin/nope")

    def test_without_a_default_branch_the_working_tree_is_compared_with_head(self, repo):
        """On a repository whose branch is neither main nor master, HEAD is the base."""
        git(repo, "branch", "-m", "main", "trunk")
        assert default_branch(repo) is None
        (repo / "src/pkg/a.py").write_text("X = 5\n")
        changes = changed_files(repo)
        assert rel(changes.paths, repo) == {"src/pkg/a.py"}
        assert changes.base == f"HEAD {git(repo, 'rev-parse', '--short=7', 'HEAD')}"

    def test_origin_head_is_preferred_as_the_default_branch(self, repo, tmp_path):
        """A clone knows its default branch through origin/HEAD."""
        clone = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        assert default_branch(clone) == "origin/main"

    def test_a_repository_without_commits_has_everything_changed(self, tmp_path):
        """Before the first commit every file is new."""
        git(tmp_path, "init", "-q", "-b", "main")
        (tmp_path / "test_x.py").write_text("")
        changes = changed_files(tmp_path)
        assert rel(changes.paths, tmp_path) == {"test_x.py"}
        assert "no commits" in changes.base

    def test_a_project_in_a_subdirectory_of_the_repository(self, repo):
        """Paths are absolute whatever directory inside the repository is asked."""
        (repo / "src/pkg/a.py").write_text("X = 6\n")
        assert rel(changed_files(repo / "tests").paths, repo) == {"src/pkg/a.py"}

    def test_outside_a_repository_the_error_says_so(self, tmp_path):
        """A directory outside git raises ChangeDetectionError."""
        with pytest.raises(ChangeDetectionError, match="not inside a git repository"):
            changed_files(tmp_path)

    def test_missing_git_is_reported(self, tmp_path, monkeypatch):
        """Without git on PATH the error says git is not installed."""
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        with pytest.raises(ChangeDetectionError, match="git is not installed"):
            changed_files(tmp_path)


class TestImpactValue:
    def test_values_fall_with_distance(self):
        """A changed test file counts most, then direct imports, halving per hop."""
        assert impact_value(0) == CHANGED_TEST_FILE
        assert impact_value(1) == DIRECT_IMPORT
        assert impact_value(3) == DIRECT_IMPORT / 4

    def test_reasons_name_the_changed_file(self):
        """The reason says which file changed and how far away it is."""
        assert Impact(0, "tests/t.py").reason == "test file changed"
        assert Impact(1, "src/a.py").reason == "imports changed src/a.py"
        assert Impact(2, "src/a.py").reason == "imports changed src/a.py (2 imports away)"


class TestAnalyzeChanges:
    def test_nothing_changed_means_no_impact(self, repo):
        """A clean tree affects no test."""
        impact = analyze_changes(repo, NODEIDS)
        assert (impact.changed, dict(impact.by_file)) == (0, {})

    def test_a_changed_module_reaches_its_direct_and_transitive_importers(self, repo):
        """Changing a.py touches test_a (1 hop), test_b (2 hops) and test_c (3 hops)."""
        (repo / "src/pkg/a.py").write_text("X = 7\n")
        impact = analyze_changes(repo, NODEIDS)
        hops = {key: i.hops for key, i in impact.by_file.items()}
        assert hops == {"tests/test_a.py": 1, "tests/test_b.py": 2, "tests/test_c.py": 3}
        assert impact.for_nodeid("tests/test_b.py::test_x[1]").via == "src/pkg/a.py"
        assert impact.for_nodeid("tests/test_none.py::test_x") is None

    def test_a_changed_test_file_is_zero_hops(self, repo):
        """Editing a test file gives its tests the full signal."""
        (repo / "tests/test_none.py").write_text("import os, sys\n")
        impact = analyze_changes(repo, NODEIDS)
        assert impact.by_file == {"tests/test_none.py": Impact(0, "tests/test_none.py")}

    def test_a_new_untracked_test_file_is_changed(self, repo):
        """A test file git does not track yet counts as changed."""
        (repo / "tests/test_new.py").write_text("def test_n(): pass\n")
        impact = analyze_changes(repo, [*NODEIDS, "tests/test_new.py::test_n"])
        assert impact.for_nodeid("tests/test_new.py::test_n") == Impact(0, "tests/test_new.py")

    def test_a_conftest_import_reaches_every_test_below_it(self, repo):
        """A module imported by conftest.py affects the tests under that conftest."""
        write(repo, {"tests/conftest.py": "import helpers\n", "tests/helpers.py": "H = 1\n"})
        commit_all(repo)
        (repo / "tests/helpers.py").write_text("H = 2\n")
        impact = analyze_changes(repo, NODEIDS)
        assert {i.hops for i in impact.by_file.values()} == {2}
        assert set(impact.by_file) == {n.partition("::")[0] for n in NODEIDS}

    def test_ini_pythonpath_entries_are_searched(self, repo):
        """A module found only through a pythonpath entry is resolved."""
        write(repo, {"lib/extra.py": "E = 1\n", "tests/test_e.py": "import extra\n"})
        commit_all(repo)
        (repo / "lib/extra.py").write_text("E = 2\n")
        nodeids = ["tests/test_e.py::t"]
        assert analyze_changes(repo, nodeids).by_file == {}
        found = analyze_changes(repo, nodeids, search_paths=[repo / "lib"])
        assert found.by_file == {"tests/test_e.py": Impact(1, "lib/extra.py")}

    def test_the_parse_cache_is_written(self, repo):
        """The import cache file appears when the graph was walked."""
        (repo / "src/pkg/a.py").write_text("X = 8\n")
        cache = repo / ".shadowfarm" / "imports.json"
        analyze_changes(repo, NODEIDS, cache_path=cache)
        assert cache.is_file()

    def test_outside_git_the_analysis_raises(self, tmp_path):
        """Without git there is no change signal: ChangeDetectionError."""
        with pytest.raises(ChangeDetectionError):
            analyze_changes(tmp_path, NODEIDS)


class TestConftestChain:
    def test_conftests_from_the_test_directory_up_to_rootdir(self, tmp_path):
        """Every conftest.py between the test file and rootdir is found, nearest first."""
        write(tmp_path, {"conftest.py": "", "a/conftest.py": "", "a/b/test_x.py": ""})
        found = conftest_chain(tmp_path / "a/b/test_x.py", tmp_path)
        assert found == [tmp_path / "a/conftest.py", tmp_path / "conftest.py"]

    def test_conftests_above_rootdir_are_not_searched(self, tmp_path):
        """The search stops at rootdir."""
        write(tmp_path, {"conftest.py": "", "root/test_x.py": ""})
        assert conftest_chain(tmp_path / "root/test_x.py", tmp_path / "root") == []
