"""The GitHub action installs the plugin from its own checkout; the docs show a usable line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def step_script(text: str, name: str) -> str:
    """The ``run: |`` script of the step called ``name`` in an action.yml."""
    step = text.split(f"    - name: {name}\n", 1)[1].split("\n    - name: ", 1)[0]
    lines = step.split("      run: |\n", 1)[1].splitlines()
    return "\n".join(line[8:] for line in lines if line.startswith("        ") or not line)


def install(tmp_path: Path, action: Path, package: str = "") -> list[str]:
    """Run the action's install step with a ``python`` that records its arguments."""
    log = tmp_path / "calls"
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "python").write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$1" = -m ]\n')
    (shim / "python").chmod(0o755)
    env = {
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_ACTION_PATH": str(action.parent),
        "SF_INSTALL": "auto",
        "SF_PACKAGE": package,
    }
    script = step_script(action.read_text(), "Install pytest-shadowfarm")
    subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=env, check=True, timeout=30)
    return log.read_text().splitlines()


class TestInstall:
    @pytest.mark.parametrize("action", ["action.yml", "merge/action.yml"])
    def test_by_default_pip_installs_the_actions_own_checkout(
        self, tmp_path: Path, action: str
    ) -> None:
        """No package given: ``pip install`` of the directory the action was checked out in."""
        calls = install(tmp_path, ROOT / action)
        target = calls[-1].removeprefix("-m pip install ")
        assert Path(target).resolve() == ROOT

    def test_a_package_given_is_installed_instead(self, tmp_path: Path) -> None:
        """``package:`` still wins, e.g. a built wheel."""
        calls = install(tmp_path, ROOT / "action.yml", package="dist/x.whl")
        assert calls[-1] == "-m pip install dist/x.whl"


class TestDocs:
    @pytest.mark.parametrize("doc", ["README.md", "docs/github-actions.md"])
    def test_no_placeholder_owner_in_a_uses_line(self, doc: str) -> None:
        """Every ``uses:`` of this action names a path or repository a user can write."""
        text = (ROOT / doc).read_text()
        assert "<owner>" not in text
        assert "uses: ./" in text
