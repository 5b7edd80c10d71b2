"""The hand-off's controller side: which specs a warm worker may serve, the group's
makegateway shadow and its cold fallbacks, and the authenticated connect."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import execnet
import pytest

from pytest_shadowfarm.farm.handoff import WarmSlot, connect_worker, eligible, install
from shadowfarm_wire.protocol import ACK, HandoffError, recv_hello, send_refusal


@dataclass
class FakeGroup:
    """execnet's Group as install() uses it; its own makegateway is the cold path."""

    cold: list[Any] = field(default_factory=list)
    allocated: list[Any] = field(default_factory=list)

    def makegateway(self, spec: Any = None) -> str:
        self.cold.append(spec)
        return f"cold {spec}"

    def allocate_id(self, spec: Any) -> None:
        spec.id = f"gw{len(self.allocated)}"
        self.allocated.append(spec)

    class remote_execmodel:
        backend = "main_thread_only"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, list[Any], list[bytes]]]:
    """A worker's socket: reads one hello per connection, answers the next queued byte."""
    path = str(tmp_path / "w.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    server.settimeout(10)
    hellos: list[Any] = []
    answers: list[bytes] = []

    def serve_one() -> None:
        conn, _ = server.accept()
        with conn:
            hello, fds = recv_hello(conn)
            hellos.append(hello)
            for fd in fds:
                socket.close(fd)
            conn.sendall(answers.pop(0))
            conn.recv(1)  # until the client closes

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    yield path, hellos, answers
    server.close()
    thread.join(10)


class TestEligible:
    @pytest.mark.parametrize(
        ("spec", "ok"),
        [
            ("popen", True),
            ("popen//dont_write_bytecode", True),
            ("popen//python=python3.12", False),
            ("popen//chdir=/tmp", False),
            ("popen//env:X=1", False),
            ("popen//nice=5", False),
            ("ssh=host", False),
        ],
    )
    def test_only_a_plain_local_popen_spec(self, spec, ok):
        """Another interpreter, directory, env, niceness or host needs a cold worker."""
        assert eligible(execnet.XSpec(spec)) is ok


class TestInstall:
    def test_ineligible_specs_keep_the_cold_path(self):
        """An ssh spec goes to the original makegateway; the slot stays unused."""
        group = FakeGroup()
        failures: list[Any] = []
        install(group, [WarmSlot("w-1", "/nowhere", "t")], on_failure=lambda *a: failures.append(a))
        assert group.makegateway("ssh=host").startswith("cold ")
        assert failures == []

    def test_a_slot_that_cannot_be_reached_falls_back_cold(self, tmp_path):
        """Each unreachable slot is reported, then the spec starts cold with its id."""
        group = FakeGroup()
        failures: list[tuple[str, str]] = []
        slots = [WarmSlot(f"w-{i}", str(tmp_path / f"w-{i}.sock"), "t") for i in range(2)]
        install(
            group,
            slots,
            on_failure=lambda slot, exc: failures.append((slot.id, type(exc).__name__)),
        )
        spec = execnet.XSpec("popen")
        assert group.makegateway(spec) == f"cold {spec}"
        assert failures == [("w-0", "FileNotFoundError"), ("w-1", "FileNotFoundError")]
        assert (spec.id, spec.execmodel) == ("gw0", "main_thread_only")

    def test_more_is_asked_only_after_the_initial_workers(self, tmp_path):
        """A mid-run spec (after more_after) asks more() for a slot; the first ones do not."""
        group = FakeGroup()
        asked: list[int] = []

        def more() -> WarmSlot | None:
            asked.append(1)
            return WarmSlot("w-late", str(tmp_path / "late.sock"), "t") if len(asked) == 1 else None

        failures: list[str] = []
        install(
            group,
            [],
            more=more,
            more_after=1,
            on_failure=lambda slot, exc: failures.append(slot.id),
        )
        group.makegateway("popen")
        assert asked == []
        group.makegateway("popen")
        group.makegateway("popen")
        assert (len(asked), failures, len(group.cold)) == (2, ["w-late"], 3)


class TestConnectWorker:
    def test_the_hello_carries_token_cwd_env_and_id(self, listener, tmp_path):
        """An accepted hand-off: the hello has what the worker needs; the socket stays open."""
        path, hellos, answers = listener
        answers.append(ACK)
        slot = WarmSlot("w-1", path, "tok", profile_key="p1")
        sock = connect_worker(slot, "gw3", env={"A": "1"}, cwd=str(tmp_path), stderr_fd=None)
        sock.close()
        [hello] = hellos
        assert (hello["token"], hello["cwd"], hello["env"], hello["id"], hello["profile"]) == (
            "tok",
            str(tmp_path),
            {"A": "1"},
            "gw3",
            "p1",
        )
        assert isinstance(hello["umask"], int)

    def test_an_unknown_answer_is_a_handoff_error(self, listener):
        """A worker that answers neither ACK nor a refusal: HandoffError naming it."""
        path, _, answers = listener
        answers.append(b"x")
        with pytest.raises(
            HandoffError, match=r"worker w-1 refused the hand-off \(answered b'x'\)"
        ):
            connect_worker(WarmSlot("w-1", path, "bad"), "gw0", env={}, cwd="/")

    def test_a_refusal_carries_the_workers_reason(self, listener):
        """A worker that cannot serve this run (its context) says why; the error quotes it."""
        path, _, answers = listener
        ours, theirs = socket.socketpair()
        with ours, theirs:
            send_refusal(ours, "PYTHONHASHSEED 1 is not this worker's 0")
            answers.append(theirs.recv(4096))
        with pytest.raises(
            HandoffError, match=r"worker w-1 refused this run: PYTHONHASHSEED 1 is not"
        ):
            connect_worker(WarmSlot("w-1", path, "tok"), "gw0", env={}, cwd="/")
