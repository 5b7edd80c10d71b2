"""The run's -p options, as a warm-up repeats them."""

from __future__ import annotations

import pytest

from shadowfarm_wire.plugins import as_options, plugin_names


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["-p", "shadowfarm", "-n", "2", "-p", "no:randomly"], ["shadowfarm", "no:randomly"]),
        (["-pxdist", "-p=no:cacheprovider"], ["xdist", "no:cacheprovider"]),
        (["--pyargs", "pkg", "-k", "p"], []),
        (["tests", "-p"], []),  # a dangling -p names nothing
    ],
)
def test_the_names_of_the_p_options_in_order(args: list[str], names: list[str]) -> None:
    assert plugin_names(args) == names


def test_a_value_that_is_no_plugin_name_is_left_out() -> None:
    """It would become an option of the shadow run: `-p --basetemp=/` is not repeated."""
    assert plugin_names(["-p", "--basetemp=/", "-p", "a b", "-p", "ok.mod"]) == ["ok.mod"]


def test_as_options_gives_pytest_arguments() -> None:
    assert as_options(["xdist", "no:randomly"]) == ["-p", "xdist", "-p", "no:randomly"]
