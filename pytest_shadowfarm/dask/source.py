"""The Dask cluster as a :class:`~pytest_shadowfarm.workers.source.WorkerSource`.

``reserve`` connects a ``distributed.Client`` to the scheduler, makes sure every Dask
worker runs the host plugin (:mod:`pytest_shadowfarm.dask.host`), compares each host's
Python version and installed distributions with the controller's (a host that differs
is refused with the difference), ships the project (:mod:`~pytest_shadowfarm.dask.ship`;
a host that has the tree's hash is not sent it again) and claims one hosted worker per
xdist worker, spread over the accepted Dask workers. The gateway install
(:mod:`~pytest_shadowfarm.dask.gateway`) then connects each xdist worker through a
relay (:mod:`~pytest_shadowfarm.dask.pipe`). A worker xdist or the swarm starts later (a
replacement after a crash, say) is claimed then, on a Dask worker that is still alive.

A cluster that cannot be reached or refuses every host costs a warning: the run goes on
with cold local workers. Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_shadowfarm.dask.gateway import PathMap
from pytest_shadowfarm.workers.source import PopenSource, PutEvent
from shadowfarm_wire.context import hashseed
from shadowfarm_wire.endings import MaxAge
from shadowfarm_wire.relay import EngineURL

if TYPE_CHECKING:
    from pytest_shadowfarm.dask.pipe import RelayLoop
    from pytest_shadowfarm.dask.ship import Bundle
    from pytest_shadowfarm.run import Run

__all__ = ["DaskSource", "HostSlot", "environment_problem"]

#: unclaimed warm workers a host keeps per profile after a run (at most its last demand)
KEEP_WARM = 4
CONNECT_TIMEOUT_S = 15.0
#: a call on the Dask workers (check, ship, claim) answers within this or is given up:
#: ``Client.run`` waits forever on a worker that is cut off but not yet dropped
RUN_TIMEOUT_S = 60.0


@dataclass
class HostSlot:
    """One hosted worker claimed for this run."""

    id: str
    address: str
    host: str
    warm: bool
    paths: PathMap
    used: bool = False


def environment_problem(info: Mapping[str, Any], ours: Mapping[str, str]) -> str:
    """Why a host cannot run this project's tests ("" if it can)."""
    for key, what in (("python_version", "Python"), ("distributions_hash", "installed set")):
        if info.get(key) != ours[key]:
            return f"{what} {info.get(key)} differs from the controller's {ours[key]}"
    return ""


