"""The host's side of the relay: it proves itself first and offers only claimed workers."""

from __future__ import annotations

import pytest

from shadowfarm_wire.relay import client_proof, host_proof, proofs_match


class FakeComm:
    def __init__(self, *replies: object) -> None:
        self.replies = list(replies)
        self.written: list[object] = []

    async def read(self) -> object:
        return self.replies.pop(0)

    async def write(self, msg: object) -> None:
        self.written.append(msg)


class TestHostHandshake:
    def _host(self) -> object:
        pytest.importorskip("distributed")
        from pytest_shadowfarm.dask.host import Hosted, ShadowfarmHost

        host = ShadowfarmHost()
        host.hosted = {"w1": Hosted("w1", None, "tok", "/nowhere", "key", secret="s")}  # type: ignore[arg-type]
        return host

    def test_a_client_without_the_secret_gets_nothing_past_the_challenge(self) -> None:
        """The host proves itself first; a wrong client proof ends the exchange."""
        import asyncio

        host = self._host()
        comm = FakeComm({"proof": client_proof("guess", "w1", "cn", "x"), "hello": {}})
        asyncio.run(host._pipe(comm, "w1", "cn"))  # type: ignore[attr-defined]
        assert len(comm.written) == 1
        challenge = comm.written[0]
        assert isinstance(challenge, dict)
        assert proofs_match(host_proof("s", "w1", "cn", challenge["nonce"]), challenge["proof"])

    def test_an_unclaimed_worker_is_not_offered(self) -> None:
        """Asking for a worker id no run claimed here is answered with an error only."""
        import asyncio

        host = self._host()
        comm = FakeComm()
        asyncio.run(host._pipe(comm, "w2", "cn"))  # type: ignore[attr-defined]
        assert comm.written == [{"error": "no claimed worker 'w2' on this host"}]
