"""How a farm worker's run ended, and the max age the farm asks runs to keep: both sides.

The plugin tells the farm, when it gives a claimed worker back, how that worker ended
(:class:`WorkerEnding`); the farm learns from the endings of each profile and answers
later claims with a :class:`MaxAge`: the tests (and seconds) a worker of that profile
may serve before the run replaces it with a fresh one. Plain values, checked on the way
in: the farm validates the body again with its own models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CAUSES", "ENDINGS", "SICK_CAUSES", "MaxAge", "WorkerEnding"]

#: how a worker's part in a run ended (the run report's ``workers[].ended``)
ENDINGS = ("finished", "crashed", "replaced", "drained")
#: why a replaced worker was replaced; "crash" for a crashed one, "" when no cause applies
CAUSES = ("", "memory", "errors", "pressure", "age", "crash")
#: the causes that say the worker was getting sick (an "age" replacement is a planned one)
SICK_CAUSES = ("memory", "errors", "pressure", "crash")
#: reasons are for people: a line, not a log
MAX_REASON = 500


@dataclass(frozen=True)
class WorkerEnding:
    """One worker's end: ``ended`` (:data:`ENDINGS`), ``cause`` (:data:`CAUSES`), after
    ``tests`` tests and ``seconds`` of work, with the run's ``reason``."""

    ended: str
    cause: str = ""
    tests: int = 0
    seconds: float = 0.0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.ended not in ENDINGS:
            msg = f"ended must be one of {ENDINGS}, got {self.ended!r}"
            raise ValueError(msg)
        if self.cause not in CAUSES:
            msg = f"cause must be one of {CAUSES}, got {self.cause!r}"
            raise ValueError(msg)
        if self.tests < 0 or not math.isfinite(self.seconds) or self.seconds < 0:
            msg = f"tests and seconds must be >= 0, got {self.tests!r} and {self.seconds!r}"
            raise ValueError(msg)

    @property
    def sick(self) -> bool:
        """Whether the worker crashed or was replaced because it was getting sick."""
        return self.ended == "crashed" or (self.ended == "replaced" and self.cause in SICK_CAUSES)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["reason"] = self.reason[:MAX_REASON]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerEnding:
        """ValueError naming the field when ``data`` is not an ending."""
        try:
            return cls(
                ended=str(data["ended"]),
                cause=str(data.get("cause", "")),
                tests=int(data.get("tests", 0)),
                seconds=float(data.get("seconds", 0.0)),
                reason=str(data.get("reason", ""))[:MAX_REASON],
            )
        except (KeyError, TypeError) as exc:
            msg = f"not a worker ending ({exc!r}): {dict(data)!r}"
            raise ValueError(msg) from None


@dataclass(frozen=True)
class MaxAge:
    """How long a worker of a profile may serve before the run replaces it (None: no limit).

    ``basis`` says, for people, what the farm learned it from.
    """

    tests: int | None = None
    seconds: float | None = None
    basis: str = ""

    @property
    def limited(self) -> bool:
        return self.tests is not None or self.seconds is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> MaxAge:
        """ValueError when ``data`` is not a max age (a positive count / duration or null)."""
        if not isinstance(data, Mapping):
            msg = f"max_age must be an object, got {data!r}"
            raise ValueError(msg)
        tests, seconds = data.get("tests"), data.get("seconds")
        if tests is not None and (isinstance(tests, bool) or not isinstance(tests, int)):
            msg = f"max_age.tests must be an integer or null, got {tests!r}"
            raise ValueError(msg)
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float))
        ):
            msg = f"max_age.seconds must be a number or null, got {seconds!r}"
            raise ValueError(msg)
        if (tests is not None and tests < 1) or (
            seconds is not None and not (math.isfinite(seconds) and seconds > 0)
        ):
            msg = f"max_age must be positive, got tests={tests!r} seconds={seconds!r}"
            raise ValueError(msg)
        return cls(
            tests=tests,
            seconds=None if seconds is None else float(seconds),
            basis=str(data.get("basis", ""))[:MAX_REASON],
        )
