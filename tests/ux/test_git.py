"""Change impact tells git's own refusal, and follows literal lazy imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_shadowfarm.priority.imports import ImportSpec, parse_imports

DUBIOUS = (
    "fatal: detected dubious ownership in repository at '{path}'\n"
    "To add an exception for this directory, call:\n\n"
    "\tgit config --global --add safe.directory {path}\n"
)


class TestGitRefusal:
    def test_dubious_ownership_is_reported_with_gits_message_and_fix(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """The header quotes git (dubious ownership + safe.directory), not "not a repository"."""
        bin_dir = tmp_path / "fakebin"
        bin_dir.mkdir()
        fake = bin_dir / "git"
        message = DUBIOUS.format(path=pytester.path)
        fake.write_text(f"#!/bin/sh\ncat >&2 <<'END'\n{message}END\nexit 128\n")
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        pytester.makepyfile(test_a="def test_ok():\n    pass\n")
        result = pytester.runpytest_subprocess("-p", "shadowfarm")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: change impact off: git refused to read *: fatal: detected dubious "
                "ownership in repository at * git config --global --add safe.directory *"
            ]
        )
        result.stdout.no_fnmatch_line("*not inside a git repository*")


class TestLazyImports:
    def test_literal_import_module_calls_are_edges(self) -> None:
        """Imports in functions and import_module("x") with a literal name are followed."""
        source = (
            b"import importlib\n"
            b"def f():\n    import pkg.lazy\n"
            b"def g():\n    return importlib.import_module('pkg.plugin')\n"
            b"def h(name):\n    return __import__(name)\n"
        )
        specs = parse_imports(source)
        assert ImportSpec("pkg.lazy") in specs
        assert ImportSpec("pkg.plugin") in specs
        assert len(specs) == 3
