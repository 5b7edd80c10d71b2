"""The host side of the Dask farm: what runs inside each Dask worker process.

:class:`ShadowfarmHost` is a ``WorkerPlugin`` (registered once on the scheduler, so it
reaches workers that join later too). On each Dask worker it

- keeps the run's code: a zip sent by the controller, unpacked once per content hash
  under the worker's ``local_directory`` (:func:`receive_tree`);
- hosts pytest workers: ``python -m farm_server.worker`` processes (the local farm's
  warm process: warm-up, purge, one authenticated session, exit), started with
  ``subprocess.Popen`` from the worker's event loop. Not in tasks: Dask reruns a lost
  task elsewhere and would start a worker nobody asked for; not with multiprocessing:
  nanny workers are daemonic. The warm process sets ``PR_SET_PDEATHSIG`` and watches its
  stdin pipe, so it does not outlive a killed Dask worker while it waits for a run;
  once in a session, the session's connection ending ends it;
- relays a session: the ``sf_pipe`` handler takes over a comm the controller opened
  with Dask's own connection arguments (TLS when Dask's security is), runs the
  challenge of :mod:`shadowfarm_wire.relay`, connects to the hosted worker's AF_UNIX
  socket with the local farm's hello (its token never leaves this host) and copies
  bytes both ways; pings are answered here, so a host that stops answering is noticed
  by the controller within seconds, not after Dask's ``worker-ttl``.

The functions called through ``Client.run`` take ``dask_worker`` and find the plugin on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from shadowfarm_wire.profile import current_profile, distributions_hash, installed_distributions
from shadowfarm_wire.protocol import read_answer, send_hello, unix_address
from shadowfarm_wire.relay import PIPE_OP, client_proof, host_proof, new_nonce, proofs_match

__all__ = [
    "PLUGIN_NAME",
    "ShadowfarmHost",
    "host_info",
    "receive_tree",
    "release_workers",
    "start_workers",
]

PLUGIN_NAME = "shadowfarm-host"
#: a hosted worker is ready (warmed up and listening) within this many seconds, or failed
READY_TIMEOUT_S = 120.0
#: the controller's answer to the challenge comes within this many seconds
ANSWER_TIMEOUT_S = 10.0
#: these describe the host, not the run: the controller's values would be wrong here
HOST_KEYS = frozenset(
    {
        "PATH",
        "HOME",
        "PWD",
        "OLDPWD",
        "TMPDIR",
        "TMP",
        "TEMP",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "USER",
        "LOGNAME",
        "SHELL",
        "HOSTNAME",
        "LD_LIBRARY_PATH",
        "DISPLAY",
    }
)
_TREES_KEPT = 4


@dataclass
class Hosted:
    """One pytest worker process this Dask worker hosts."""

    id: str
    proc: subprocess.Popen[bytes]
    token: str
    socket: str
    #: what a claim matches: the run's project, interpreter, installed set, warm imports
    profile_key: str
    #: the PYTHONHASHSEED it started with ("random": none); a run needs its own
    hashseed: str = "random"
    #: the run's secret, set when a run claims the worker (None: warm, unclaimed)
    secret: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    started_s: float = field(default_factory=time.monotonic)
    #: the profile the warm process computed for the tree it warmed up over (its hello
    #: must name it); "": the profile_key
    handoff_key: str = ""


class ShadowfarmHost(WorkerPlugin):
    """Hosts pytest workers and relays their sessions, on every Dask worker."""

    name = PLUGIN_NAME

    def __init__(self, keep_warm: int = 0) -> None:
        #: how many unclaimed warm workers to keep per profile once a run used the host
        self.keep_warm = keep_warm

    def setup(self, worker: Any) -> None:
        self.worker = worker
        self.base = Path(worker.local_directory) / "shadowfarm"
        for sub in ("", "trees", "sock", "tmp", "warm", "log"):
            (self.base / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.base / sub, 0o700)
        self.hosted: dict[str, Hosted] = {}
        #: (profile key, hash seed) -> how many workers its last claim asked of this host
        self.demand: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        worker.handlers[PIPE_OP] = self.pipe

    def teardown(self, worker: Any) -> None:
        worker.handlers.pop(PIPE_OP, None)
        for hosted in list(getattr(self, "hosted", {}).values()):
            _stop(hosted)

    # --- hosted workers -------------------------------------------------------------------

    def profile_key(self, warm_modules: list[str], project: str = "") -> str:
        """As the local farm's profile: the run's project (its rootdir on the controller,
        a name here), this interpreter and installed set, the warm imports."""
        return current_profile(project or str(self.base / "warm"), warm_modules).key

    def spawn(
        self, warm_modules: list[str], key: str, seed: str = "random", tree: Path | None = None
    ) -> Hosted:
        """A warm process. With ``tree`` (a shipped copy of the project) it warms up as the
        local farm's do: collects the project (its imports), runs the warm-up hook, then
        drops the project's modules; without, it only imports (a claim waits for it)."""
        wid = f"{self.worker.name}-{secrets.token_hex(4)}"
        token = secrets.token_hex(32)
        sock = str(self.base / "sock" / f"{secrets.token_hex(6)}.s")
        rootdir = str(tree or self.base / "warm")
        handoff_key = current_profile(rootdir, warm_modules).key
        spec = {
            "id": wid, "token": token, "socket": sock, "rootdir": rootdir,
            "profile_key": handoff_key, "warm_modules": list(warm_modules), "shadow_tests": [],
            "budget_s": 5.0, "nice": 0,
        }  # fmt: skip
        # Dask's workers run with PYTHONHASHSEED=6640 (its tokenizing needs one seed): a
        # pytest worker starts with the run's own, which is fixed when an interpreter starts.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
        if seed != "random":
            env["PYTHONHASHSEED"] = seed
        log = open(self.base / "log" / f"{wid}.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "farm_server.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                cwd=self.base / "warm", env=env, close_fds=True,
            )  # fmt: skip
        finally:
            log.close()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.flush()  # kept open: EOF on it tells an unclaimed worker we died
        hosted = Hosted(wid, proc, token, sock, key, seed, handoff_key=handoff_key)
        threading.Thread(target=_follow, args=(hosted,), daemon=True).start()
        with self.lock:
            self.hosted[wid] = hosted
        return hosted

    def claim(
        self,
        secret: str,
        count: int,
        warm_modules: list[str],
        seed: str = "random",
        project: str = "",
    ) -> list[dict[str, Any]]:
        """``count`` workers for a run: warm unclaimed ones first, new ones for the rest."""
        key = self.profile_key(warm_modules, project)
        out = []
        with self.lock:
            self._reap()
            idle = self._idle(key, seed)
            last = self.demand.get((key, seed), 0)
            self.demand[(key, seed)] = max(count, last) if self.keep_warm else 0
        for hosted in idle[:count]:
            hosted.secret = secret
            out.append({"id": hosted.id, "warm": hosted.ready.is_set()})
        for _ in range(count - len(out)):
            hosted = self.spawn(warm_modules, key, seed)
            hosted.secret = secret
            out.append({"id": hosted.id, "warm": False})
        return out

    def refill(
        self, key: str, warm_modules: list[str], seed: str = "random", tree: str = ""
    ) -> None:
        """Keep ``min(keep_warm, last demand)`` unclaimed workers of a profile warming,
        over the project's last shipped tree when this host has it."""
        want = min(self.keep_warm, self.demand.get((key, seed), 0))
        root = self.base / "trees" / tree / "tree0" if tree else None
        with self.lock:
            idle = len(self._idle(key, seed))
        for _ in range(want - idle):
            self.spawn(warm_modules, key, seed, root if root and root.is_dir() else None)

    def release(
        self,
        ids: list[str],
        warm_modules: list[str],
        seed: str = "random",
        project: str = "",
        tree: str = "",
    ) -> int:
        """Stop claimed workers a run did not use (used ones exit with their session),
        then warm the next run's workers: after the run, not during it, whose CPU they
        would take."""
        stopped = 0
        with self.lock:
            chosen = [self.hosted.pop(i) for i in ids if i in self.hosted]
        for hosted in chosen:
            stopped += _stop(hosted)
        self.refill(self.profile_key(warm_modules, project), warm_modules, seed, tree)
        return stopped

    def _idle(self, key: str, seed: str) -> list[Hosted]:
        """Unclaimed workers of a profile started with this hash seed (lock held)."""
        return [
            h
            for h in self.hosted.values()
            if h.secret is None and h.profile_key == key and h.hashseed == seed
        ]

    def _reap(self) -> None:
        for wid, hosted in list(self.hosted.items()):
            if hosted.proc.poll() is not None:
                del self.hosted[wid]

    # --- the relay ------------------------------------------------------------------------

    async def pipe(self, comm: Any, worker: str = "", nonce: str = "") -> None:
        """Own ``comm``: challenge, hand-off to the hosted worker, then copy bytes."""
        try:
            await self._pipe(comm, worker, nonce)
        finally:
            with contextlib.suppress(Exception):
                comm.abort()

    async def _pipe(self, comm: Any, wid: str, nonce: str) -> None:
        hosted = self.hosted.get(wid)
        if hosted is None or hosted.secret is None or not nonce:
            await comm.write({"error": f"no claimed worker {wid!r} on this host"})
            return
        ours = new_nonce()
        await comm.write({"nonce": ours, "proof": host_proof(hosted.secret, wid, nonce, ours)})
        answer = await asyncio.wait_for(comm.read(), ANSWER_TIMEOUT_S)
        expected = client_proof(hosted.secret, wid, nonce, ours)
        if not isinstance(answer, dict) or not proofs_match(expected, answer.get("proof")):
            return  # not the run that claimed this worker: nothing more is said
        ready = await asyncio.to_thread(hosted.ready.wait, READY_TIMEOUT_S)
        if not ready or hosted.error:
            await comm.write({"error": f"worker {wid} did not start: {hosted.error or 'timeout'}"})
            return
        hello = dict(answer.get("hello") or {})
        env = {k: v for k, v in dict(hello.get("env") or {}).items() if k not in HOST_KEYS}
        hello["env"] = {**{k: os.environ[k] for k in HOST_KEYS if k in os.environ}, **env}
        hello.update(token=hosted.token, profile=hosted.handoff_key or hosted.profile_key)
        try:
            sock = await asyncio.to_thread(_connect, hosted.socket, hello)
        except OSError as exc:  # the worker's refusal says why: the controller warns with it
            await comm.write({"error": str(exc)})
            return
        with self.lock:
            self.hosted.pop(wid, None)  # in a session now: it ends with the connection
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        await comm.write({"ok": True, "host": socket.gethostname()})
        lock = asyncio.Lock()

        async def upstream() -> None:  # controller -> worker
            while True:
                msg = await comm.read()
                if "d" in msg:
                    writer.write(msg["d"])
                    await writer.drain()
                elif "p" in msg:
                    async with lock:
                        await comm.write({"p": msg["p"]})
                elif "eof" in msg:
                    with contextlib.suppress(OSError):
                        writer.write_eof()

        async def downstream() -> None:  # worker -> controller
            while data := await reader.read(1 << 16):
                async with lock:
                    await comm.write({"d": data})

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            writer.close()


