"""The files a first run leaves: an ignored state directory, a readable report, a timeline."""

from __future__ import annotations

import os
import stat

import pytest

SUITE = {"test_a": "def test_one():\n    pass\n\ndef test_two():\n    pass\n"}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**SUITE)
    return pytester


class TestStateDirectory:
    def test_first_run_says_it_made_the_directory_and_git_ignores_it(
        self, suite: pytest.Pytester
    ) -> None:
        """.shadowfarm/ is announced once and holds a .gitignore of ``*``."""
        first = suite.runpytest("-p", "shadowfarm")
        first.stdout.fnmatch_lines(["shadowfarm: created *.shadowfarm for the history*"])
        ignore = suite.path / ".shadowfarm" / ".gitignore"
        assert ignore.read_text().splitlines()[-1] == "*"
        second = suite.runpytest("-p", "shadowfarm")
        second.stdout.no_fnmatch_line("shadowfarm: created *")


class TestReportMode:
    def test_the_report_is_created_with_the_users_umask(self, suite: pytest.Pytester) -> None:
        """Under umask 022 the report is 0644, not mkstemp's 0600."""
        old = os.umask(0o022)
        try:
            suite.runpytest("-p", "shadowfarm", "--sf-report-json", "out/report.json")
        finally:
            os.umask(old)
        mode = stat.S_IMODE((suite.path / "out" / "report.json").stat().st_mode)
        assert mode == 0o644


class TestTimeline:
    def test_sf_timeline_writes_the_svg_without_github(
        self, suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``--sf-timeline FILE`` alone writes the picture."""
        monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
        result = suite.runpytest("-p", "shadowfarm", "--sf-timeline", "tl.svg")
        result.assert_outcomes(passed=2)
        svg = (suite.path / "tl.svg").read_text()
        assert svg.startswith("<svg")
        assert "test_one" in svg