class DaskSource:
    """Workers hosted on a Dask cluster's workers; cold local ones for what it cannot give."""

    name = "dask"

    def __init__(
        self, run: Run, rootdir: Path, engine: EngineURL, pythonpath: Sequence[Path] = ()
    ) -> None:
        self.run = run
        self.rootdir = rootdir
        self.engine = engine
        self.pythonpath = list(pythonpath)
        self.local = PopenSource()
        self.client: Any = None
        self.relay: RelayLoop | None = None
        self.connection_args: dict[str, Any] = {}
        self.secret = secrets.token_hex(32)
        self.hosts: dict[str, dict[str, Any]] = {}  # Dask worker address -> host_info
        self.bundle: Bundle | None = None
        self.free: list[HostSlot] = []
        self.claimed: list[HostSlot] = []
        #: xdist gateway id -> the slot it runs on
        self.gateways: dict[str, HostSlot] = {}
        self.header: str | None = None
        self.timings: dict[str, float] = {}
        #: Dask workers under a lost gateway: never asked again in this run (a silent
        #: host stays in the scheduler's list until worker-ttl; a call to it would hang)
        self.suspect: set[str] = set()
        #: bytes each way over the relays of this run (host -> controller, controller -> host)
        self.relays: list[Any] = []
        self._next = itertools.count()

    # --- the WorkerSource seam ------------------------------------------------------------

    def reserve(self, count: int) -> int:
        if count == 0:
            return 0
        started = time.perf_counter()
        try:
            self._connect()
            accepted = self._check_hosts()
            if not accepted:
                msg = "no Dask worker can run this project (see the warnings above)"
                raise RuntimeError(msg)
            self._ship(accepted)
            slots = self._claim(accepted, count)
        except Exception as exc:
            self.run.warn(f"{self.engine.url} not used, workers start cold: {exc}")
            self.header = f"shadowfarm: {self.engine.url} unavailable; {count} cold workers"
            self.close()
            return 0
        self.free = list(slots)
        warm = sum(s.warm for s in slots)
        hosts = len({s.host for s in slots})
        workers = len({s.address for s in slots})
        kinds = f"{warm} warm" if warm == len(slots) else f"{warm} warm, {len(slots) - warm} cold"
        self.header = (
            f"shadowfarm: {len(slots)} workers on {self.engine.url}: {kinds} on {hosts} "
            f"host{'s' if hosts != 1 else ''} ({workers} Dask worker{'s' if workers != 1 else ''})"
        )
        self.timings["reserve_s"] = time.perf_counter() - started
        self.run.events.emit(
            "farm_claim", claim=self.secret[:8], profile=self.engine.url, requested=count,
            granted=len(slots), seconds=round(self.timings["reserve_s"], 6),
        )  # fmt: skip
        return len(slots)

    def start(self, nodemanager: Any, putevent: PutEvent) -> Any:
        # The gateway install serves this start with a slot (connect below).
        return self.local.start(nodemanager, putevent)

    def can_start(self, specs: Any) -> bool:
        return self.local.can_start(specs)

    def release(self, worker_id: str) -> None:
        """A used worker ends with its session; nothing to give back."""

    def max_age(self) -> MaxAge:
        """The cluster keeps no endings per profile (yet): no limit."""
        return MaxAge()

    def lost(self, worker_id: str, error: object) -> None:
        slot = self.gateways.get(worker_id)
        if slot is not None:
            self.suspect.add(slot.address)
            self.run.events.emit(
                "dask_worker_lost", worker=worker_id, host=slot.host, dask=slot.address,
                error=str(error)[:200],
            )  # fmt: skip

    # --- the gateway install's callback ---------------------------------------------------

    def connect(self, spec: Any, execmodel: Any) -> tuple[Any, PathMap, dict[str, Any]] | None:
        """The relay for a new xdist worker (None: start it cold and local)."""
        from pytest_shadowfarm.dask.pipe import RelayError, open_relay

        if self.client is None or self.relay is None:
            return None
        for _ in range(4):
            slot = self.free.pop(0) if self.free else self._claim_more()
            if slot is None:
                return None
            paths = slot.paths
            hello = {
                "cwd": paths.cwd(os.getcwd()),
                "env": dict(os.environ),
                "umask": _umask(),
                "id": str(spec.id),
            }
            try:
                io = open_relay(
                    self.relay, slot.address, self.connection_args, slot.id, self.secret,
                    hello, execmodel,
                )  # fmt: skip
            except (RelayError, OSError, TimeoutError) as exc:
                self.run.warn(f"{self.engine.url}: worker {slot.id} not handed over ({exc})")
                continue
            slot.used = True
            self.gateways[str(spec.id)] = slot
            self.relays.append(io)
            return io, paths, {"warm": slot.warm, "engine": "dask", "host": slot.host}
        return None

    # --- inside ---------------------------------------------------------------------------

    def _connect(self) -> None:
        from distributed import Client
        from distributed.security import Security

        from pytest_shadowfarm.dask.host import PLUGIN_NAME, ShadowfarmHost
        from pytest_shadowfarm.dask.pipe import RelayLoop

        security = Security()  # Dask's config: distributed.comm.tls.* / DASK_DISTRIBUTED__...
        if self.engine.tls and not getattr(security, "tls_ca_file", None):
            msg = (
                f"{self.engine.url} needs TLS settings: set distributed.comm.tls.ca-file and "
                "distributed.comm.tls.client.cert/key in Dask's config (or "
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ...)"
            )
            raise RuntimeError(msg)
        self.connection_args = security.get_connection_args("client")
        self.client = Client(
            self.engine.address, security=security, timeout=CONNECT_TIMEOUT_S,
            set_as_default=False,
        )  # fmt: skip
        present = self.client.run_on_scheduler(_has_plugin, PLUGIN_NAME)
        if not present:  # registering again would tear down the hosts' warm workers
            self.client.register_plugin(ShadowfarmHost(KEEP_WARM), name=PLUGIN_NAME)
        self.relay = RelayLoop()

    def _check_hosts(self, workers: list[str] | None = None) -> list[str]:
        from pytest_shadowfarm.dask.host import host_info
        from shadowfarm_wire.profile import distributions_hash, installed_distributions

        ours = {
            "python_version": ".".join(map(str, sys.version_info[:3])),
            "distributions_hash": distributions_hash(installed_distributions()),
        }
        answers = self._run(host_info, workers=workers, on_error="return")
        accepted = []
        for address, info in sorted(answers.items()):
            if isinstance(info, BaseException):
                self.run.warn(f"{self.engine.url}: Dask worker {address} not used: {info}")
                continue
            problem = environment_problem(info, ours)
            if problem:
                self.run.warn(
                    f"{self.engine.url}: host {info.get('host')} (Dask worker {address}) "
                    f"refused: {problem}; install the same Python and distributions there"
                )
                continue
            self.hosts[address] = info
            accepted.append(address)
        return accepted

    def _ship(self, addresses: list[str]) -> None:
        """Send the tree to the Dask workers that lack it (by its content hash)."""
        from pytest_shadowfarm.dask.host import receive_tree
        from pytest_shadowfarm.dask.ship import bundle

        started = time.perf_counter()
        if self.bundle is None:
            self.bundle = bundle(self.rootdir, self.pythonpath)
        self.timings["bundle_s"] = time.perf_counter() - started
        lacking = [a for a in addresses if self.bundle.digest not in self.hosts[a]["trees"]]
        if lacking:
            self._run(receive_tree, self.bundle.digest, self.bundle.data, workers=lacking)
        for address in addresses:
            self.hosts[address]["trees"].append(self.bundle.digest)
        self.timings["ship_s"] = time.perf_counter() - started
        self.timings["shipped_to"] = len(lacking)

    def _paths(self, address: str) -> PathMap:
        assert self.bundle is not None
        info = self.hosts[address]
        tree = os.path.join(info["base"], "trees", self.bundle.digest)
        pairs = [(root, os.path.join(tree, f"tree{i}")) for i, root in enumerate(self.bundle.roots)]
        pairs.sort(key=lambda pair: -len(pair[0]))
        host_path = tuple(p for p in info["sys_path"] if p and os.path.isabs(p))
        return PathMap(tuple(pairs), host_path, os.path.join(info["base"], "tmp"))

    def _claim(self, addresses: list[str], count: int) -> list[HostSlot]:
        from pytest_shadowfarm.dask.host import start_workers

        share = {a: 0 for a in addresses}
        for i in range(count):
            share[addresses[i % len(addresses)]] += 1
        share = {a: n for a, n in share.items() if n}
        # One Client.run for every host (each takes its own share): one round trip, the
        # hosts start their workers at the same time, not one host after another.
        answers = self._run(
            start_workers, self.secret, share, list(self.run.settings.warm_imports),
            hashseed(os.environ), str(self.rootdir), workers=list(share),
        )  # fmt: skip
        slots: list[HostSlot] = []
        for address in share:
            got = answers[address]
            host = self.hosts[address]["host"]
            paths = self._paths(address)
            slots += [HostSlot(w["id"], address, host, bool(w["warm"]), paths) for w in got]
        self.claimed += slots
        # Interleaved: gw0 on the first Dask worker, gw1 on the second, ...
        return _interleave(slots)

    def _claim_more(self) -> HostSlot | None:
        """One more worker, on the live Dask worker that runs the fewest of ours."""
        if self.bundle is None:
            return None
        try:
            live = set(self.client.scheduler_info(n_workers=-1)["workers"])
        except Exception:
            return None
        load = {a: 0 for a in live - self.suspect}
        for slot in self.gateways.values():
            if slot.address in load:
                load[slot.address] += 1
        for address in sorted(load, key=lambda a: (load[a], a)):
            try:
                if address not in self.hosts:
                    if not self._check_one(address):
                        continue
                    self._ship([address])
                slots = self._claim([address], 1)
            except Exception as exc:  # that worker died too, or refused: try the next
                self.run.warn(f"{self.engine.url}: Dask worker {address} not used ({exc})")
                continue
            if slots:
                return slots[0]
        return None

    def _check_one(self, address: str) -> bool:
        """The start's environment check, for a Dask worker that joined since."""
        return address in self._check_hosts([address])

    def traffic(self) -> dict[str, int]:
        """Bytes the relays carried so far: what the controller's fan-in costs on the wire."""
        return {
            "relays": len(self.relays),
            "bytes_in": sum(io.bytes_in for io in self.relays),
            "bytes_out": sum(io.bytes_out for io in self.relays),
        }

    def release_all(self) -> None:
        """Give back the claimed workers no gateway used; the hosts warm the next ones."""
        from pytest_shadowfarm.dask.host import release_workers

        if self.client is None:
            return
        unused: dict[str, list[str]] = {a: [] for a in self.hosts if a not in self.suspect}
        for slot in self.claimed:
            if not slot.used and slot.address in unused:
                unused[slot.address].append(slot.id)
        if not unused:
            return
        tree = self.bundle.digest if self.bundle is not None else ""
        with contextlib.suppress(Exception):  # a host that died meanwhile answers an error
            self._run(
                release_workers, unused, list(self.run.settings.warm_imports),
                hashseed(os.environ), str(self.rootdir), tree, workers=list(unused),
                on_error="return",
            )  # fmt: skip

    def _run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``Client.run`` with a bound on the wait (its private coroutine takes one)."""
        client = self.client
        return client.sync(client._run, function, *args, callback_timeout=RUN_TIMEOUT_S, **kwargs)

    def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=5)
            self.client = None


def _interleave(slots: list[HostSlot]) -> list[HostSlot]:
    by_address: dict[str, list[HostSlot]] = {}
    for slot in slots:
        by_address.setdefault(slot.address, []).append(slot)
    rows = itertools.zip_longest(*by_address.values())
    return [slot for row in rows for slot in row if slot is not None]


def _has_plugin(name: str, dask_scheduler: Any = None) -> bool:
    return name in dask_scheduler.worker_plugins


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
