"""The user docs describe the product as it is; its history lives in CHANGELOG.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: phrases that tell the reader about an earlier version instead of this one
HISTORY = re.compile(r"\b(used to|no longer|until \d{4}-\d\d-\d\d|earlier history)\b", re.I)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_changelog_passages_in_user_docs(doc: Path) -> None:
    """No "used to", "no longer", "Until 2026-..." in README.md and docs/."""
    found = [line for line in doc.read_text().splitlines() if HISTORY.search(line)]
    assert found == []


def test_the_history_has_a_home() -> None:
    """CHANGELOG.md exists for the changes the docs leave out."""
    assert (ROOT / "CHANGELOG.md").is_file()
