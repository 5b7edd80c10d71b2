"""The host's side of the relay: it proves itself first and offers only claimed workers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

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


class FakeProc:
    def __init__(self, args: list[str], **kwargs: object) -> None:
        import io

        self.env = kwargs["env"]
        self.stdin = io.BytesIO()
        self.stdout = io.BytesIO(b'{"event": "ready"}\n')
        self.killed = False

    def poll(self) -> int | None:
        return -9 if self.killed else None

    def kill(self) -> None:
        self.killed = True

    def wait(self, timeout: float | None = None) -> int:
        return -9


class TestHostedWorkers:
    def _host(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
        pytest.importorskip("distributed")
        from pytest_shadowfarm.dask import host as host_module

        monkeypatch.setattr(host_module.subprocess, "Popen", FakeProc)
        monkeypatch.setenv("PYTHONHASHSEED", "6640")  # what a Dask worker runs with
        host = host_module.ShadowfarmHost(keep_warm=2)
        host.setup(SimpleNamespace(local_directory=str(tmp_path), name="w0", handlers={}))
        return host

    def test_a_hosted_worker_starts_with_the_runs_hash_seed_not_dasks(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A run without PYTHONHASHSEED gets workers without it; a fixed seed is passed on."""
        host = self._host(tmp_path, monkeypatch)
        host.claim("s", 1, [])  # type: ignore[attr-defined]
        host.claim("s", 1, [], "123")  # type: ignore[attr-defined]
        envs = [h.proc.env for h in host.hosted.values()]  # type: ignore[attr-defined]
        assert [e.get("PYTHONHASHSEED") for e in envs] == [None, "123"]

    def test_a_warm_worker_serves_only_a_run_with_its_hash_seed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Released workers warm the next run's; a run with another seed gets new ones."""
        host = self._host(tmp_path, monkeypatch)
        first = host.claim("s", 2, [])  # type: ignore[attr-defined]
        host.release([w["id"] for w in first], [])  # type: ignore[attr-defined]
        warm = set(host.hosted)  # type: ignore[attr-defined]
        assert len(warm) == 2
        for hosted in host.hosted.values():  # type: ignore[attr-defined]
            assert hosted.ready.wait(10)  # its status line read: warmed up
        other = host.claim("t", 1, [], "7")  # type: ignore[attr-defined]
        assert other[0]["id"] not in warm
        same = host.claim("u", 2, [])  # type: ignore[attr-defined]
        assert {w["id"] for w in same} == warm
        assert all(w["warm"] for w in same)

    def test_the_next_runs_workers_warm_up_over_the_shipped_tree_of_their_project(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Refills collect the project's copy; another project's claim does not take them."""
        import json

        host = self._host(tmp_path, monkeypatch)
        tree = tmp_path / "shadowfarm" / "trees" / "abc" / "tree0"
        tree.mkdir(parents=True)
        first = host.claim("s", 1, [], "random", "/ctl/proj")  # type: ignore[attr-defined]
        host.release([w["id"] for w in first], [], "random", "/ctl/proj", "abc")  # type: ignore[attr-defined]
        (warm,) = host.hosted.values()  # type: ignore[attr-defined]
        assert json.loads(warm.proc.stdin.getvalue())["rootdir"] == str(tree)
        other = host.claim("t", 1, [], "random", "/ctl/other")  # type: ignore[attr-defined]
        assert other[0]["id"] != warm.id
        same = host.claim("u", 1, [], "random", "/ctl/proj")  # type: ignore[attr-defined]
        assert same[0]["id"] == warm.id
