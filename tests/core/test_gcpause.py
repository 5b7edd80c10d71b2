"""pytest_shadowfarm.gcpause: the plugin's bulk work without garbage collections."""

from __future__ import annotations

import gc

import pytest

from pytest_shadowfarm.gcpause import paused_gc


@pytest.fixture
def collector_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_no_collection_runs_inside_and_the_collector_comes_back(collector_enabled):
    """Allocations that would start young collections start none inside the block."""
    seen: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(callback)
    try:
        with paused_gc():
            assert not gc.isenabled()
            seen.clear()  # (entering may have started one)
            kept = [[i] for i in range(50 * gc.get_threshold()[0])]
            assert seen == []
        assert gc.isenabled()
        more = [[i] for i in range(5 * gc.get_threshold()[0])]
        assert seen, "collections run again after the block"
    finally:
        gc.callbacks.remove(callback)
    assert len(kept) > len(more)


def test_an_error_inside_still_enables_the_collector(collector_enabled):
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_the_user_disabled_stays_disabled(collector_enabled):
    gc.disable()
    with paused_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()
