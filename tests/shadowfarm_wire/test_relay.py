"""The relay's URLs and proofs: what the controller and a Dask host check of each other."""

from __future__ import annotations

import pytest

from pytest_shadowfarm.values import farm_target
from shadowfarm_wire.relay import client_proof, host_proof, parse_engine_url, proofs_match


class TestEngineURL:
    def test_dask_urls_map_to_dask_schemes(self) -> None:
        """dask:// is tcp://, dask+tls:// is tls://, the port defaults to 8786."""
        assert parse_engine_url("dask://a:1").address == "tcp://a:1"  # type: ignore[union-attr]
        tls = parse_engine_url("dask+tls://a/")
        assert tls is not None
        assert (tls.address, tls.tls, tls.url) == ("tls://a:8786", True, "dask+tls://a")
        assert parse_engine_url("http://a:1") is None

    def test_a_url_without_host_says_what_one_looks_like(self) -> None:
        """--sf-farm dask:// is refused with an example."""
        with pytest.raises(ValueError, match=r"dask://HOST:PORT"):
            farm_target("dask://")
        assert farm_target("dask://10.0.0.1:8786") == "dask://10.0.0.1:8786"


class TestRelayProofs:
    def test_each_proof_needs_the_secret_both_nonces_and_its_own_role(self) -> None:
        """A host proof is no client proof, and any other secret or nonce fails."""
        good = host_proof("s", "w1", "cn", "hn")
        assert proofs_match(good, host_proof("s", "w1", "cn", "hn"))
        assert not proofs_match(good, client_proof("s", "w1", "cn", "hn"))
        assert not proofs_match(good, host_proof("t", "w1", "cn", "hn"))
        assert not proofs_match(good, host_proof("s", "w2", "cn", "hn"))
        assert not proofs_match(good, host_proof("s", "w1", "cn", "hx"))
        assert not proofs_match(good, None)
