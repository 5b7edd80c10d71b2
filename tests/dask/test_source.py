"""The Dask source: its environment check of a host, and dask+tls:// without TLS settings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_shadowfarm.dask.source import DaskSource, environment_problem
from shadowfarm_wire.relay import parse_engine_url


class TestEnvironmentCheck:
    def test_a_host_with_another_python_or_installed_set_is_refused(self) -> None:
        """The refusal names what differs; equal hosts pass."""
        ours = {"python_version": "3.11.7", "distributions_hash": "abc"}
        assert environment_problem(dict(ours), ours) == ""
        assert "Python 3.12.1" in environment_problem({**ours, "python_version": "3.12.1"}, ours)
        assert "installed set" in environment_problem({**ours, "distributions_hash": "x"}, ours)


class TestTLS:
    def test_a_tls_url_without_dasks_tls_settings_is_refused_naming_them(self) -> None:
        """dask+tls:// with no CA file in Dask's config: no connection, cold workers, and a
        warning that names the settings to set."""
        pytest.importorskip("distributed")
        import dask

        warnings: list[str] = []
        run = SimpleNamespace(warn=warnings.append)
        engine = parse_engine_url("dask+tls://127.0.0.1:1")
        assert engine is not None
        source = DaskSource(run, Path(), engine)  # type: ignore[arg-type]
        with dask.config.set({"distributed.comm.tls.ca-file": None}):
            assert source.reserve(2) == 0
        assert source.client is None
        (warning,) = warnings
        assert "distributed.comm.tls.ca-file" in warning
        assert "workers start cold" in warning
