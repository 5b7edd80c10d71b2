"""xdist's paths, args and cwd rewritten to the shipped copy on the host."""

from __future__ import annotations

from pytest_shadowfarm.dask.gateway import PathMap, RewritingChannel


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
