"""Controller side of the relay: a Dask comm that execnet can use as a gateway's IO.

execnet reads and writes its gateway IO from plain threads, blocking; a Dask comm is
asyncio. :class:`RelayLoop` runs one event loop in a thread for the run;
:class:`RelayIO` (execnet's IO interface, like ``gateway_socket.SocketIO``) feeds the
bytes the host sends into a buffer that ``read`` blocks on, and sends ``write``'s
bytes through that loop.

A dead relay must look like a crashed gateway: EOF on ``read``, which is what execnet's
receiver and then xdist's crash handling (and the scheduler's rerun of the test in
flight) act on. A closed comm gives that at once. A host that is cut off says
nothing, and Dask drops a silent worker only after ``worker-ttl`` (5 minutes by
default): so the relay pings an idle host every :data:`~shadowfarm_wire.relay.HEARTBEAT_S`
and ends itself after :data:`~shadowfarm_wire.relay.SILENT_S` without a byte from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from shadowfarm_wire.relay import (
    HEARTBEAT_S,
    PIPE_OP,
    SILENT_S,
    client_proof,
    host_proof,
    new_nonce,
    proofs_match,
)

__all__ = ["RelayError", "RelayIO", "RelayLoop", "open_relay"]

T = TypeVar("T")
#: opening a relay (connect, challenge, the hosted worker getting ready) takes this long at most
OPEN_TIMEOUT_S = 150.0


class RelayError(OSError):
    """The relay could not be opened (the host said why, or did not prove itself)."""


class RelayLoop:
    """One asyncio loop in a daemon thread for all of a run's relays."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="shadowfarm-relay", daemon=True
        )
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class RelayIO:
    """execnet's gateway IO over a relay comm (blocking ``read``/``write`` from any thread)."""

    def __init__(self, relay: RelayLoop, comm: Any, remoteaddress: str, execmodel: Any) -> None:
        self.relay = relay
        self.comm = comm
        self.remoteaddress = remoteaddress
        self.execmodel = execmodel
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        #: why the relay ended ("" while it is up)
        self.ended = ""
        self.last_heard = time.monotonic()
        self._lock = asyncio.Lock()
        self.bytes_in = self.bytes_out = 0
        relay.loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._receive()),
            asyncio.ensure_future(self._heartbeat()),
        ]

    async def _receive(self) -> None:
        try:
            while True:
                msg = await self.comm.read()
                self.last_heard = time.monotonic()
                if "d" in msg:
                    with self._cond:
                        self._buffer += msg["d"]
                        self.bytes_in += len(msg["d"])
                        self._cond.notify_all()
        except Exception as exc:  # CommClosedError and anything else: the relay is gone
            self._end(f"connection to the host lost ({type(exc).__name__})")

    async def _heartbeat(self) -> None:
        with contextlib.suppress(Exception):
            while not self._closed:
                await asyncio.sleep(HEARTBEAT_S / 2)
                silent = time.monotonic() - self.last_heard
                if silent > SILENT_S:
                    self._end(f"host silent for {silent:.0f} s")
                    return
                if silent > HEARTBEAT_S:
                    async with self._lock:
                        await self.comm.write({"p": time.time()})

    def _end(self, reason: str) -> None:
        with self._cond:
            if not self.ended:
                self.ended = reason
            self._closed = True
            self._cond.notify_all()
        if not self.comm.closed():
            self.comm.abort()

    # --- execnet's IO interface -----------------------------------------------------------

    def read(self, numbytes: int) -> bytes:
        with self._cond:
            while len(self._buffer) < numbytes and not self._closed:
                self._cond.wait()
            if len(self._buffer) < numbytes:
                raise EOFError(f"relay to {self.remoteaddress} ended: {self.ended}")
            data = bytes(self._buffer[:numbytes])
            del self._buffer[:numbytes]
            return data

    def write(self, data: bytes) -> None:
        if self._closed:
            raise OSError(f"relay to {self.remoteaddress} ended: {self.ended}")
        self.bytes_out += len(data)
        try:
            self.relay.call(self._write({"d": bytes(data)}), timeout=SILENT_S * 3)
        except Exception as exc:
            self._end(f"write failed ({type(exc).__name__})")
            raise OSError(f"relay to {self.remoteaddress} ended: {self.ended}") from None

    async def _write(self, msg: Mapping[str, Any]) -> None:
        async with self._lock:
            await self.comm.write(dict(msg))

    def close_read(self) -> None:
        self.close()

    def close_write(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed:
                self.relay.call(self._write({"eof": True}), timeout=5)

    def wait(self) -> None:
        self.close()

    def kill(self) -> None:
        self.close()

    def close(self) -> None:
        if self.relay.loop.is_running():
            self.relay.loop.call_soon_threadsafe(self._end, "closed by the controller")
        else:
            self._closed = True


async def _open(
    address: str, connection_args: Mapping[str, Any], worker: str, secret: str,
    hello: Mapping[str, Any],
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    from distributed.comm import connect

    comm = await connect(address, timeout=10, **connection_args)
    try:
        ours = new_nonce()
        await comm.write({"op": PIPE_OP, "reply": False, "worker": worker, "nonce": ours})
        answer = await asyncio.wait_for(comm.read(), 30)
        if not isinstance(answer, dict) or "error" in answer:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise RelayError(f"Dask worker {address}: {error}")
        theirs = str(answer.get("nonce", ""))
        if not proofs_match(host_proof(secret, worker, ours, theirs), answer.get("proof")):
            msg = f"Dask worker {address} did not prove it hosts worker {worker}; not used"
            raise RelayError(msg)
        proof = client_proof(secret, worker, ours, theirs)
        await comm.write({"proof": proof, "hello": dict(hello)})
        done = await asyncio.wait_for(comm.read(), OPEN_TIMEOUT_S)
        if not isinstance(done, dict) or not done.get("ok"):
            error = done.get("error") if isinstance(done, dict) else done
            raise RelayError(f"Dask worker {address}: worker {worker} not handed over: {error}")
        return comm, done
    except BaseException:
        comm.abort()
        raise


def open_relay(
    relay: RelayLoop,
    address: str,
    connection_args: Mapping[str, Any],
    worker: str,
    secret: str,
    hello: Mapping[str, Any],
    execmodel: Any,
) -> RelayIO:
    """An authenticated relay to ``worker`` on the Dask worker at ``address``."""
    comm, _ = relay.call(
        _open(address, connection_args, worker, secret, hello), timeout=OPEN_TIMEOUT_S + 15
    )
    return RelayIO(relay, comm, f"{address}/{worker}", execmodel)
