"""Shipping the project: which files go, the content hash, the size limit."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest

from pytest_shadowfarm.dask.ship import bundle, project_files


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


class TestShipping:
    def test_gitignored_files_and_caches_are_not_shipped(self, tmp_path: Path) -> None:
        """In a git tree: tracked and new files go, ignored ones and caches stay home."""
        (tmp_path / ".gitignore").write_text("big.bin\n")
        (tmp_path / "big.bin").write_bytes(b"x" * 100)
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
        (tmp_path / "pkg" / "__pycache__").mkdir()
        (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"")
        _git(tmp_path, "init", "-q")
        (tmp_path / "new_test.py").write_text("")
        assert project_files(tmp_path) == [".gitignore", "new_test.py", "pkg/mod.py"]

    def test_the_digest_names_the_content_and_the_zip_holds_every_root(
        self, tmp_path: Path
    ) -> None:
        """Same files -> same digest and bytes; a change -> a new digest; extras as tree1."""
        root, extra = tmp_path / "root", tmp_path / "libs"
        (root / "tests").mkdir(parents=True)
        extra.mkdir()
        (root / "tests" / "test_a.py").write_text("def test(): pass\n")
        (extra / "helper.py").write_text("H = 1\n")
        first, again = bundle(root, [extra]), bundle(root, [extra])
        assert (first.digest, first.data) == (again.digest, again.data)
        names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
        assert names == ["tree0/tests/test_a.py", "tree1/helper.py"]
        (root / "tests" / "test_a.py").write_text("def test(): assert 1\n")
        assert bundle(root, [extra]).digest != first.digest

    def test_a_tree_over_the_limit_is_refused_with_the_fix(self, tmp_path: Path) -> None:
        """A large file names .gitignore as the way out."""
        (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 4096)
        with pytest.raises(ValueError, match=r"\.gitignore"):
            bundle(tmp_path, limit=1000)
