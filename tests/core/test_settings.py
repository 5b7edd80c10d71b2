"""The settings resolver: precedence of sources and the error messages (no pytest runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_shadowfarm.errors import ConfigError
from pytest_shadowfarm.settings import OPTIONS, read_pyproject_table, resolve


def _resolve(tmp_path: Path, **sources: Any):
    return resolve(
        rootdir=tmp_path,
        invocation_dir=tmp_path / "cwd",
        cli=sources.get("cli", {}),
        env=sources.get("env", {}),
        toml=sources.get("toml", {}),
        ini=sources.get("ini", {}),
    )


class TestPrecedence:
    def test_defaults_apply_when_nothing_is_set(self, tmp_path: Path) -> None:
        """With no source set, history lives under the rootdir and keep is 50."""
        settings = _resolve(tmp_path)
        assert settings.history == tmp_path / ".shadowfarm" / "history.sqlite"
        assert settings.history_keep == 50
        assert settings.report_json is None
        assert settings.describe("history_keep") == "default"

    @pytest.mark.parametrize(
        ("sources", "expected", "source"),
        [
            ({"ini": {"history_keep": "4"}}, 4, "ini option shadowfarm_history_keep"),
            ({"ini": {"history_keep": "4"}, "toml": {"history_keep": 3}}, 3, "[tool.shadowfarm]"),
            (
                {"toml": {"history_keep": 3}, "env": {"SHADOWFARM_HISTORY_KEEP": "2"}},
                2,
                "SHADOWFARM_HISTORY_KEEP",
            ),
            (
                {"env": {"SHADOWFARM_HISTORY_KEEP": "2"}, "cli": {"history_keep": "1"}},
                1,
                "--sf-history-keep",
            ),
        ],
    )
    def test_each_source_overrides_the_ones_below_it(
        self, tmp_path: Path, sources: dict[str, Any], expected: int, source: str
    ) -> None:
        """CLI beats env beats [tool.shadowfarm] beats ini, and the source is remembered."""
        settings = _resolve(tmp_path, **sources)
        assert settings.history_keep == expected
        assert source in settings.describe("history_keep")

    def test_relative_paths_resolve_against_their_source(self, tmp_path: Path) -> None:
        """A CLI path is relative to the invocation dir, a config path to the rootdir."""
        from_cli = _resolve(tmp_path, cli={"report_json": "r.json"})
        from_toml = _resolve(tmp_path, toml={"report_json": "r.json"})
        assert from_cli.report_json == tmp_path / "cwd" / "r.json"
        assert from_toml.report_json == tmp_path / "r.json"

    def test_empty_values_count_as_unset(self, tmp_path: Path) -> None:
        """An empty env var or ini value falls through to the next source."""
        settings = _resolve(
            tmp_path, env={"SHADOWFARM_HISTORY_KEEP": ""}, ini={"history_keep": "7"}
        )
        assert settings.history_keep == 7


class TestErrors:
    @pytest.mark.parametrize(
        ("sources", "named"),
        [
            ({"cli": {"history_keep": "zero"}}, "--sf-history-keep='zero'"),
            ({"env": {"SHADOWFARM_HISTORY_KEEP": "-3"}}, "SHADOWFARM_HISTORY_KEEP='-3'"),
            ({"toml": {"history_keep": 0}}, "[tool.shadowfarm] history_keep=0"),
            ({"ini": {"history_keep": "1.5"}}, "ini option shadowfarm_history_keep='1.5'"),
        ],
    )
    def test_a_bad_value_names_its_source_and_what_is_allowed(
        self, tmp_path: Path, sources: dict[str, Any], named: str
    ) -> None:
        """Every bad value says where it came from and that a whole number >= 1 is expected."""
        with pytest.raises(ConfigError) as excinfo:
            _resolve(tmp_path, **sources)
        assert named in str(excinfo.value)
        assert "expected a whole number >= 1" in str(excinfo.value)

    def test_an_unknown_toml_key_is_rejected_with_the_known_ones(self, tmp_path: Path) -> None:
        """A typo in [tool.shadowfarm] is an error listing the known keys."""
        with pytest.raises(ConfigError, match=r"unknown key 'histroy'.*known keys: .*history"):
            _resolve(tmp_path, toml={"histroy": "x"})

    def test_a_broken_pyproject_names_the_file(self, tmp_path: Path) -> None:
        """Invalid TOML is reported with the path of the file."""
        (tmp_path / "pyproject.toml").write_text("[tool.shadowfarm\n")
        with pytest.raises(ConfigError, match=r"pyproject.toml: cannot read"):
            read_pyproject_table(tmp_path)

    def test_every_option_has_help_and_a_flag(self) -> None:
        """Each option documents itself and maps to --sf-*, SHADOWFARM_* and shadowfarm_*."""
        for opt in OPTIONS:
            assert opt.help.strip()
            assert opt.flag.startswith("--sf-")
            assert opt.env.startswith("SHADOWFARM_")
            assert opt.ini.startswith("shadowfarm_")
