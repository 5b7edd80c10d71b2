"""What a new user sees of the order: failures first in the default single-process order."""

from __future__ import annotations

import pytest

#: many fast passing modules, and one module whose tests are slower and one of which
#: fails when $FAILING names it: ranked by total priority over total ETC, this module
#: sank behind every fast module although it holds last run's failure
FAST = {
    f"test_fast{m}": "".join(f"def test_f{i}():\n    pass\n" for i in range(200)) for m in range(5)
}
SLOW = (
    "import os, time\n"
    + "".join(f"def test_s{i}():\n    time.sleep(0.1)\n" for i in range(4))
    + "def test_bug():\n    assert 'bug' not in os.environ.get('FAILING', '')\n"
)


def ran(result: pytest.RunResult) -> list[str]:
    return [
        line.split(" ")[0]
        for line in result.outlines
        if "::" in line and (" PASSED" in line or " FAILED" in line)
    ]


class TestGroupedOrder:
    def test_a_module_with_a_recent_failure_runs_first_and_the_failure_first_in_it(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Last run's failure comes first even in a slow module; the module stays one block."""
        monkeypatch.delenv("SHADOWFARM_ORDER", raising=False)
        pytester.makepyfile(**FAST, test_zslow=SLOW)
        monkeypatch.setenv("FAILING", "bug")
        pytester.runpytest("-p", "shadowfarm", "-p", "no:randomly").assert_outcomes(
            passed=1004, failed=1
        )
        result = pytester.runpytest("-p", "shadowfarm", "-p", "no:randomly", "-v")
        result.assert_outcomes(passed=1004, failed=1)
        order = ran(result)
        assert order[0] == "test_zslow.py::test_bug"
        slow = [i for i, nodeid in enumerate(order) if nodeid.startswith("test_zslow.py")]
        assert slow == list(range(5)), "the module is still one block"

    def test_a_new_test_brings_its_module_forward(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A test the history has never seen runs before the known ones, its module with it."""
        monkeypatch.delenv("FAILING", raising=False)
        pytester.makepyfile(**FAST, test_zslow=SLOW)
        pytester.runpytest("-p", "shadowfarm").assert_outcomes(passed=1005)
        pytester.makepyfile(test_zslow=SLOW + "def test_new():\n    pass\n")
        result = pytester.runpytest("-p", "shadowfarm", "-v")
        order = ran(result)
        assert order[0] == "test_zslow.py::test_new"
        assert all(n.startswith("test_zslow.py") for n in order[:6])


class TestSignalledBlocks:
    def test_signalled_block_beats_a_cheaper_block_and_its_signalled_test_leads(self) -> None:
        """A slow module holding a signalled test goes before fast unsignalled modules."""
        from pytest_shadowfarm.priority import Entry
        from pytest_shadowfarm.priority.order import order

        fast = [Entry(f"a.py::t{i}", "a.py", 0.02, 0.001, 0.0001) for i in range(300)]
        slow = [
            Entry("b.py::s0", "b.py", 0.0001, 0.001, 10.0),
            Entry("b.py::bug", "b.py", 0.1, 1.0, 10.0, True),
        ]
        got = order([*fast, *slow], "grouped")
        assert got[:2] == [301, 300]
        assert sorted(got) == list(range(302))
