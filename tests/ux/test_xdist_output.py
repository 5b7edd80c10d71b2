"""Under ``-n`` the plugin's lines stand on their own and say what they say without ``-n``."""

from __future__ import annotations

import pytest

SUITE = {f"test_m{m}": "".join(f"def test_t{i}():\n    pass\n" for i in range(4)) for m in range(2)}


def own_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "shadowfarm: " in line]


class TestXdistOutput:
    def test_header_order_and_explain_lines_are_whole_and_match_a_plain_run(
        self, pytester: pytest.Pytester
    ) -> None:
        """No line glued to xdist's status; order and explain lines as without -n."""
        pytester.makepyfile(**SUITE)
        sf = ("-p", "shadowfarm", "--sf-explain", "3", "-p", "no:randomly")
        pytester.runpytest_subprocess(*sf).assert_outcomes(passed=8)
        plain = pytester.runpytest_subprocess(*sf)
        xdist = pytester.runpytest_subprocess(*sf, "-n", "2")
        xdist.assert_outcomes(passed=8)
        for line in own_lines(xdist):
            assert line.startswith("shadowfarm: "), line
        for result in (plain, xdist):
            result.stdout.fnmatch_lines(
                [
                    "shadowfarm: 8 tests, 8 with history; predicted total *",
                    "shadowfarm: order grouped by urgency*",
                    "shadowfarm: change impact off: *",
                    "shadowfarm: the first 3 of 8 tests *",
                    "*passed*",
                ]
            )

        def order_line(result: pytest.RunResult) -> str:
            return next(x for x in own_lines(result) if x.startswith("shadowfarm: order"))

        assert order_line(xdist) == order_line(plain)
        summary = next(i for i, x in enumerate(xdist.outlines) if "-- shadowfarm --" in x)
        assert all("change impact off" not in x for x in xdist.outlines[summary:])
