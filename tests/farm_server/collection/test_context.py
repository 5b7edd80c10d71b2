"""RunContext: what a worker starts from, and how two runs' contexts are compared."""

from __future__ import annotations

import threading

from farm_server.collection.context import UNPORTABLE, RunContext, portable
from farm_server.collection.prepare import WatchedInput


def context(**overrides):
    base = {
        "args": ["-p", "shadowfarm"],
        "env": {"HOME": "/home/u", "PYTEST_XDIST_TESTRUNUID": "abc"},
        "cwd": "/proj",
        "sys_path": ["/proj", "/lib"],
        "workerinput": {"workerid": "gw0", "testrunuid": "abc", "seed": 1},
    }
    return RunContext.of(**{**base, **overrides})


def test_the_run_id_and_its_variable_never_count():
    one = context()
    other = context(
        env={"HOME": "/home/u", "PYTEST_XDIST_TESTRUNUID": "xyz"},
        workerinput={"workerid": "gw0", "testrunuid": "xyz", "seed": 1},
    )
    assert one.differences(other, input_keys=["workerid", "seed"]) == []
    assert "testrunuid" not in one.workerinput


def test_differences_are_named_never_shown():
    other = context(env={"HOME": "/home/u", "TOKEN": "s3cret"}, cwd="/elsewhere")
    found = context().differences(other)
    assert found == ["working directory", "environment (TOKEN)"]
    assert "s3cret" not in " ".join(found)


def test_only_the_workerinput_read_while_collecting_counts():
    other = context(workerinput={"workerid": "gw0", "seed": 2})
    assert context().differences(other, input_keys=["workerid"]) == []
    assert context().differences(other, input_keys=["seed"]) == ["workerinput (seed)"]
    assert context().differences(other, with_input=False) == []


def test_values_json_cannot_carry_compare_by_type_and_are_left_out_of_a_preparation():
    lock = threading.Lock()
    found = portable({"channel": lock, "n": 1})
    assert found["channel"] == {UNPORTABLE: f"{type(lock).__module__}.{type(lock).__qualname__}"}
    assert context(workerinput={"channel": lock, "n": 1}).usable_input() == {"n": 1}


def test_a_context_survives_its_trip_through_json():
    import json

    one = context()
    assert RunContext.from_dict(json.loads(json.dumps(one.to_dict()))) == one
    assert one.workerid == "gw0"


def test_watched_input_records_every_way_of_reading():
    watched = WatchedInput({"a": 1, "b": 2, "c": 3})
    assert watched["a"] == 1
    assert watched.get("b") == 2
    assert "zz" not in watched
    assert watched.read == {"a", "b", "zz"}
    dict(watched)  # a copy reads everything
    assert watched.read >= {"a", "b", "c"}


def test_the_runs_plugin_options_are_found_in_every_spelling():
    found = context(args=["-p", "shadowfarm", "-pno:randomly", "-p=xdist", "--pdb", "tests"])
    assert found.plugin_args() == ["-p", "shadowfarm", "-p", "no:randomly", "-p", "xdist"]
