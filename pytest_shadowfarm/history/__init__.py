"""The test history: what ran, when, how long it took and how it ended.

The records are imported here; :class:`HistoryStore` (and with it ``sqlite3``) only when
first asked for, so that code that only needs a record type (the priority signals, an
xdist worker) does not pay for the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_shadowfarm.history.records import (
    FAILING,
    OUTCOMES,
    HistorySummary,
    PastResult,
    ResultRecord,
    RunRecord,
)
from pytest_shadowfarm.lazy import lazy_exports

if TYPE_CHECKING:
    from pytest_shadowfarm.history.store import HistoryStore

__all__ = [
    "FAILING",
    "OUTCOMES",
    "HistoryStore",
    "HistorySummary",
    "PastResult",
    "ResultRecord",
    "RunRecord",
]


__getattr__ = lazy_exports(__name__, {"HistoryStore": "store"})
