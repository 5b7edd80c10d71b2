"""Controller side of the warm hand-off: a claimed farm worker becomes an xdist gateway.

xdist creates each worker with ``nm.group.makegateway(spec)``. For ``popen`` specs we
shadow that method on the group *instance* (no xdist subclassing): a spec with a claimed
warm worker is connected to that worker's socket, authenticated with its one-time token,
given our cwd/environment/umask/stderr, and wrapped in ``execnet.Gateway`` the way
``Group.makegateway`` does (``group._register``). The spec stays ``popen``, so xdist
keeps popen semantics: no rsync (xdist#1081), our ``sys.path``, a basetemp of its own.
Any failure falls back to the original cold ``makegateway`` for that spec.

Uses execnet internals (``Gateway(io, spec)``, ``Group._register``): callers check
``compat.check_internals()`` first.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shadowfarm_wire.context import process_context
from shadowfarm_wire.protocol import UnixIO, read_answer, send_hello, unix_address
from shadowfarm_wire.trust import check_peer

__all__ = [
    "HANDOFF_TIMEOUT_S",
    "WarmSlot",
    "connect_worker",
    "eligible",
    "eligible_specs",
    "install",
    "make_gateway",
]

#: connecting and authenticating a warm worker takes milliseconds; this bounds a stuck one
HANDOFF_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WarmSlot:
    """One claimed worker: where it listens and the token that opens it."""

    id: str
    socket: str
    token: str
    profile_key: str | None = None
    modules: tuple[str, ...] = field(default_factory=tuple)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def connect_worker(
    slot: WarmSlot,
    session_id: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stderr_fd: int | None = 2,
    timeout: float = HANDOFF_TIMEOUT_S,
) -> socket.socket:
    """An authenticated socket to ``slot``'s worker, ready for execnet; OSError if not."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        with unix_address(slot.socket) as address:
            sock.connect(address)
        # Nothing (environment, stderr) goes to a process of another user, whatever the
        # socket's path: the kernel says who listens.
        check_peer(sock)
        hello = {
            "token": slot.token,
            "cwd": cwd if cwd is not None else os.getcwd(),
            "env": dict(os.environ if env is None else env),
            "umask": _umask(),
            "id": session_id,
            "profile": slot.profile_key,
            **process_context(),
        }
        send_hello(sock, hello, [stderr_fd] if stderr_fd is not None else [])
        read_answer(sock, slot.id)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return sock


def make_gateway(group: Any, spec: Any, sock: socket.socket) -> Any:
    """Register an execnet gateway over ``sock`` in ``group``, as Group.makegateway would."""
    from execnet.gateway import Gateway

    io = UnixIO(sock, group.execmodel, remoteaddress=str(sock.getpeername()))
    gateway = Gateway(io, spec)
    gateway.spec = spec
    group._register(gateway)
    # read by SessionWriter.pytest_testnodeready (the run report's workers[].warm)
    gateway.shadowfarm_warm = True  # type: ignore[attr-defined]
    return gateway


def eligible(spec: Any) -> bool:
    """A plain local popen spec: the only kind a warm worker can stand in for."""
    return bool(
        getattr(spec, "popen", False)
        and not (spec.python or spec.chdir or spec.via or spec.nice or spec.env)
    )


def eligible_specs(config: Any) -> int:
    """How many of this run's xdist workers a warm worker could stand in for."""
    import execnet
    import pytest
    from xdist.workermanage import parse_tx_spec_config

    try:
        specs = parse_tx_spec_config(config)
    except pytest.UsageError:
        return 0
    return sum(1 for spec in specs if eligible(execnet.XSpec(spec)))


def install(
    group: Any,
    slots: list[WarmSlot],
    *,
    on_warm: Callable[[Any, WarmSlot], None] = lambda gw, slot: None,
    on_failure: Callable[[WarmSlot, BaseException], None] = lambda slot, exc: None,
    more: Callable[[], WarmSlot | None] | None = None,
    more_after: int = 0,
    connect: Callable[[WarmSlot, str], socket.socket] | None = None,
) -> None:
    """Make ``group.makegateway`` hand ``slots`` out (in order) to eligible popen specs.

    Once ``more_after`` eligible specs were served (the run's initial workers), a spec
    for which no slot is left asks ``more()`` for one (a worker the swarm adds mid-run).
    Other specs, and specs no slot could serve, keep the original (cold) path.
    ``connect(slot, session_id)`` gives the authenticated socket of a slot (default:
    :func:`connect_worker`; the farm source hands out sockets it connected and checked
    before the run's header was written).
    """
    import execnet

    original = group.makegateway
    free = list(slots)
    served = 0

    def makegateway(spec: Any = None) -> Any:
        nonlocal served
        if isinstance(spec, str):
            spec = execnet.XSpec(spec)
        if not (isinstance(spec, execnet.XSpec) and eligible(spec)):
            return original(spec)
        served += 1
        if not free and more is not None and served > more_after:
            extra = more()
            if extra is not None:
                free.append(extra)
        if free:
            group.allocate_id(spec)
            if spec.execmodel is None:
                spec.execmodel = group.remote_execmodel.backend
        while free:
            slot = free.pop(0)
            try:
                sock = (connect or connect_worker)(slot, str(spec.id))
                gateway = make_gateway(group, spec, sock)
            except (OSError, EOFError) as exc:
                on_failure(slot, exc)
                continue
            on_warm(gateway, slot)
            return gateway
        return original(spec)

    group.makegateway = makegateway  # instance attribute shadows Group.makegateway
