"""The Dask farm's pure parts: URLs, the relay's proofs, shipping, path rewriting."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest

from pytest_shadowfarm.dask.gateway import PathMap, RewritingChannel
from pytest_shadowfarm.dask.ship import bundle, project_files
from pytest_shadowfarm.dask.source import environment_problem
from pytest_shadowfarm.options import farm_target
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


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


class TestShipping:
    def test_gitignored_files_and_caches_are_not_shipped(self, tmp_path: Path) -> None:
        """In a git tree: tracked and new files go, ignored ones and caches stay home."""
        (tmp_path / ".gitignore").write_text("big.bin\n")
        (tmp_path / "big.bin").write_bytes(b"x" * 100)
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
        (tmp_path / "pkg" / "__pycache__").mkdir()
        (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"")
        _git(tmp_path, "init", "-q")
        (tmp_path / "new_test.py").write_text("")
        assert project_files(tmp_path) == [".gitignore", "new_test.py", "pkg/mod.py"]

    def test_the_digest_names_the_content_and_the_zip_holds_every_root(
        self, tmp_path: Path
    ) -> None:
        """Same files -> same digest and bytes; a change -> a new digest; extras as tree1."""
        root, extra = tmp_path / "root", tmp_path / "libs"
        (root / "tests").mkdir(parents=True)
        extra.mkdir()
        (root / "tests" / "test_a.py").write_text("def test(): pass\n")
        (extra / "helper.py").write_text("H = 1\n")
        first, again = bundle(root, [extra]), bundle(root, [extra])
        assert (first.digest, first.data) == (again.digest, again.data)
        names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
        assert names == ["tree0/tests/test_a.py", "tree1/helper.py"]
        (root / "tests" / "test_a.py").write_text("def test(): assert 1\n")
        assert bundle(root, [extra]).digest != first.digest

    def test_a_tree_over_the_limit_is_refused_with_the_fix(self, tmp_path: Path) -> None:
        """A large file names .gitignore as the way out."""
        (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 4096)
        with pytest.raises(ValueError, match=r"\.gitignore"):
            bundle(tmp_path, limit=1000)


class TestRewriting:
    paths = PathMap(
        pairs=(("/ctl/proj/libs", "/h/t/tree1"), ("/ctl/proj", "/h/t/tree0")),
        host_sys_path=("/h/site-packages",),
        tmp="/h/tmp",
    )

    def test_paths_args_and_cwd_move_to_the_shipped_copy(self) -> None:
        """Absolute project paths (also in --opt=PATH and PATH::test) are rewritten."""
        p = self.paths
        assert p.arg("/ctl/proj/tests/test_a.py::test_x") == "/h/t/tree0/tests/test_a.py::test_x"
        assert p.arg("--rootdir=/ctl/proj") == "--rootdir=/h/t/tree0"
        assert p.arg("/ctl/proj/libs/x.py") == "/h/t/tree1/x.py"
        assert p.arg("-k") == "-k"
        assert p.arg("/elsewhere/x") == "/elsewhere/x"
        assert p.cwd("/ctl/proj/tests") == "/h/t/tree0/tests"
        assert p.cwd("/somewhere/else") == "/h/t/tree0"
        assert p.path("/ctl/projector") is None

    def test_xdists_setup_message_is_rewritten_once(self) -> None:
        """sys.path keeps the project's entries (moved) and the host's own; basetemp moves."""
        sent: list[object] = []

        class Channel:
            def send(self, item: object) -> None:
                sent.append(item)

        channel = RewritingChannel(Channel(), self.paths, "popen-gw0")
        message = (
            {"workerid": "gw0"},
            ["/ctl/proj/tests", "-q"],
            {"basetemp": "/ctl/tmp/popen-gw0"},
            ["/ctl/proj", "/ctl/venv/site-packages"],
        )
        channel.send(message)
        channel.send(message)
        assert sent[0] == (
            {"workerid": "gw0"},
            ["/h/t/tree0/tests", "-q"],
            {"basetemp": "/h/tmp/popen-gw0"},
            ["/h/t/tree0", "/h/site-packages"],
        )
        assert sent[1] == message


class TestEnvironmentCheck:
    def test_a_host_with_another_python_or_installed_set_is_refused(self) -> None:
        """The refusal names what differs; equal hosts pass."""
        ours = {"python_version": "3.11.7", "distributions_hash": "abc"}
        assert environment_problem(dict(ours), ours) == ""
        assert "Python 3.12.1" in environment_problem({**ours, "python_version": "3.12.1"}, ours)
        assert "installed set" in environment_problem({**ours, "distributions_hash": "x"}, ours)


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
