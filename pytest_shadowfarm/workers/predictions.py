"""What the health monitor predicted, kept for the run report, and how early it was.

A :class:`Prediction` is one change of a worker's decision (``ok`` -> ``prepare`` ->
``swap``) with the death it predicted; :func:`lead_tests` reads from them the margin a
replacement left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Decision", "Prediction", "lead_tests"]

Decision = Literal["ok", "prepare", "swap"]


@dataclass(frozen=True)
class Prediction:
    """A decision change, kept for the report: when, and the death it predicted."""

    worker: str
    decision: Decision
    t: float
    tests_done: int
    reason: str
    #: tests_done + tests_left at the decision (None: not a memory prediction)
    death_at_tests: float | None


def lead_tests(predictions: list[Prediction], tests_done: int) -> float | None:
    """Tests between the worker's end (``tests_done``) and the death its swap predicted.

    The margin the replacement left: > 0 means it went before it would have died.
    None when the worker was never told to swap.
    """
    for prediction in predictions:
        if prediction.decision == "swap" and prediction.death_at_tests is not None:
            return prediction.death_at_tests - tests_done
    return None
