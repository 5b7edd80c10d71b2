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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.estimate import module_key
from pytest_shadowfarm.gcpause import paused_gc
from pytest_shadowfarm.priority import Entry, Weights, ordered, parse_importance
from pytest_shadowfarm.priority.explain import explain_lines, summary_line
from pytest_shadowfarm.settings import Settings

if TYPE_CHECKING:
    from pytest_shadowfarm.priority.plan import Planner
    from pytest_shadowfarm.priority.score import Ranked
    from pytest_shadowfarm.run import Run

__all__ = [
    "IMPORT_CACHE",
    "OrderingPlugin",
    "entries_of",
    "marker_importance",
    "order_lines",
    "pythonpath",
    "weights_of",
]

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


def pythonpath(config: pytest.Config) -> list[Path]:
    """The ini ``pythonpath`` entries: where change impact looks for imported modules."""
    try:
        entries = config.getini("pythonpath")
    except ValueError:  # -p no:python_path
        return []
    return [p for p in entries if isinstance(p, Path)]


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


def entries_of(ranked: Sequence[Ranked]) -> list[Entry]:
    """The order entries of ranked tests (in the same order)."""
    return [
        Entry(r.nodeid, module_key(r.nodeid), r.urgency, r.priority, r.etc, r.signalled)
        for r in ranked
    ]


def order_lines(
    run: Run,
    ranked: Mapping[str, Ranked],
    run_order: Sequence[Ranked],
    mode: str,
    note: str | None,
) -> list[str]:
    """The order line, the change-impact note and the ``--sf-explain`` table of a run.

    One function for both the single-process order and the xdist scheduler, so that a
    run prints the same lines with or without ``-n``.
    """
    if mode == "none":
        line = summary_line(mode, (), None, note=note)
    else:
        line = summary_line(mode, ranked.values(), run.plan.changed)
        line += f" ({note})" if note else ""
    lines = [line]
    if run.plan.change_note:
        lines.append(run.plan.change_note)
    if run.settings.explain:
        lines += explain_lines(run_order, run.settings.explain)
    return lines


class OrderingPlugin:
    """Puts the collected tests in run order from the run's plan."""

    def __init__(self, config: pytest.Config, run: Run, planner: Planner) -> None:
        self.config = config
        self.run = run
        self.settings = run.settings
        self.planner = planner
        self.mode = self.settings.order
        self.lines: list[str] = []

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
        run = self.run
        nodeids = [item.nodeid for item in items]
        ranked = self.planner.rank(nodeids, run.estimator, run.recent, markers)
        mode, note = self.effective_mode()
        entries = entries_of([ranked[n] for n in nodeids])
        items[:] = ordered(items, entries, mode)
        run_order = [ranked[item.nodeid] for item in items]
        self.lines = order_lines(run, ranked, run_order, mode, note)
        if self.config.getoption("failedfirst", False) or self.config.getoption("newfirst", False):
            self.lines[0] += "; --ff/--nf then move previous failures/new tests to the front"

    def pytest_report_collectionfinish(self) -> list[str]:
        return self.lines
