"""Every option of the plugin, described once: name, help, value parser, default.

An :class:`Option`'s help text is shared by ``--sf-*`` and the ``shadowfarm_*`` ini key,
as pytest-timeout does. Each parser takes the raw value from any source and raises
``ValueError("what is allowed")``; :mod:`pytest_shadowfarm.settings` adds where the value
came from. Nothing here imports pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_shadowfarm.priority.weights import DEFAULT_HALF_LIFE, DEFAULT_WEIGHTS

if TYPE_CHECKING:
    from pytest_shadowfarm.shard import ShardSpec

__all__ = ["ENV_PREFIX", "INI_PREFIX", "OPTIONS", "Option", "WorkerRange"]

ENV_PREFIX = "SHADOWFARM_"
INI_PREFIX = "shadowfarm_"


@dataclass(frozen=True)
class WorkerRange:
    """``--sf-workers MIN:MAX``: the swarm starts with ``low`` and stays in ``[low, high]``."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            msg = f"expected 1 <= MIN <= MAX, got {self.low}:{self.high}"
            raise ValueError(msg)

    @classmethod
    def parse(cls, text: str) -> WorkerRange:
        """``"2:6"`` -> 2..6; a single number ``"6"`` means ``1:6``."""
        low_text, sep, high_text = text.strip().partition(":")
        try:
            low, high = (int(low_text), int(high_text)) if sep else (1, int(low_text))
        except ValueError:
            msg = "expected MIN:MAX worker counts (e.g. 1:6) or MAX alone"
            raise ValueError(msg) from None
        return cls(low, high)

    def __str__(self) -> str:
        return f"{self.low}:{self.high}"


# --- value parsers: each takes the raw value and raises ValueError("what is allowed") ---------


def _text(raw: Any) -> str:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        msg = "expected a string"
        raise ValueError(msg)
    return str(raw).strip()


def positive_int(raw: Any) -> int:
    try:
        value = int(_text(raw)) if not isinstance(raw, int) or isinstance(raw, bool) else raw
    except ValueError:
        value = 0
    if isinstance(value, bool) or value < 1:
        msg = "expected a whole number >= 1"
        raise ValueError(msg)
    return value


def non_negative_float(raw: Any) -> float:
    try:
        value = float(_text(raw))
    except ValueError:
        value = -1.0
    if value < 0 or value != value:  # NaN
        msg = "expected a number >= 0"
        raise ValueError(msg)
    return value


def path(raw: Any) -> Path:
    text = _text(raw)
    if not text:
        msg = "expected a file path"
        raise ValueError(msg)
    return Path(text).expanduser()


def path_or_none(raw: Any) -> Path | None:
    text = _text(raw)
    if text.lower() in {"", "none", "off"}:
        return None
    return Path(text).expanduser()


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        text = _text(raw).lower()
        if text not in allowed:
            msg = "expected one of " + ", ".join(allowed)
            raise ValueError(msg)
        return text

    return parse


def non_negative_int(raw: Any) -> int:
    try:
        value = int(_text(raw)) if not isinstance(raw, int) or isinstance(raw, bool) else raw
    except ValueError:
        value = -1
    if isinstance(value, bool) or value < 0:
        msg = "expected a whole number >= 0"
        raise ValueError(msg)
    return value


def positive_float(raw: Any) -> float:
    try:
        value = non_negative_float(raw) if not isinstance(raw, bool) else 0.0
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        msg = "expected a number > 0"
        raise ValueError(msg)
    return value


def text_or_none(raw: Any) -> str | None:
    text = _text(raw)
    return text or None


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


def shard_spec(raw: Any) -> ShardSpec | None:
    text = _text(raw)
    if text.lower() in {"", "none", "off"}:
        return None
    from pytest_shadowfarm.shard import ShardSpec

    return ShardSpec.parse(text)  # ValueError says what is allowed


def worker_range(raw: Any) -> WorkerRange | None:
    text = _text(raw)
    if text.lower() in {"", "none", "off"}:
        return None

    return WorkerRange.parse(text)  # ValueError says what is allowed


def positive_float_or_none(raw: Any) -> float | None:
    if isinstance(raw, str) and raw.strip().lower() in {"", "none", "off"}:
        return None
    return positive_float(raw)


def fraction(raw: Any) -> float:
    value = positive_float(raw)
    if value > 1.0:
        msg = "expected a number in (0, 1]"
        raise ValueError(msg)
    return value


def farm_target(raw: Any) -> str:
    text = _text(raw)
    if text.lower() in {"auto", "off"}:
        return text.lower()
    if text.startswith(("http://", "https://")) and len(text) > len("http://"):
        return text.rstrip("/")
    from shadowfarm_wire.relay import parse_engine_url

    engine = parse_engine_url(text)  # ValueError says what a dask:// URL looks like
    if engine is not None:
        return engine.url
    msg = (
        "expected auto, off, the farm's URL (e.g. http://127.0.0.1:8765) or a Dask "
        "scheduler's (dask://HOST:8786, dask+tls://HOST:8786)"
    )
    raise ValueError(msg)


def module_names(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list | tuple) else _text(raw).replace(",", " ").split()
    names = []
    for item in items:
        name = _text(item)
        if not all(part.isidentifier() for part in name.split(".")):
            msg = f"expected importable module names (a TOML list or comma-separated), got {name!r}"
            raise ValueError(msg)
        names.append(name)
    return tuple(sorted(set(names)))


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
        "history_keep",
        "How many results to keep per test in the history (default: 50).",
        positive_int,
        default=50,
        metavar="N",
    ),
    Option(
        "order",
        "Run order in one process: grouped (modules ranked by total priority over total ETC, "
        "tests by urgency inside), test (by urgency alone) or none (collection order) "
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
)
