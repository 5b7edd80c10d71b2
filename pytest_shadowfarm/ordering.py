"""Order a single-process run by urgency (``--sf-order grouped|test|none``).

Registered by :mod:`pytest_shadowfarm.plugin` next to the controller plugin, never in an
xdist worker: under xdist the controller collects nothing and dispatch order belongs to
the scheduler (:mod:`pytest_shadowfarm.sched`), while the workers must all keep the
same collection order, which they do by not reordering at all.

This module reads pytest objects (markers, options) and passes plain values to
:mod:`pytest_shadowfarm.priority`. How it plays with pytest's other orderings:

- It runs ``trylast`` in ``pytest_collection_modifyitems``: after ``-k``/``-m``/``--deselect``
  and after pytest's own fixture-scope reordering, so it orders exactly what will run.
- ``--lf``/``--ff``/``--nf`` are cacheprovider *wrappers*, whose work happens after every
  plain implementation, ours included: ``--lf`` filters our order, ``--ff`` and ``--nf``
  move the previous failures (new tests) to the front and keep our order within each
  part. That is cacheprovider's intention; our failure signal agrees with it anyway.
- ``--sw`` keeps collection order: stepwise skips the tests that come before the last
  failure *in the current order* (it runs before us), assuming they passed last time.
  Reordering afterwards would run tests that were skipped and, worse, silently skip
  tests that never ran. One header line says so.
- pytest-randomly (or any plugin registered as ``randomly``): its shuffle is kept unless
  ``--sf-order`` was set explicitly (command line, environment, pyproject or ini); then
  our order wins and ties keep randomly's (seeded) order. One header line says which.
- ``-x`` simply stops at the first failure, which now tends to come earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.errors import ChangeDetectionError
from pytest_shadowfarm.estimate import module_key
from pytest_shadowfarm.gcpause import paused_gc
from pytest_shadowfarm.priority import (
    ChangeImpact,
    Entry,
    Ranked,
    Weights,
    analyze_changes,
    ordered,
    parse_importance,
    rank,
)
from pytest_shadowfarm.priority.explain import explain_lines, summary_line
from pytest_shadowfarm.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_shadowfarm.controller import ShadowFarmPlugin
    from pytest_shadowfarm.history.store import RecentHistory

__all__ = ["IMPORT_CACHE", "OrderingPlugin", "marker_importance", "weights_of"]

#: where the parsed-imports cache lives, relative to rootdir
IMPORT_CACHE = (".shadowfarm", "imports.json")


def weights_of(settings: Settings) -> Weights:
    """The priority weights of a run's settings."""
    return Weights(
        base=settings.weight_base,
        marker=settings.weight_marker,
        failure=settings.weight_failure,
        change=settings.weight_change,
        new=settings.weight_new,
    )


def marker_importance(marker: Any) -> float:
    """The importance of a ``shadowfarm`` marker; ValueError saying how to write it."""
    extra = sorted(set(marker.kwargs) - {"priority"})
    given = [*marker.args, *(marker.kwargs[k] for k in marker.kwargs if k == "priority")]
    if extra or len(given) != 1:
        msg = "write @pytest.mark.shadowfarm(priority=...) with one value" + (
            f" (unknown argument {', '.join(map(repr, extra))})" if extra else ""
        )
        raise ValueError(msg)
    return parse_importance(given[0])


def marker_priorities(items: Sequence[pytest.Item]) -> dict[str, float]:
    """nodeid -> importance of every marked test; a bad marker is a UsageError naming it."""
    found: dict[str, float] = {}
    for item in items:
        marker = item.get_closest_marker("shadowfarm")
        if marker is None:
            continue
        try:
            found[item.nodeid] = marker_importance(marker)
        except ValueError as exc:
            shown = ", ".join(
                [*map(repr, marker.args), *(f"{k}={v!r}" for k, v in marker.kwargs.items())]
            )
            msg = (
                f"pytest-shadowfarm: {item.nodeid}: @pytest.mark.shadowfarm({shown}) "
                f"is not valid: {exc}"
            )
            raise pytest.UsageError(msg) from None
    return found


