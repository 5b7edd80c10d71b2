"""The value parsers of the options: each takes a raw value from any source (command line,
environment, ``[tool.shadowfarm]``, ini) and returns the typed value, or raises
``ValueError("what is allowed")``; :mod:`pytest_shadowfarm.settings` adds where it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_shadowfarm.shard import ShardSpec

__all__ = [
    "WorkerRange",
    "choice",
    "farm_target",
    "fraction",
    "memory_size_or_none",
    "module_names",
    "non_negative_float",
    "non_negative_int",
    "path",
    "path_or_none",
    "positive_float",
    "positive_float_or_none",
    "positive_int",
    "shard_spec",
    "text_or_none",
    "worker_range",
]


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


def memory_size_or_none(raw: Any) -> int | None:
    text = _text(raw)
    if not text or text.lower() in ("none", "auto"):
        return None
    from pytest_shadowfarm.sizes import size_bytes

    return size_bytes(text)
