"""Fingerprint: a file edited, added, removed or renamed since the collection is seen."""

from __future__ import annotations

import os

from farm_server.collection.prepare import Fingerprint


def test_unchanged_files_and_directories_change_nothing(tmp_path):
    (tmp_path / "test_a.py").write_text("x = 1\n")
    print_ = Fingerprint.take([str(tmp_path / "test_a.py")], [str(tmp_path)])
    assert print_.changed() == []


def test_an_edit_that_keeps_size_and_mtime_is_seen(tmp_path):
    path = tmp_path / "test_a.py"
    path.write_text("x = 1\n")
    before = os.stat(path)
    print_ = Fingerprint.take([str(path)], [])
    path.write_text("x = 2\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert print_.changed() == [str(path)]


def test_a_new_or_removed_file_changes_its_directory(tmp_path):
    (tmp_path / "test_a.py").write_text("")
    os.utime(tmp_path, ns=(0, 0))  # filesystems with coarse mtimes: make the change visible
    print_ = Fingerprint.take([], [str(tmp_path)])
    (tmp_path / "test_b.py").write_text("")
    assert print_.changed() == [str(tmp_path)]


def test_a_file_that_is_gone_counts_as_changed(tmp_path):
    path = tmp_path / "conftest.py"
    path.write_text("")
    print_ = Fingerprint.take([str(path)], [])
    path.unlink()
    assert print_.changed() == [str(path)]
