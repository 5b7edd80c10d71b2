"""Fingerprint and Reads: what a collection read, and any change to it since, is seen."""

from __future__ import annotations

import os

from farm_server.collection.fingerprint import Fingerprint, Reads


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


def test_a_new_removed_or_renamed_file_changes_its_directory(tmp_path):
    (tmp_path / "test_a.py").write_text("")
    print_ = Fingerprint.take([], [str(tmp_path)])
    (tmp_path / "test_b.py").write_text("")
    assert print_.changed() == [str(tmp_path)]
    (tmp_path / "test_b.py").unlink()
    assert print_.changed() == []  # a file made and removed again leaves nothing to see
    (tmp_path / "test_a.py").rename(tmp_path / "test_c.py")
    assert print_.changed() == [str(tmp_path)]


def test_a_file_that_is_gone_counts_as_changed(tmp_path):
    path = tmp_path / "conftest.py"
    path.write_text("")
    print_ = Fingerprint.take([str(path)], [])
    path.unlink()
    assert print_.changed() == [str(path)]


def test_reads_records_files_read_and_directories_listed_only_while_recording(tmp_path):
    data, out = tmp_path / "cases.json", tmp_path / "out.txt"
    data.write_text("[]")
    with Reads() as reads:
        data.read_text()
        out.write_text("written, not read")
        os.listdir(tmp_path)
    (tmp_path / "later.txt").write_text("")
    (tmp_path / "later.txt").read_text()
    assert str(data) in reads.files
    assert str(out) not in reads.files
    assert str(tmp_path / "later.txt") not in reads.files
    assert str(tmp_path) in reads.dirs


def test_installed_code_bytecode_and_the_cache_are_not_fingerprinted(tmp_path):
    site, cache = tmp_path / "site", tmp_path / ".pytest_cache"
    paths = [
        str(site / "pkg" / "mod.py"),
        str(tmp_path / "tests" / "__pycache__" / "t.pyc"),
        str(cache / "v" / "lastfailed"),
        "/proc/self/status",
        str(tmp_path / "tests" / "data.json"),
    ]
    kept = Reads(ignored=[str(site)]).kept(paths, str(cache))
    assert kept == [os.path.realpath(tmp_path / "tests" / "data.json")]
