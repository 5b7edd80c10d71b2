"""A history file damaged in the middle is moved aside once, with a warning naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = """
import pytest

@pytest.mark.parametrize("i", range(300))
def test_many(i):
    pass
"""


def run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "shadowfarm", "-p", "no:cacheprovider")


def damage_the_middle(path: Path) -> None:
    """Overwrite every page but the first (the header and schema stay readable)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) > 3 * page, "the history should span several pages"
    data[page:] = b"\xa5" * (len(data) - page)
    path.write_bytes(bytes(data))


class TestDamagedHistory:
    def test_is_moved_aside_once_and_a_new_history_starts(self, pytester):
        """Damaged inside: the next run warns once, naming the moved file; the next is quiet."""
        pytester.makepyfile(test_many=TESTS)
        run(pytester).assert_outcomes(passed=300)
        run(pytester).assert_outcomes(passed=300)
        history = pytester.path / ".shadowfarm" / "history.sqlite"
        damage_the_middle(history)
        second = run(pytester)
        second.assert_outcomes(passed=300, warnings=1)
        second.stdout.fnmatch_lines(
            ["*history.sqlite: the history is damaged inside (*); moved it to "
             "history.sqlite.corrupt-* and started a new history*"]
        )  # fmt: skip
        assert "history disabled" not in second.stdout.str()
        moved = list(history.parent.glob("history.sqlite.corrupt-*"))
        assert len([p for p in moved if not p.name.endswith(("-wal", "-shm"))]) == 1
        third = run(pytester)
        third.assert_outcomes(passed=300)
        assert "damaged" not in third.stdout.str()
        assert "history disabled" not in third.stdout.str()
