"""Which xdist/execnet versions our internals-dependent parts were tested against.

The scheduler, the warm hand-off and the swarm controller use private parts of
pytest-xdist and execnet (``Group._register``, ``DSession`` event dispatch, the
scheduler protocol of xdist 3.8). On any other version those parts switch off with
one warning line; ordering and history keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = [
    "TESTED",
    "InternalsCheck",
    "check_internals",
    "distributing",
    "dsession",
    "starting_workers",
]

#: distribution -> (lowest tested, first untested)
TESTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "pytest-xdist": ((3, 8, 0), (3, 9)),
    "execnet": ((2, 1, 0), (2, 2)),
}


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class InternalsCheck:
    ok: bool
    reason: str = ""


def check_internals(
    version_of: Callable[[str], str] = metadata.version,
) -> InternalsCheck:
    """Say whether the installed xdist/execnet are inside the tested range."""
    for dist, (low, high) in TESTED.items():
        try:
            found = version_of(dist)
        except metadata.PackageNotFoundError:
            return InternalsCheck(False, f"{dist} is not installed")
        if not low <= _parse(found) < high:
            tested = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
            return InternalsCheck(
                False,
                f"{dist} {found} is outside the tested range {tested}; "
                "xdist scheduling, warm workers and scaling are off "
                f"(install '{dist}{tested}' to turn them on)",
            )
    return InternalsCheck(True)


def distributing(config: Any) -> bool:
    """xdist will run this session on workers (read after xdist turned ``-n`` into --tx)."""
    return (
        config.pluginmanager.hasplugin("xdist")
        and bool(config.getoption("tx", None))
        and not config.getoption("collectonly", False)
    )


def starting_workers(config: Any) -> int:
    """How many workers xdist starts this session with (0: it does not distribute)."""
    if not distributing(config):
        return 0
    from xdist.workermanage import parse_tx_spec_config

    return len(parse_tx_spec_config(config))


def dsession(config: Any) -> Any:
    """xdist's ``DSession`` of this run (None: xdist does not distribute it).

    The one place that looks it up: the features that drive xdist (the scheduler's crash
    reruns, the farm's hand-off, the swarm) get it from here.
    """
    return config.pluginmanager.getplugin("dsession")
