"""Run telemetry and scaling events to the farm (``POST /api/swarm/telemetry``), off-thread.

When the run uses a farm (the farm plugin holds a client), the controller hands a
snapshot to :class:`FarmTelemetry` every couple of seconds and at the end: one ``run``
record (worker count, worker-seconds, range/budget/target), one ``worker`` record per
live worker (its newest sample) and the scaling events since the last post. A thread
posts them: an HTTP request (up to the client's 2 s timeout) must never stall xdist's
main loop. The first failure ends the posting for the run with one warning; the run
itself never depends on the farm.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["POST_EVERY_S", "FarmSession", "FarmTelemetry", "client_poster", "run_snapshot"]

#: seconds between two snapshots of a running run
POST_EVERY_S = 2.0


class FarmSession(Protocol):
    """What the swarm needs of the run's farm session: its client and claim (None: none)."""

    @property
    def client(self) -> Any: ...
    @property
    def claim(self) -> Any: ...


def client_poster(client: Any) -> Callable[[dict[str, Any]], None]:
    """How to POST a telemetry body with the farm plugin's client.

    ``FarmClient`` (pytest_shadowfarm/farm/client.py) has no public method for this
    route yet; until it has one (``post_telemetry``), its ``_request`` is used, which
    gives the same timeouts, token and FarmError on any failure.
    """
    post = getattr(client, "post_telemetry", None)
    if callable(post):
        return post
    return lambda body: client._request("POST", "/api/swarm/telemetry", body)


def run_snapshot(
    *,
    t: float,
    run: Mapping[str, Any],
    workers: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The samples of one post: the run, each worker, the new events (plain JSON values)."""
    samples: list[dict[str, Any]] = [{"kind": "run", "t": round(t, 3), **run}]
    samples += [{"kind": "worker", "t": round(t, 3), **w} for w in workers]
    samples += [{"kind": "event", "event": dict(e)} for e in events]
    return samples


class FarmTelemetry:
    """A daemon thread that posts what :meth:`offer` hands it; a backlog goes out as one request."""

    def __init__(
        self,
        post: Callable[[dict[str, Any]], None],
        *,
        claim_id: str | None,
        warn: Callable[[str], None],
    ) -> None:
        self.post = post
        self.claim_id = claim_id
        self.warn = warn
        self.posted = 0
        self.failed: str | None = None
        self._inbox: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="shadowfarm-farm-post", daemon=True)
        self._thread.start()
        self._warned = False

    def offer(self, samples: list[dict[str, Any]]) -> None:
        """Queue a snapshot (main thread; never blocks)."""
        if self.failed is None:
            self._inbox.put(samples)

    def close(self, timeout: float) -> None:
        """Post what is queued (bounded by ``timeout``), then stop; warn once on failure."""
        self._inbox.put(None)
        self._thread.join(timeout)
        if self.failed is not None and not self._warned:
            self._warned = True
            self.warn(f"swarm telemetry not sent to the farm: {self.failed}")

    def _run(self) -> None:
        while True:
            item = self._inbox.get()
            batch: list[dict[str, Any]] = []
            done = item is None
            if item is not None:
                batch.extend(item)
            while not self._inbox.empty():  # collapse a backlog into one request
                more = self._inbox.get_nowait()
                if more is None:
                    done = True
                else:
                    batch.extend(more)
            if batch and self.failed is None:
                try:
                    self.post({"claim_id": self.claim_id, "samples": batch})
                    self.posted += 1
                except Exception as exc:  # FarmError, or anything a broken farm causes
                    self.failed = str(exc) or type(exc).__name__
            if done:
                return
