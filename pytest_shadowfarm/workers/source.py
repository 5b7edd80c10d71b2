"""Where a run's workers come from: the :class:`WorkerSource` seam.

A source answers four questions for the run: how many of the workers xdist starts with
it serves itself (:meth:`~WorkerSource.reserve`, e.g. the farm claims warm ones), one
more worker now (:meth:`~WorkerSource.start`, for the swarm or a replacement), what
to do with a worker the run is done with (:meth:`~WorkerSource.release`) or lost
(:meth:`~WorkerSource.lost`), and how long a worker may serve before the run recycles
it (:meth:`~WorkerSource.max_age`: the farm learns it from how its workers ended).

:class:`PopenSource` starts local workers through xdist's own ``NodeManager.setup_node``
-> ``group.makegateway``. That is also what the farm's hand-off overrides on the group
instance for popen specs, so :class:`pytest_shadowfarm.farm.source.FarmSource` reuses it
and only adds the claim and the release. ``start`` must run on the controller's main
thread: ``setup_node`` is not thread-safe, and execnet's ``main_thread_only`` model
forbids a second ``remote_exec`` from elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from shadowfarm_wire.endings import MaxAge

__all__ = ["PopenSource", "PutEvent", "WorkerSource", "popen_template"]

PutEvent = Callable[[tuple[str, dict[str, Any]]], None]


class WorkerSource(Protocol):
    """Gives the run its workers; ``start`` returns a started xdist node or raises."""

    #: what the run report calls workers of this source ("local", "farm", ...)
    name: str

    def reserve(self, count: int) -> int:
        """Before xdist starts ``count`` workers: how many of them this source serves."""
        ...

    def start(self, nodemanager: Any, putevent: PutEvent) -> Any:
        """One more worker, started now (any exception: it did not start)."""
        ...

    def release(self, worker_id: str) -> None:
        """The run is done with this worker."""
        ...

    def lost(self, worker_id: str, error: object) -> None:
        """This worker died under the run."""
        ...

    def max_age(self) -> MaxAge:
        """How long this run's workers may serve before being replaced (known after
        ``reserve``; no limit when the source does not know)."""
        ...


def popen_template(specs: Sequence[Any]) -> str | None:
    """The spec string of a new worker like the run's first popen one (None: no popen worker).

    The ``execmodel`` and ``id`` parts are dropped: xdist adds ``main_thread_only`` (and
    without it would waste a gateway id), and the id is allocated anew.
    """
    for spec in specs:
        if getattr(spec, "popen", False):
            parts = [
                part for part in str(spec).split("//") if not part.startswith(("execmodel=", "id="))
            ]
            return "//".join(parts)
    return None


class PopenSource:
    """Local workers from xdist's own ``setup_node`` (the run's popen spec as template)."""

    name = "local"

    def __init__(self, template: str | None = None) -> None:
        #: the spec of a new worker; None: like the run's first popen worker
        self.template = template

    def reserve(self, count: int) -> int:
        return count

    def can_start(self, specs: Sequence[Any]) -> bool:
        """Whether a worker can be added to a run with these ``--tx`` specs."""
        return self.template is not None or popen_template(specs) is not None

    def start(self, nodemanager: Any, putevent: PutEvent) -> Any:
        import execnet

        template = self.template or popen_template(nodemanager.specs) or "popen"
        spec = execnet.XSpec(f"execmodel=main_thread_only//{template}")
        nodemanager.group.allocate_id(spec)
        # workerinput["workercount"] is len(specs): keep it counting every worker.
        nodemanager.specs.append(spec)
        try:
            return nodemanager.setup_node(spec, putevent)
        except BaseException:
            nodemanager.specs.remove(spec)
            raise

    def release(self, worker_id: str) -> None:
        """A local worker exits with its session: nothing to give back."""

    def lost(self, worker_id: str, error: object) -> None:
        """xdist reports the crash itself."""

    def max_age(self) -> MaxAge:
        """Local workers have no history of their own: no limit."""
        return MaxAge()