def _connect(path: str, hello: dict[str, Any]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10)
        with unix_address(path) as address:
            sock.connect(address)
        send_hello(sock, hello)  # no stderr descriptor: it cannot cross hosts
        read_answer(sock, path)  # HandoffError (an OSError) with the worker's reason
        sock.settimeout(None)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _follow(hosted: Hosted) -> None:
    """Read the warm process's status lines: ready, or why not."""
    assert hosted.proc.stdout is not None
    for line in hosted.proc.stdout:
        with contextlib.suppress(ValueError):
            event = json.loads(line).get("event")
            if event == "ready":
                hosted.ready.set()
            elif event == "mismatch":
                hosted.error = f"profile mismatch: {line.decode().strip()}"
    if not hosted.ready.is_set():
        hosted.error = hosted.error or f"exited with {hosted.proc.wait()}"
        hosted.ready.set()


def _stop(hosted: Hosted) -> int:
    if hosted.proc.poll() is not None:
        return 0
    hosted.proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        hosted.proc.wait(5)
    return 1


def _plugin(dask_worker: Any) -> ShadowfarmHost:
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is None:
        msg = f"Dask worker {dask_worker.address}: the {PLUGIN_NAME} plugin is not set up"
        raise RuntimeError(msg)
    return plugin


# --- called through Client.run (which passes ``dask_worker`` by keyword) -----------------


