"""``--sf-shard K/N`` in a pytest run: keep this job's shard of the collected tests.

Every process that collects must drop exactly the same tests. Under xdist each worker
collects on its own, and xdist refuses to run workers whose collections differ; across CI
jobs, shard 1 and shard 2 must not both run (or both skip) a test. So the plan is made
from values that every process has alike:

- the collected node ids after ``-k``/``-m`` (hence ``trylast``), never their order;
- their ``xdist_group`` markers;
- an ETC snapshot taken once from the history by the controller. Workers never open the
  history: the controller sends the snapshot in ``workerinput`` (``pytest_configure_node``
  runs before the worker starts). Without xdist the controller uses the same snapshot,
  so ``-n 0`` and ``-n 4`` split the same way.

What the split was (shard sizes, plan fingerprint) goes into the run report under "shard"
and, from a worker, back to the controller in ``workeroutput``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shadowfarm.report.terminal import format_seconds
from pytest_shadowfarm.shard import ShardSpec, etc_snapshot, plan_shards, shard_etcs

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.settings import Settings

__all__ = ["WORKERINPUT_KEY", "WORKEROUTPUT_KEY", "ShardPlugin", "group_of"]

WORKERINPUT_KEY = "shadowfarm_shard_etc"
WORKEROUTPUT_KEY = "shadowfarm_shard"


def group_of(item: pytest.Item) -> str | None:
    """The item's xdist group name, spelled as xdist spells it (``xdist/remote.py``)."""
    names = set()
    for mark in item.iter_markers("xdist_group"):
        names.add(str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")))
    return "_".join(sorted(names)) if names else None


def keeps_modules(settings: Settings) -> bool:
    """Modules stay whole in ``--sf-order grouped`` (the default order)."""
    return getattr(settings, "order", "grouped") == "grouped"


class ShardPlugin:
    """Deselects the other shards' tests; the same object serves controller and workers."""

    def __init__(
        self,
        spec: ShardSpec,
        *,
        keep_modules: bool,
        snapshot: Callable[[], Mapping[str, float]],
        on_info: Callable[[dict[str, Any]], None] = lambda info: None,
    ) -> None:
        self.spec = spec
        self.keep_modules = keep_modules
        self._snapshot_source = snapshot
        self._snapshot: Mapping[str, float] | None = None
        self.on_info = on_info
        self.info: dict[str, Any] | None = None

    @classmethod
    def for_controller(cls, settings: Settings, spec: ShardSpec, run: Run) -> ShardPlugin:
        def from_history() -> Mapping[str, float]:
            # The session writer opened the history in its (tryfirst) pytest_sessionstart.
            store = run.store
            return etc_snapshot(store.durations()) if store is not None else {}

        def report(info: dict[str, Any]) -> None:
            run.report_extras["shard"] = info

        return cls(
            spec, keep_modules=keeps_modules(settings), snapshot=from_history, on_info=report
        )

    @classmethod
    def for_worker(cls, settings: Settings, spec: ShardSpec, config: pytest.Config) -> ShardPlugin:
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        # Missing only if the controller did not load us: then every worker splits without
        # history, which still agrees across workers.
        snapshot = dict(workerinput.get(WORKERINPUT_KEY) or {})

        def report(info: dict[str, Any]) -> None:
            config.workeroutput[WORKEROUTPUT_KEY] = info  # type: ignore[attr-defined]

        return cls(
            spec, keep_modules=keeps_modules(settings), snapshot=lambda: snapshot, on_info=report
        )

    def snapshot(self) -> Mapping[str, float]:
        if self._snapshot is None:
            self._snapshot = self._snapshot_source()
        return self._snapshot

    # --- controller, under xdist ----------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = dict(self.snapshot())

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        info = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if info is not None and self.info is None:
            self.info = dict(info)
            self.on_info(self.info)

    # --- whoever collects ---------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        groups = {}
        for item in items:
            group = group_of(item)
            if group is not None:
                groups[item.nodeid] = group
        etc = shard_etcs(self.snapshot(), [item.nodeid for item in items])
        plan = plan_shards(etc, self.spec.count, groups=groups, keep_modules=self.keep_modules)
        keep = set(plan.shard(self.spec))
        selected = [item for item in items if item.nodeid in keep]
        deselected = [item for item in items if item.nodeid not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = selected
        self.info = {
            "index": self.spec.index,
            "count": self.spec.count,
            "tests": len(selected),
            "total_tests": len(etc),
            "predicted_s": round(plan.loads[self.spec.index - 1], 6),
            "shard_predicted_s": [round(load, 6) for load in plan.loads],
            "cut_modules": plan.cuts,
            "plan": plan.fingerprint(),
        }
        self.on_info(self.info)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # An empty shard (more shards than tests) has nothing to run; that is a success,
        # not pytest's "no tests collected" (exit 5), or its CI job would fail.
        info = self.info
        if (
            session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
            and info is not None
            and info["tests"] == 0
            and info["total_tests"] > 0
        ):
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        info = self.info
        if info is None:
            return
        loads = info["shard_predicted_s"]
        terminalreporter.write_line(
            f"shadowfarm: shard {info['index']}/{info['count']} ran {info['tests']} of "
            f"{info['total_tests']} tests; predicted {format_seconds(info['predicted_s'])} "
            f"(shards {format_seconds(min(loads))}-{format_seconds(max(loads))}, "
            f"{info['cut_modules']} module cuts, plan {info['plan']})"
        )