class OrderingPlugin:
    """Scores the collected tests and puts them in run order."""

    def __init__(self, config: pytest.Config, settings: Settings, farm: ShadowFarmPlugin) -> None:
        self.config = config
        self.settings = settings
        self.farm = farm
        self.mode = settings.order
        self.ranked: dict[str, Ranked] = {}
        self.changed: ChangeImpact | None = None
        self.lines: list[str] = []

    # --- inputs -----------------------------------------------------------------------------

    def history(self) -> RecentHistory:
        """What the history says of each test, as read at the session start (no second read)."""
        return self.farm.recent

    def _pythonpath(self) -> list[Path]:
        try:
            entries = self.config.getini("pythonpath")
        except ValueError:  # -p no:python_path
            return []
        return [p for p in entries if hasattr(p, "is_dir")]

    def change_impact(self, nodeids: Sequence[str]) -> tuple[ChangeImpact | None, str | None]:
        """The change signal for these tests, or None and the line saying why it is off."""
        if self.settings.weight_change == 0:
            return None, None
        rootdir = self.settings.rootdir
        try:
            impact = analyze_changes(
                rootdir,
                nodeids,
                base=self.settings.base,
                search_paths=self._pythonpath(),
                cache_path=rootdir.joinpath(*IMPORT_CACHE),
            )
        except (ChangeDetectionError, OSError) as exc:
            return None, f"shadowfarm: change impact off: {exc}"
        return impact, None

    def effective_mode(self) -> tuple[str, str | None]:
        """The order this run uses and, when it differs from the setting, why."""
        option = self.config.getoption
        if option("stepwise", False):
            return "none", (
                "collection order kept, because --sw resumes from the last failure by its "
                "position in the collection order"
            )
        randomly = self.config.pluginmanager.hasplugin("randomly") and getattr(
            self.config.option, "randomly_reorganize", True
        )
        if randomly and "order" not in self.settings.sources:
            return "none", (
                "pytest-randomly's shuffle is kept "
                "(set --sf-order grouped or test to order by urgency instead)"
            )
        if randomly:
            return self.mode, (
                f"{self.settings.describe('order')} overrides pytest-randomly's shuffle, "
                "which only breaks ties"
            )
        if self.mode == "none":
            return "none", "collection order (priorities are still computed for the report)"
        return self.mode, None

    # --- hooks ------------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # trylast: after -k/-m/--deselect and fixture reordering (see the module docstring).
        with paused_gc():
            self.order(items)

    def order(self, items: list[pytest.Item]) -> None:
        """Score ``items`` and put them in run order, in place."""
        markers = marker_priorities(items)
        if not items:
            return
        nodeids = [item.nodeid for item in items]
        etc = {n: self.farm.estimator.estimate(n).seconds for n in nodeids}
        self.changed, change_note = self.change_impact(nodeids)
        history = self.history()
        self.ranked = rank(
            nodeids,
            etc=etc,
            marker_priority=markers,
            history=history.failures,
            known=history.runs,
            changed=self.changed,
            weights=weights_of(self.settings),
            half_life=self.settings.half_life,
        )
        mode, note = self.effective_mode()
        picked = [self.ranked[n] for n in nodeids]
        entries = [
            Entry(r.nodeid, module_key(r.nodeid), r.urgency, r.priority, r.etc) for r in picked
        ]
        items[:] = ordered(items, entries, mode)
        self.farm.extras_providers.append(self._report_extras)
        if mode == "none":
            line = summary_line(mode, (), None, note=note)
        else:
            line = summary_line(mode, self.ranked.values(), self.changed)
            line += f" ({note})" if note else ""
        if self.config.getoption("failedfirst", False) or self.config.getoption("newfirst", False):
            line += "; --ff/--nf then move previous failures/new tests to the front"
        self.lines = [line]
        if change_note:
            self.lines.append(change_note)
        if self.settings.explain:
            run = [self.ranked[item.nodeid] for item in items]
            self.lines += explain_lines(run, self.settings.explain)

    def _report_extras(self) -> None:
        for nodeid, r in self.ranked.items():
            extras = self.farm.test_extras.setdefault(nodeid, {})
            extras["priority"] = round(r.priority, 6)
            extras["priority_components"] = {k: round(v, 6) for k, v in r.components.items()}
            extras["urgency"] = round(r.urgency, 6)
            extras["priority_reasons"] = list(r.reasons)
            extras["likely_failure"] = r.likely_failure
            extras["flaky"] = r.flaky

    def pytest_report_collectionfinish(self) -> list[str]:
        return self.lines
