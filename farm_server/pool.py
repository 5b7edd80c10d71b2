"""The pool: warm workers per profile, claimed by runs, replaced at once, never orphaned.

States of a worker: ``warming`` (started, warm-up running) -> ``warm`` (ready, waiting
for a client) -> ``claimed`` (handed to a run; it serves one session and exits) ->
``gone``. A warming or warm worker may also go straight to ``gone`` (idle TTL, drain,
retired profile, crash).

Per profile the pool keeps ``min_warm`` workers warm or warming (at most ``max_warm``
unclaimed), within caps on live processes and concurrent warm-ups. One supervisor
thread starts and ends processes; claims and events only update state and wake it.
Replacements wait for spare CPU while a run is testing (:mod:`.warming_gate`); each
collects for a slot of the profile's last run no other prepares for (:mod:`.slots`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from farm_server.config import FarmConfig
from farm_server.entries import STATES, ClaimResult, ProfileEntry, Worker
from farm_server.procs import Launcher, stop_processes, sweep_orphans
from farm_server.slots import in_slots, next_slot
from farm_server.warming_gate import defer_reason, idle_cores
from farm_server.worker import WorkerSpec
from shadowfarm_wire.profile import Profile

__all__ = ["STATES", "ClaimResult", "Pool", "ProfileEntry", "Worker"]

log = logging.getLogger("shadowfarm.pool")

#: after this many workers of a profile die before getting warm, spawning backs off
FAILURES_BEFORE_BACKOFF = 3
MAX_BACKOFF_S = 300.0


class Pool:
    """Thread-safe bookkeeping plus the supervisor thread that acts on it."""

    def __init__(
        self,
        config: FarmConfig,
        launcher: Launcher,
        sockets: Path,
        *,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str, Any], None] = lambda kind, obj: None,
        idle: Callable[[], float] = idle_cores,
        cores: int | None = None,
        book: Any = None,
    ) -> None:
        self.config = config
        #: the forecast policies per profile (forecast.book.PolicyBook), used when
        #: config.forecast is on
        self.book = book
        self.launcher = launcher
        self.sockets = sockets
        self.clock = clock
        self.idle = idle
        self.cores = cores or os.cpu_count() or 1
        #: why warm-ups are waiting, while they are (shown by the status)
        self.deferred = ""
        idle()  # prime the CPU measure: its first reading says nothing
        #: when the CPU measure last restarted (a claim restarts it)
        self.measured_since = clock()
        self.on_change = on_change  # persistence hook: ("profile"|"worker", object)
        self.profiles: dict[str, ProfileEntry] = {}
        self.workers: dict[str, Worker] = {}
        #: profile -> xdist worker id -> a run's context (holds its environment: memory only)
        self.contexts: dict[str, dict[str, dict[str, Any]]] = {}
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.stopping = False
        self._thread: threading.Thread | None = None
        self.rejections = 0
        self.claims = 0
        self.requested = 0
        self.granted = 0

    # --- queries -----------------------------------------------------------------------

    def live(self, state: str | None = None, profile_key: str | None = None) -> list[Worker]:
        with self.lock:
            return [
                w
                for w in self.workers.values()
                if w.state != "gone"
                and (state is None or w.state == state)
                and (profile_key is None or w.profile_key == profile_key)
            ]

    def find_profiles(self, prefix: str) -> list[ProfileEntry]:
        """Profiles whose key starts with ``prefix`` ("all" or "" for every live one)."""
        with self.lock:
            entries = [p for p in self.profiles.values() if p.retired is None]
            if prefix in ("", "all"):
                return entries
            return [p for p in entries if p.key.startswith(prefix)]

    def target(self, entry: ProfileEntry, now: float) -> tuple[int, int]:
        """(min, max) unclaimed workers wanted now: 0 when retired, drained or idle."""
        if entry.retired is not None or entry.drained or entry.unfit:
            return (0, 0)
        high = self.config.default_max_warm if entry.max_warm is None else entry.max_warm
        if self.config.forecast and self.book is not None:
            # the forecast replaces both min_warm and the idle TTL (it drains quiet hours)
            # the forecast's target is the cap too: it scales in as well as out
            wanted = min(self.book.target(entry.key, now, entry.warmup_times), high)
            return (wanted, wanted)
        last = entry.last_claim if entry.last_claim is not None else entry.registered
        if now - last > self.config.idle_ttl_s:
            return (0, 0)
        low = self.config.default_min_warm if entry.min_warm is None else entry.min_warm
        high = self.config.default_max_warm if entry.max_warm is None else entry.max_warm
        return (min(low, high), high)

    # --- claims ------------------------------------------------------------------------

    def register(
        self,
        profile: Profile,
        shadow_tests: Iterable[str] = (),
        plugins: Iterable[str] | None = None,
    ) -> tuple[ProfileEntry, bool]:
        """The entry for ``profile`` (new: retires its lineage's old ones); ``plugins``: the
        claim's ``-p`` options, None keeps them."""
        now = self.clock()
        with self.lock:
            entry = self.profiles.get(profile.key)
            created = entry is None or entry.retired is not None
            if entry is None or entry.retired is not None:
                entry = ProfileEntry(profile, registered=now)
                self.profiles[profile.key] = entry
                old = [o for o in self.profiles.values() if o is not entry and o.retired is None]
                for other in old:
                    if other.profile.lineage == profile.lineage:
                        self._retire(other, now, f"replaced by profile {profile.key}")
            shadow = list(shadow_tests)[: self.config.max_shadow_tests]
            entry.shadow_tests = shadow or entry.shadow_tests  # none said: kept
            entry.plugins = entry.plugins if plugins is None else list(plugins)
            self.on_change("profile", entry)
            self.wake.notify_all()
            return entry, created

    def claim(
        self,
        profile: Profile,
        count: int,
        modules: Iterable[str] = (),
        shadow_tests: Iterable[str] = (),
        plugins: Iterable[str] | None = None,
    ) -> ClaimResult:
        """Hand out up to ``count`` warm workers of ``profile``, closest match first."""
        wanted = set(modules)
        now = self.clock()
        with self.lock:
            entry, created = self.register(profile, shadow_tests, plugins)
            entry.last_claim, entry.drained = now, False
            warm = [] if entry.unfit else self.live("warm", entry.key)
            warm.sort(key=lambda w: (-len(wanted & w.modules), w.ready or 0.0))
            chosen = in_slots(warm[:count])
            claim_id = "c-" + secrets.token_hex(6)
            for worker in chosen:
                worker.state, worker.claimed, worker.claim_id = "claimed", now, claim_id
                self.on_change("worker", worker)
            self.claims += 1
            self.requested += count
            self.granted += len(chosen)
            if self.book is not None:  # learns even while off, to be ready when switched on
                self.book.observe(entry.key, now, count, len(chosen))
            if chosen:  # from now on, idle cores are those the run leaves
                self.idle()
                self.measured_since = now
            self.wake.notify_all()  # replace them at once (unless the run needs the CPU)
            warming = len(self.live("warming", entry.key))
            return ClaimResult(claim_id, entry.key, created, chosen, warming)

    def unclaim(self, claim_id: str) -> int:
        """Give a claim's workers back, warm (its client left before the answer); how many."""
        with self.lock:
            back = [w for w in self.live("claimed") if w.claim_id == claim_id and not w.connected]
            for worker in back:
                worker.state, worker.claimed, worker.claim_id = "warm", None, None
                self.on_change("worker", worker)
            self.granted -= len(back)
            self.wake.notify_all()
            return len(back)

    def release(self, worker_id: str) -> Worker | None:
        """The run is done with ``worker_id``; it exits by itself, or is ended after a grace."""
        with self.lock:
            worker = self.workers.get(worker_id)
            if worker is None:
                return None
            if worker.released is None:
                worker.released = self.clock()
                self.on_change("worker", worker)
            self.wake.notify_all()
            return worker

    def drain(self, prefix: str = "all") -> list[str]:
        """Stop keeping the matching profiles warm; end their unclaimed workers."""
        with self.lock:
            entries = self.find_profiles(prefix)
            for entry in entries:
                entry.drained = True
                self.on_change("profile", entry)
            self.wake.notify_all()
            return [e.key for e in entries]

    def scale(self, prefix: str, min_warm: int | None, max_warm: int | None) -> list[str]:
        with self.lock:
            entries = self.find_profiles(prefix)
            for entry in entries:
                if min_warm is not None:
                    entry.min_warm = min_warm
                if max_warm is not None:
                    entry.max_warm = max_warm
                entry.drained = False
                self.on_change("profile", entry)
            self.wake.notify_all()
            return [e.key for e in entries]

    # --- worker events (from the follower threads) ------------------------------------

    def on_event(self, worker_id: str, event: dict[str, Any]) -> None:
        with self.lock:
            worker = self.workers.get(worker_id)
            if worker is None:
                return
            entry = self.profiles.get(worker.profile_key)
            name = event["event"]
            if name == "ready" and worker.state == "warming":
                worker.state = "warm"
                worker.ready = self.clock()
                worker.report = event.get("report") or {}
                worker.modules = frozenset(worker.report.get("modules", ()))
                worker.progress = None
                unfit = entry.took_ready(worker) if entry is not None else ""
                if unfit:
                    worker.state = "warming"  # never offered
                    self._end(worker, f"unfit: {unfit}")
            elif name == "progress" and worker.state == "warming":
                worker.progress = {
                    "step": str(event.get("step", "")),
                    "done": event.get("done"),
                    "total": event.get("total"),
                    "since": self.clock(),
                }
            elif name == "mismatch" and entry is not None:
                # The interpreter's distributions changed since the profile was registered:
                # this key can never be warmed again. The next run registers the new one.
                self._retire(entry, self.clock(), f"environment changed (now {event.get('found')})")
            elif name == "rejected":
                self.rejections += 1
                log.warning("worker %s rejected a connection: %s", worker_id, event.get("reason"))
            elif name == "claimed":
                worker.connected = self.clock()
            elif name == "context" and isinstance(event.get("context"), dict):
                context, known = event["context"], self.contexts.setdefault(worker.profile_key, {})
                known[str((context.get("workerinput") or {}).get("workerid", ""))] = context
                worker.collection = str(event.get("collection") or "")
            self.on_change("worker", worker)
            self.wake.notify_all()

    def on_exit(self, worker_id: str, returncode: int) -> None:
        with self.lock:
            worker = self.workers.get(worker_id)
            if worker is None or worker.state == "gone":
                return
            entry = self.profiles.get(worker.profile_key)
            if worker.state == "warming" and not worker.end_reason and entry is not None:
                # Died before getting warm: after a few in a row, back off exponentially
                # (an interpreter that no longer exists must not become a fork loop).
                entry.failures += 1
                if entry.failures >= FAILURES_BEFORE_BACKOFF:
                    entry.health = "broken"
                    exponent = entry.failures - FAILURES_BEFORE_BACKOFF
                    delay = min(5.0 * 2.0**exponent, MAX_BACKOFF_S)
                    entry.backoff_until = self.clock() + delay
            if not worker.end_reason:
                worker.end_reason = (
                    "served"
                    if worker.state == "claimed" and returncode == 0
                    else f"exited {returncode}"
                )
            self._gone(worker, returncode)
            self.wake.notify_all()

    # --- internals (lock held) ---------------------------------------------------------

    def _gone(self, worker: Worker, returncode: int | None = None) -> None:
        worker.state = "gone"
        worker.ended = self.clock()
        worker.returncode = returncode
        with contextlib.suppress(OSError):  # a killed worker could not remove it itself
            Path(worker.socket).unlink()
        self.on_change("worker", worker)

    def _retire(self, entry: ProfileEntry, now: float, reason: str) -> None:
        entry.retired = now
        log.info("profile %s retired: %s", entry.key, reason)
        self.on_change("profile", entry)

    def _spawn(self, entry: ProfileEntry) -> Worker:
        worker_id = "w-" + secrets.token_hex(4)
        worker = Worker(
            id=worker_id,
            profile_key=entry.key,
            token=secrets.token_urlsafe(32),
            socket=str(self.sockets / f"{worker_id}.sock"),
            spawned=self.clock(),
        )
        spec = WorkerSpec(
            id=worker.id,
            token=worker.token,
            socket=worker.socket,
            rootdir=entry.profile.rootdir,
            profile_key=entry.key,
            warm_modules=list(entry.profile.warm_modules),
            shadow_tests=entry.shadow_tests,
            plugins=list(entry.plugins),
            budget_s=self.config.shadow_budget_s,
            nice=self.config.warm_nice,
            context=self._context_for(entry, worker),
        )
        self.workers[worker.id] = worker
        try:
            worker.handle = self.launcher.launch(
                spec, entry.profile.interpreter, self.on_event, self.on_exit
            )
        except OSError as exc:
            worker.end_reason = f"could not start: {exc}"
            entry.failures += 1
            entry.backoff_until = self.clock() + min(5.0 * entry.failures, MAX_BACKOFF_S)
            self._gone(worker)
            return worker
        self.on_change("worker", worker)
        return worker

    def _context_for(self, entry: ProfileEntry, worker: Worker) -> dict[str, Any] | None:
        """A context of the profile's last run that no unclaimed worker prepares for yet."""
        known = self.contexts.get(entry.key, {})
        live = self.live(profile_key=entry.key)
        taken = {w.expects for w in live if w.state in ("warming", "warm") and not w.end_reason}
        worker.expects = next_slot(known, taken)
        return known.get(worker.expects)

    def _end(self, worker: Worker, reason: str) -> None:
        worker.end_reason = reason
        if worker.handle is not None and worker.handle.alive():
            worker.handle.terminate()  # follow() reports the exit
        else:
            self._gone(worker)

    # --- the supervisor ----------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass: end what must end, start what is missing (the supervisor's tick)."""
        now = self.clock()
        cfg = self.config
        with self.lock:
            for worker in self.live():
                entry = self.profiles.get(worker.profile_key)
                if worker.end_reason:
                    continue
                if worker.state in ("warming", "warm") and (
                    entry is None or self.target(entry, now)[1] == 0
                ):
                    self._end(worker, "not wanted (idle, drained or retired profile)")
                elif reason := worker.overdue(now, cfg.claim_timeout_s, cfg.release_grace_s):
                    self._end(worker, reason)
            self.deferred = self._defer_warming()
            for entry in self.profiles.values():
                low, high = self.target(entry, now)
                unclaimed = [
                    w
                    for w in self.live(profile_key=entry.key)
                    if w.state in ("warming", "warm") and not w.end_reason
                ]
                # Over the cap, the newest go first: those still warming are worth the
                # least (the replay simulator scales in the same way).
                for worker in sorted(unclaimed, key=lambda w: -w.spawned)[
                    : max(0, len(unclaimed) - high)
                ]:
                    self._end(worker, "over max_warm")
                missing = low - len(unclaimed)
                while missing > 0 and now >= entry.backoff_until and not self.deferred:
                    if (
                        len(self.live()) >= cfg.max_processes
                        or len(self.live("warming")) >= cfg.max_warming
                    ):
                        break
                    self._spawn(entry)
                    missing -= 1

    def _defer_warming(self) -> str:
        """Why no warm-up may start now ("": they may): a run is testing, no core spare."""
        testing = [w for w in self.live("claimed") if w.released is None and not w.end_reason]
        return defer_reason(
            testing=len(testing),
            cores=self.cores,
            spare=self.config.warm_spare_cores,
            measured_s=self.clock() - self.measured_since,
            idle=self.idle,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="shadowfarm-pool", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        while True:
            with self.lock:
                if self.stopping:
                    return
                try:
                    self.reconcile()
                    tracked = {
                        w.pid
                        for w in self.workers.values()
                        if w.pid is not None and w.state != "gone"
                    }
                except Exception:  # never let the supervisor die: log and go on
                    log.exception("pool reconcile failed")
                    tracked = None
                self.wake.wait(self.config.tick_s)
            if tracked is not None:
                sweep_orphans(tracked)

    def stop(self, timeout: float = 5.0) -> list[int]:
        """End every worker (claimed ones too) and the supervisor; return pids killed hard."""
        with self.lock:
            self.stopping = True
            self.wake.notify_all()
            handles = [w.handle for w in self.live() if w.handle is not None]
            for worker in self.live():
                worker.end_reason = worker.end_reason or "farm stopped"
        if self._thread is not None:
            self._thread.join(timeout)
        killed = stop_processes(handles, timeout)
        sweep_orphans(set())
        return killed
