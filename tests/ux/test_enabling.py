"""What enables the plugin: ``-p shadowfarm``, an explicit ``--sf-*`` option, or config."""

from __future__ import annotations

import pytest

SUITE = {"test_a": "def test_one():\n    pass\n\ndef test_two():\n    pass\n"}


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(**SUITE)
    return pytester


class TestEnabling:
    def test_an_explicit_sf_option_enables_the_plugin(self, suite: pytest.Pytester) -> None:
        """``--sf-order test`` alone runs the plugin: its header and history appear."""
        result = suite.runpytest("--sf-order", "test")
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["shadowfarm: *", "*shadowfarm*"])
        assert (suite.path / ".shadowfarm" / "history.sqlite").exists()

    def test_pyproject_enabled_true_enables_the_plugin(self, suite: pytest.Pytester) -> None:
        """``[tool.shadowfarm] enabled = true`` is as good as ``-p shadowfarm``."""
        suite.makepyprojecttoml("[tool.shadowfarm]\nenabled = true\n")
        result = suite.runpytest()
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["shadowfarm: *"])
        assert (suite.path / ".shadowfarm" / "history.sqlite").exists()

    def test_without_any_of_these_the_plugin_stays_inert(self, suite: pytest.Pytester) -> None:
        """No -p, no --sf-*, no ``enabled = true``: no output, nothing written."""
        suite.makepyprojecttoml("[tool.shadowfarm]\norder = 'test'\nenabled = false\n")
        result = suite.runpytest()
        result.assert_outcomes(passed=2)
        result.stdout.no_fnmatch_line("shadowfarm:*")
        assert not (suite.path / ".shadowfarm").exists()

    def test_a_bad_enabled_value_names_the_key_and_the_fix(self, suite: pytest.Pytester) -> None:
        """``enabled = "yes"`` is a usage error saying what to write."""
        suite.makepyprojecttoml("[tool.shadowfarm]\nenabled = 'yes'\n")
        result = suite.runpytest()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*[[]tool.shadowfarm[]] enabled='yes'*enabled = true*"])
