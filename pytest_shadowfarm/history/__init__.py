"""The test history: what ran, when, how long it took and how it ended."""

from __future__ import annotations

from pytest_shadowfarm.history.records import (
    FAILING,
    OUTCOMES,
    HistorySummary,
    ResultRecord,
    RunRecord,
)
from pytest_shadowfarm.history.store import HistoryStore, PastResult

__all__ = [
    "FAILING",
    "OUTCOMES",
    "HistoryStore",
    "HistorySummary",
    "PastResult",
    "ResultRecord",
    "RunRecord",
]
