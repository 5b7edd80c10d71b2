"""A prepared session the run cannot use is dropped without leaving the heap unfrozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from farm_server.collection.reuse import Reuse


class _Node:
    """Stands for a collected item: a reference cycle, as pytest's nodes are."""

    def __init__(self) -> None:
        self.me = self


class FakePrepared:
    def __init__(self) -> None:
        self.collected = ["mylib", "test_lib"]
        self.items = [_Node() for _ in range(100)]
        self.discarded = False

    def discard(self) -> None:
        self.discarded = True


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """The test process's heap frozen, as a warm worker's is at hand-off; thawed after."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def test_a_dropped_session_is_freed_and_the_heap_is_frozen_again(frozen_heap: None) -> None:
    prepared = FakePrepared()
    item = weakref.ref(prepared.items[0])
    purged: list[list[str]] = []
    reuse = Reuse(prepared, purge=purged.append, on_context=lambda *a: None)  # type: ignore[arg-type]
    gc.freeze()  # the worker settled after preparing: the prepared session is frozen too
    del prepared
    assert gc.get_freeze_count() > 0

    reuse.drop("collected: arguments")

    assert purged == [["mylib", "test_lib"]]
    assert reuse.prepared is None
    assert reuse.why_not == "collected: arguments"
    assert item() is None  # its cycles were collected, not carried through the run
    assert gc.get_freeze_count() > 0  # and the warm imports are frozen again
    tracked: list[Any] = gc.get_objects()
    assert len(tracked) < gc.get_freeze_count()
