"""Every option of the plugin, described once: name, help, value parser, default.

An :class:`Option`'s help text is shared by ``--sf-*`` and the ``shadowfarm_*`` ini key,
as pytest-timeout does. Each parser takes the raw value from any source and raises
``ValueError("what is allowed")``; :mod:`pytest_shadowfarm.settings` adds where the value
came from. The parsers are in :mod:`pytest_shadowfarm.values`. Nothing here imports pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_shadowfarm.priority.weights import DEFAULT_HALF_LIFE, DEFAULT_WEIGHTS
from pytest_shadowfarm.values import (
    WorkerRange,
    choice,
    farm_target,
    fraction,
    memory_size_or_none,
    module_names,
    non_negative_float,
    non_negative_int,
    path,
    path_or_none,
    positive_float,
    positive_float_or_none,
    positive_int,
    shard_spec,
    text_or_none,
    worker_range,
)

__all__ = ["ENV_PREFIX", "INI_PREFIX", "OPTIONS", "Option", "WorkerRange"]

ENV_PREFIX = "SHADOWFARM_"
INI_PREFIX = "shadowfarm_"


@dataclass(frozen=True)
class Option:
    """One setting, described once for all its sources."""

    name: str
    help: str
    parse: Callable[[Any], Any]
    default: Any = None
    metavar: str = "VALUE"
    #: key inside ``[tool.shadowfarm]``; dotted for sub-tables ("weights.marker")
    toml_key: str = ""
    #: relative paths are resolved against the directory of the source they came from
    is_path: bool = False

    @property
    def flag(self) -> str:
        return "--sf-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "sf_" + self.name

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def ini(self) -> str:
        return INI_PREFIX + self.name

    @property
    def toml(self) -> str:
        return self.toml_key or self.name


def _weight_options() -> tuple[Option, ...]:
    helps = {
        "base": "prior of every test, so short tests go first when nothing else is known",
        "marker": "importance from @pytest.mark.shadowfarm(priority=critical|high|normal|low)",
        "failure": "recency-weighted failure rate (1 when the last result failed)",
        "change": "change impact (1 for a changed test file, 0.6 for a direct import of a "
        "changed module, halved per further import)",
        "new": "tests the history has never seen",
    }
    return tuple(
        Option(
            f"weight_{name}",
            f"Priority weight of the {help} (default: {getattr(DEFAULT_WEIGHTS, name):g}).",
            non_negative_float,
            default=getattr(DEFAULT_WEIGHTS, name),
            metavar="W",
            toml_key=f"weights.{name}",
        )
        for name, help in helps.items()
    )


OPTIONS: tuple[Option, ...] = (
    Option(
        "history",
        "SQLite file that keeps the test history (default: <rootdir>/.shadowfarm/history.sqlite).",
        path,
        metavar="PATH",
        is_path=True,
    ),
    Option(
        "report_json",
        "Write the run report (versioned JSON, see README) to PATH.",
        path_or_none,
        metavar="PATH",
        is_path=True,
    ),
    Option(
        "timeline",
        "Write the run's timeline, which worker ran which test when, as an SVG picture "
        "to PATH (with or without GitHub Actions).",
        path_or_none,
        metavar="PATH",
        is_path=True,
    ),
    Option(
        "history_keep",
        "How many results to keep per test in the history (default: 50).",
        positive_int,
        default=50,
        metavar="N",
    ),
    Option(
        "order",
        "Run order in one process: grouped (modules kept together, those with a recent "
        "failure, a changed or a new test first and those tests first inside; tests by "
        "urgency inside), test (by urgency alone) or none (collection order) "
        "(default: grouped).",
        choice("grouped", "test", "none"),
        default="grouped",
        metavar="grouped|test|none",
    ),
    Option(
        "base",
        "Git ref the change-impact signal compares the working tree with, from its merge "
        "base (default: the default branch: origin/HEAD, main or master; else HEAD).",
        text_or_none,
        metavar="REF",
    ),
    Option(
        "explain",
        "Print priority components, ETC and urgency of the first N tests of the order "
        "(default: 0, off).",
        non_negative_int,
        default=0,
        metavar="N",
    ),
    Option(
        "half_life",
        "Failure history: a result this many runs old counts half as much as the newest "
        f"(default: {DEFAULT_HALF_LIFE:g}).",
        positive_float,
        default=DEFAULT_HALF_LIFE,
        metavar="RUNS",
    ),
    *_weight_options(),
    Option(
        "github",
        "GitHub Actions job summary and failure annotations: auto (on when "
        "GITHUB_ACTIONS=true), on or off (default: auto).",
        choice("auto", "on", "off"),
        default="auto",
        metavar="auto|on|off",
    ),
    Option(
        "shard",
        "Run only shard K of N (e.g. 2/4): the tests are split into N shards of equal "
        "expected time, the same way in every job (default: off).",
        shard_spec,
        metavar="K/N",
    ),
    Option(
        "dist",
        "Under xdist, dispatch tests by urgency and balance them by ETC instead of "
        "xdist's load/worksteal (on), or leave scheduling to xdist (off) (default: on).",
        choice("on", "off"),
        default="on",
        metavar="on|off",
    ),
    Option(
        "workers",
        "Elastic xdist swarm: start with MIN workers and let the count move within "
        "MIN:MAX as the remaining work justifies (e.g. 1:6; MAX alone means 1:MAX). "
        "Without it, -n N keeps a fixed swarm (default: off).",
        worker_range,
        metavar="MIN:MAX",
    ),
    Option(
        "budget",
        "Most worker-seconds the elastic swarm may spend; caps scale-up (default: none).",
        positive_float_or_none,
        metavar="WORKER_SECONDS",
    ),
    Option(
        "target",
        "Finish the elastic run within SECONDS: the swarm grows only as much as that "
        "needs (default: none, grow while each worker gets enough work).",
        positive_float_or_none,
        metavar="SECONDS",
    ),
    Option(
        "telemetry_interval",
        "Seconds between the psutil samples every xdist worker streams to the "
        "controller; 0 turns worker telemetry off (default: 0.2).",
        non_negative_float,
        default=0.2,
        metavar="SECONDS",
    ),
    Option(
        "scale_up",
        "Grow the swarm when the work needs more than this share of it (default: 0.8).",
        fraction,
        default=0.8,
        metavar="FRACTION",
    ),
    Option(
        "scale_down",
        "Shrink the swarm when the work needs less than this share of it; must be "
        "below scale_up (default: 0.5).",
        fraction,
        default=0.5,
        metavar="FRACTION",
    ),
    Option(
        "farm",
        "Warm xdist workers from a farm (shadowfarm farm start): auto uses the farm of "
        "--sf-farm-home if one runs, off never asks, a farm's URL, or a Dask cluster: "
        "dask://SCHEDULER:8786 (dask+tls:// with TLS from Dask's config; pip install "
        "'pytest-shadowfarm[dask]') (default: auto).",
        farm_target,
        default="auto",
        metavar="auto|off|URL",
    ),
    Option(
        "farm_home",
        "State directory of the farm to use (default: $SHADOWFARM_HOME, else "
        "$XDG_STATE_HOME/shadowfarm or ~/.local/state/shadowfarm).",
        path_or_none,
        metavar="DIR",
        is_path=True,
    ),
    Option(
        "warm_imports",
        "Modules a farm worker imports while warming, besides those the suite's test "
        "modules import (a TOML list, or comma-separated).",
        module_names,
        default=(),
        metavar="MODULES",
    ),
    Option(
        "shadow_budget",
        "Seconds of cheap tests (the cheapest passing test of each module, from history) a "
        "farm worker runs while warming (default: 3).",
        non_negative_float,
        default=3.0,
        metavar="SECONDS",
    ),
    Option(
        "health",
        "Watch each xdist worker's memory and replace a worker before it would run out "
        "(needs worker telemetry: a telemetry interval above 0) (default: on).",
        choice("on", "off"),
        default="on",
        metavar="on|off",
    ),
    Option(
        "memory_limit",
        "The memory the run's processes may use in all, which the health monitor plans "
        "against, e.g. 600M or 1.5GiB (default: the run's memory cgroup limit, else the "
        "available RAM).",
        memory_size_or_none,
        metavar="SIZE",
    ),
    Option(
        "health_prepare",
        "Health score from which a replacement starts for a worker (0 healthy, 1 failing "
        "now; default: 0.5).",
        fraction,
        default=0.5,
        metavar="SCORE",
    ),
    Option(
        "health_swap",
        "Health score from which a worker gets no new tests and its replacement takes "
        "over; must be above health_prepare (default: 0.8).",
        fraction,
        default=0.8,
        metavar="SCORE",
    ),
)
