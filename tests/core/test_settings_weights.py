"""The prioritization settings through the one resolver: defaults, sources and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_shadowfarm.errors import ConfigError
from pytest_shadowfarm.ordering import weights_of
from pytest_shadowfarm.priority import DEFAULT_HALF_LIFE, DEFAULT_WEIGHTS
from pytest_shadowfarm.settings import resolve


def settings(tmp_path: Path, **sources: Any):
    return resolve(
        rootdir=tmp_path,
        invocation_dir=tmp_path,
        cli=sources.get("cli", {}),
        env=sources.get("env", {}),
        toml=sources.get("toml", {}),
        ini=sources.get("ini", {}),
    )


class TestPrioritySettings:
    def test_defaults_are_the_documented_ones(self, tmp_path):
        """Unset, the order is grouped, explain off, and weights are DEFAULT_WEIGHTS."""
        s = settings(tmp_path)
        assert (s.order, s.base, s.explain, s.half_life) == ("grouped", None, 0, DEFAULT_HALF_LIFE)
        assert weights_of(s) == DEFAULT_WEIGHTS
        assert "order" not in s.sources

    def test_weights_come_from_the_weights_table(self, tmp_path):
        """[tool.shadowfarm.weights] marker = 2 sets the marker weight and says where from."""
        s = settings(tmp_path, toml={"weights": {"marker": 2, "new": 0}})
        assert (weights_of(s).marker, weights_of(s).new) == (2.0, 0.0)
        assert s.describe("weight_marker").endswith("[tool.shadowfarm] weights.marker")

    def test_the_command_line_beats_the_environment(self, tmp_path):
        """--sf-weight-change wins over SHADOWFARM_WEIGHT_CHANGE."""
        s = settings(
            tmp_path,
            cli={"weight_change": "0.25"},
            env={"SHADOWFARM_WEIGHT_CHANGE": "0.75", "SHADOWFARM_ORDER": "test"},
        )
        assert (s.weight_change, s.order) == (0.25, "test")
        assert s.describe("order") == "SHADOWFARM_ORDER"

    def test_an_explicit_order_is_visible_in_the_sources(self, tmp_path):
        """An order set anywhere is recorded (randomly interplay depends on it)."""
        assert "order" in settings(tmp_path, ini={"order": "none"}).sources

    def test_base_and_explain_and_half_life_parse(self, tmp_path):
        """--sf-base keeps the ref, explain is an int, half-life a float."""
        s = settings(tmp_path, cli={"base": "origin/main", "explain": "7", "half_life": "2.5"})
        assert (s.base, s.explain, s.half_life) == ("origin/main", 7, 2.5)

    @pytest.mark.parametrize(
        ("sources", "message"),
        [
            ({"cli": {"order": "random"}}, "--sf-order='random' is not valid: expected one of"),
            ({"env": {"SHADOWFARM_HALF_LIFE": "0"}}, "SHADOWFARM_HALF_LIFE='0' is not valid"),
            ({"cli": {"explain": "-1"}}, "--sf-explain='-1' is not valid: expected a whole"),
            ({"toml": {"weights": {"failure": -1}}}, "weights.failure=-1 is not valid"),
        ],
    )
    def test_bad_values_name_their_source(self, tmp_path, sources, message):
        """Each bad value is a ConfigError naming the source and what is allowed."""
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            settings(tmp_path, **sources)

    def test_an_unknown_weight_is_rejected(self, tmp_path):
        """A typo in [tool.shadowfarm.weights] is an error naming the key."""
        with pytest.raises(ConfigError, match="unknown key 'fail'"):
            settings(tmp_path, toml={"weights": {"fail": 1}})
