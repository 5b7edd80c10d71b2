"""Which run slot a new warm worker collects for, and the order a claim hands workers out.

A worker that prepared its collection for a run (:mod:`farm_server.collection`) did so
as one of that run's xdist workers (``gw0``, ``gw1``...): the id is part of what it
collected under (``PYTEST_XDIST_WORKER``). The pool gives each new worker of a profile a
slot no other unclaimed worker of the profile prepares for, and a claim hands each
worker to the slot it prepared for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

__all__ = ["in_slots", "next_slot", "slot"]


class _Expecting(Protocol):
    expects: str


W = TypeVar("W", bound=_Expecting)


def slot(workerid: str) -> int:
    """xdist's worker number in ``gwN`` (large for anything else)."""
    digits = workerid[2:] if workerid.startswith("gw") else ""
    return int(digits) if digits.isdigit() else 1 << 30


def next_slot(known: Mapping[str, Any], taken: Iterable[str]) -> str:
    """The lowest known slot not ``taken`` ("" if none is left)."""
    busy = set(taken)
    return next((w for w in sorted(known, key=slot) if w not in busy), "")


def in_slots(chosen: list[W]) -> list[W]:
    """Order a claim's workers so that the one that collected for ``gwN`` comes N-th.

    The run hands its claimed workers to its xdist workers in order: a worker lands
    where it prepared its collection whenever that slot is part of the run.
    """
    slots: list[W | None] = [None] * len(chosen)
    rest = []
    for worker in chosen:
        index = slot(worker.expects)
        if index < len(slots) and slots[index] is None:
            slots[index] = worker
        else:
            rest.append(worker)
    return [w if w is not None else rest.pop(0) for w in slots]
