"""The wire values of worker endings and max ages: round trips and clear refusals."""

from __future__ import annotations

import math

import pytest

from shadowfarm_wire.endings import MaxAge, WorkerEnding


class TestWorkerEnding:
    def test_round_trip(self):
        """to_dict / from_dict keep every field."""
        ending = WorkerEnding("replaced", "memory", 41, 12.5, "memory would reach the limit")
        assert WorkerEnding.from_dict(ending.to_dict()) == ending

    @pytest.mark.parametrize(
        ("ending", "sick"),
        [
            (WorkerEnding("crashed", "crash"), True),
            (WorkerEnding("replaced", "memory"), True),
            (WorkerEnding("replaced", "errors"), True),
            (WorkerEnding("replaced", "age"), False),
            (WorkerEnding("finished"), False),
            (WorkerEnding("drained"), False),
        ],
    )
    def test_sick(self, ending, sick):
        """Crashes and sickness replacements are sick; planned ones are not."""
        assert ending.sick is sick

    @pytest.mark.parametrize(
        ("data", "match"),
        [
            ({"ended": "exploded"}, "ended must be one of"),
            ({"ended": "replaced", "cause": "boredom"}, "cause must be one of"),
            ({"ended": "finished", "tests": -1}, "must be >= 0"),
            ({"ended": "finished", "seconds": math.nan}, "must be >= 0"),
            ({}, "not a worker ending"),
        ],
    )
    def test_refusals_name_the_field(self, data, match):
        """A bad ending is a ValueError that names what is wrong."""
        with pytest.raises(ValueError, match=match):
            WorkerEnding.from_dict(data)


class TestMaxAge:
    def test_round_trip_and_no_limit(self):
        """A max age survives the wire; the empty one is no limit."""
        age = MaxAge(30, 22.5, "1 sick worker")
        assert MaxAge.from_dict(age.to_dict()) == age
        assert age.limited
        assert not MaxAge.from_dict({"tests": None, "seconds": None}).limited

    @pytest.mark.parametrize(
        "data", [None, [], {"tests": 0}, {"tests": "3"}, {"tests": True}, {"seconds": -1.0}]
    )
    def test_refusals(self, data):
        """Anything but positive numbers or null is refused."""
        with pytest.raises(ValueError, match="max_age"):
            MaxAge.from_dict(data)
