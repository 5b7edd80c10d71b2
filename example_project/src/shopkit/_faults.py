"""Planted faults for demos and benchmarks, switched on by EXAMPLE_FAULTS.

EXAMPLE_FAULTS is a comma-separated list of tokens (blanks around them are
ignored); unset or empty means no faults, and the whole suite passes.

    fail=<substring>  every test whose node id contains <substring> fails
                      (repeatable)
    bug=<module>      shopkit.<module> misbehaves, so the tests of that module
                      fail through their own assertions (repeatable)
    leak              tests/test_catalog.py::test_cache_warmup_large keeps
                      ~200 MB alive after it ends
    crash             tests/test_inventory.py::test_ledger_snapshot_roundtrip
                      ends its own process with os._exit(3)
    new               tests/test_pricing.py gains a new test, which fails

This module is the only place that reads the variable: library modules ask
`bug(name)`, the test suite reads `ACTIVE`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "EXAMPLE_FAULTS"
MODULES = (
    "cart",
    "catalog",
    "demand",
    "inventory",
    "money",
    "pricing",
    "replenishment",
    "reports",
    "supplier",
    "tax",
)
FLAGS = ("leak", "crash", "new")


@dataclass(frozen=True)
class Faults:
    """The faults switched on for this process."""

    fail: tuple[str, ...] = ()
    bugs: frozenset[str] = frozenset()
    leak: bool = False
    crash: bool = False
    new: bool = False


def parse(text: str) -> Faults:
    """Parse an EXAMPLE_FAULTS value; raise ValueError on any bad token."""
    fail: list[str] = []
    bugs: set[str] = set()
    flags: set[str] = set()
    for token in (part.strip() for part in text.split(",")):
        if not token:
            continue
        name, _, value = token.partition("=")
        if name == "fail" and value:
            fail.append(value)
        elif name == "bug" and value in MODULES:
            bugs.add(value)
        elif token in FLAGS:
            flags.add(token)
        else:
            raise ValueError(
                f"{ENV_VAR}: bad token {token!r}; allowed tokens are fail=<substring>, "
                f"bug=<module> (module: {', '.join(MODULES)}), {', '.join(FLAGS)}"
            )
    return Faults(
        fail=tuple(fail),
        bugs=frozenset(bugs),
        leak="leak" in flags,
        crash="crash" in flags,
        new="new" in flags,
    )


ACTIVE = parse(os.environ.get(ENV_VAR, ""))


def bug(module: str) -> bool:
    """Whether EXAMPLE_FAULTS plants a bug in shopkit.<module>."""
    return module in ACTIVE.bugs
