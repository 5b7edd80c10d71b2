"""Memory sizes as people write them ("600M", "1.5GiB", "1073741824") and as we print them.

Units are binary (K = KiB = 1024 bytes), as in systemd's ``MemoryMax=``, Docker's
``--memory`` and the JVM's ``-Xmx``: the places a memory limit is usually written.
"""

from __future__ import annotations

import math
import re

from pytest_shadowfarm.errors import ConfigError

__all__ = ["format_size", "parse_size", "size_bytes"]

_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(I?B?)\s*$", re.IGNORECASE)


def size_bytes(text: str) -> int:
    """Bytes in ``text``; ValueError saying what a size looks like when it is not one.

    >>> size_bytes("600M"), size_bytes("1.5GiB"), size_bytes("4096")
    (629145600, 1610612736, 4096)
    """
    match = _SIZE.match(text)
    if match is None or (match.group(3).upper() == "I" and not match.group(2)):
        msg = (
            f"{text!r} is not a memory size; give bytes or a number with a unit"
            " K, M, G or T (binary: 1K = 1024 bytes), e.g. 600M, 1.5GiB or 2G"
        )
        raise ValueError(msg)
    number, unit = float(match.group(1)), match.group(2).upper()
    value = number * 1024 ** _UNITS[unit]
    if not math.isfinite(value) or value < 1:
        msg = f"{text!r} is not a usable memory limit; give a positive size, e.g. 600M"
        raise ValueError(msg)
    return int(value)


def parse_size(text: str, *, source: str = "--sf-memory-limit") -> int:
    """:func:`size_bytes`, with a :class:`ConfigError` naming ``source`` and the fix."""
    try:
        return size_bytes(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def format_size(n: float) -> str:
    """``n`` bytes for people: "612 KiB", "9.8 MiB", "1.0 GiB" (a sign for negatives)."""
    sign, n = ("-" if n < 0 else ""), abs(n)
    for unit, power in (("GiB", 3), ("MiB", 2), ("KiB", 1)):
        scaled = n / 1024**power
        if scaled >= 1:
            text = f"{scaled:.1f}" if scaled < 100 else f"{scaled:.0f}"
            return f"{sign}{text} {unit}"
    return f"{sign}{n:.0f} B"
