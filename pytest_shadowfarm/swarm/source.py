"""Where a worker added mid-run comes from: the seam between the swarm and the farm.

The swarm asks a :class:`WorkerSource` for one more xdist worker. The source returns
a started ``WorkerController`` (xdist's node object) or raises; it must run on the
controller's main thread (``NodeManager.setup_node`` is not thread-safe, and execnet's
``main_thread_only`` model forbids a second ``remote_exec`` from elsewhere).

:class:`PopenSource` is the only source today, and it is enough for warm workers too:
it goes through xdist's own ``NodeManager.setup_node`` -> ``group.makegateway``, which
is exactly what the farm's hand-off (issue 5) overrides on the group instance for popen
specs. With a farm running, a worker added here is a warm one when the farm has one,
a cold popen otherwise; ``gateway.shadowfarm_warm`` says which. A source that picks a
particular warm worker (closest profile match) can replace it without touching the
swarm controller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import execnet

__all__ = ["PopenSource", "WorkerSource", "popen_template"]

PutEvent = Callable[[tuple[str, dict[str, Any]]], None]


class WorkerSource(Protocol):
    """Gives the run one more worker, started, or raises (any exception = did not start)."""

    name: str

    def start(self, nodemanager: Any, putevent: PutEvent) -> Any: ...


def popen_template(specs: Sequence[Any]) -> str | None:
    """The spec string of a new worker like the run's first popen one (None: no popen worker).

    The ``execmodel`` and ``id`` parts are dropped: xdist adds ``main_thread_only`` (and
    without it would waste a gateway id, research/exp2), and the id is allocated anew.
    """
    for spec in specs:
        if getattr(spec, "popen", False):
            parts = [
                part for part in str(spec).split("//") if not part.startswith(("execmodel=", "id="))
            ]
            return "//".join(parts)
    return None


class PopenSource:
    """A new local worker from xdist's own ``setup_node`` (warm if the farm hands one out)."""

    name = "popen"

    def __init__(self, template: str = "popen") -> None:
        self.template = template

    def start(self, nodemanager: Any, putevent: PutEvent) -> Any:
        spec = execnet.XSpec(f"execmodel=main_thread_only//{self.template}")
        nodemanager.group.allocate_id(spec)
        # workerinput["workercount"] is len(specs): keep it counting every worker.
        nodemanager.specs.append(spec)
        try:
            return nodemanager.setup_node(spec, putevent)
        except BaseException:
            nodemanager.specs.remove(spec)
            raise