def host_info(dask_worker: Any = None) -> dict[str, Any]:
    """What the controller compares and needs: versions, paths, trees already here."""
    plugin = _plugin(dask_worker)
    trees = sorted(p.name for p in (plugin.base / "trees").iterdir() if p.is_dir())
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "distributions_hash": distributions_hash(installed_distributions()),
        "sys_path": list(sys.path),
        "base": str(plugin.base),
        "trees": trees,
    }


def receive_tree(digest: str, data: bytes, dask_worker: Any = None) -> str:
    """Unpack a shipped tree under this worker's directory (atomically); its path."""
    trees = _plugin(dask_worker).base / "trees"
    target = trees / digest
    if target.is_dir():
        return str(target)
    tmp = trees / f".{digest}.{secrets.token_hex(4)}"
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            dest = (tmp / info.filename).resolve()
            if tmp.resolve() not in dest.parents:
                msg = f"shipped tree {digest}: entry {info.filename!r} leaves the tree"
                raise ValueError(msg)
            archive.extract(info, tmp)
            os.chmod(dest, (info.external_attr >> 16) & 0o777 or 0o644)
    try:
        tmp.rename(target)
    except OSError:  # another run unpacked it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    # Old trees go (oldest first): a host serves many revisions over a day.
    old = sorted((p for p in trees.iterdir() if p.is_dir() and not p.name.startswith(".")),
                 key=lambda p: p.stat().st_mtime)  # fmt: skip
    for path in old[:-_TREES_KEPT]:
        if path != target:
            shutil.rmtree(path, ignore_errors=True)
    return str(target)


def start_workers(
    secret: str,
    counts: dict[str, int],
    warm_modules: list[str],
    seed: str = "random",
    project: str = "",
    dask_worker: Any = None,
) -> list[dict[str, Any]]:
    """This Dask worker's share of a claim (``counts``: Dask worker address -> workers)."""
    count = counts.get(dask_worker.address, 0)
    return _plugin(dask_worker).claim(secret, count, warm_modules, seed, project)


def release_workers(
    ids: dict[str, list[str]],
    warm_modules: list[str],
    seed: str = "random",
    project: str = "",
    tree: str = "",
    dask_worker: Any = None,
) -> int:
    """Give back this Dask worker's unused claimed workers (``ids`` by its address), then
    warm the next run's over the shipped ``tree`` (a content hash)."""
    mine = ids.get(dask_worker.address, [])
    return _plugin(dask_worker).release(mine, warm_modules, seed, project, tree)
