"""The Dask source's environment check of a host."""

from __future__ import annotations

from pytest_shadowfarm.dask.source import environment_problem


class TestEnvironmentCheck:
    def test_a_host_with_another_python_or_installed_set_is_refused(self) -> None:
        """The refusal names what differs; equal hosts pass."""
        ours = {"python_version": "3.11.7", "distributions_hash": "abc"}
        assert environment_problem(dict(ours), ours) == ""
        assert "Python 3.12.1" in environment_problem({**ours, "python_version": "3.12.1"}, ours)
        assert "installed set" in environment_problem({**ours, "distributions_hash": "x"}, ours)
