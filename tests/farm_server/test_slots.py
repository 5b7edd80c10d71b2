"""A claim hands each worker to the xdist slot it collected for."""

from __future__ import annotations

from dataclasses import dataclass

from farm_server.slots import in_slots, next_slot, slot


@dataclass
class W:
    name: str
    expects: str = ""


def test_workers_land_in_the_slot_they_prepared_for():
    chosen = [W("a", "gw1"), W("b", ""), W("c", "gw0")]
    assert [w.name for w in in_slots(chosen)] == ["c", "a", "b"]


def test_a_slot_outside_the_run_or_taken_twice_fills_a_gap():
    chosen = [W("a", "gw5"), W("b", "gw0"), W("c", "gw0")]
    assert [w.name for w in in_slots(chosen)] == ["b", "a", "c"]


def test_a_new_worker_gets_the_lowest_slot_nobody_prepares_for():
    known = {"gw1": {}, "gw0": {}, "gw10": {}, "gw2": {}}
    assert next_slot(known, {"gw0"}) == "gw1"
    assert next_slot(known, {"gw0", "gw1", "gw2"}) == "gw10"
    assert next_slot(known, set(known)) == ""
    assert slot("master") > slot("gw999")
