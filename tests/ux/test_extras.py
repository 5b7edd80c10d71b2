"""Every extra holds only what the code imports."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: distribution name -> the module it is imported as
MODULE = {"prometheus-client": "prometheus_client"}


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]


def imported(package: Path) -> set[str]:
    """The top-level modules imported anywhere under ``package`` (lazy imports included)."""
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.partition(".")[0])
    return found


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0]


class TestExtras:
    def test_the_farm_extra_holds_what_the_farm_imports(self) -> None:
        """fastapi, uvicorn, prometheus-client: each imported by farm_server."""
        used = imported(ROOT / "farm_server") | imported(ROOT / "pytest_shadowfarm")
        for requirement in extras()["farm"]:
            name = requirement_name(requirement)
            if name == "pytest-shadowfarm":
                continue  # another extra of ours
            assert MODULE.get(name, name) in used, f"[farm] holds {name}, which nothing imports"

    def test_numpy_and_statsmodels_are_only_in_the_forecast_extra(self) -> None:
        """The ~365 MB of numerical packages belong to the forecast that imports them."""
        for extra, requirements in extras().items():
            names = {requirement_name(r) for r in requirements}
            if extra != "forecast":
                assert not names & {"numpy", "statsmodels"}, extra

    @pytest.mark.skipif(
        not (ROOT / "farm_server" / "forecast").is_dir(), reason="no forecast package yet"
    )
    def test_the_forecast_extra_holds_what_the_forecast_imports(self) -> None:
        """numpy and statsmodels are imported by farm_server/forecast."""
        used = imported(ROOT / "farm_server" / "forecast")
        for requirement in extras()["forecast"]:
            assert requirement_name(requirement) in used

    def test_the_dask_extra_holds_what_the_dask_farm_imports(self) -> None:
        """distributed: imported by pytest_shadowfarm/dask, and by nothing outside it."""
        used = imported(ROOT / "pytest_shadowfarm" / "dask")
        assert [requirement_name(r) for r in extras()["dask"]] == ["distributed"]
        assert "distributed" in used
        elsewhere = imported(ROOT / "farm_server") | imported(ROOT / "shadowfarm_wire")
        assert "distributed" not in elsewhere
