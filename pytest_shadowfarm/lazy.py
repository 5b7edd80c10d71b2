"""Package attributes imported from their module on first use (PEP 562).

A package that re-exports its modules' names imports all of them with itself; the
plugin's start-up needs a few names, not every module (see tests/test_import_footprint.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: name -> the submodule that defines it.

    The first lookup imports the submodule and stores the value in the package, so later
    lookups do not come here. A name missing from ``exports`` is an AttributeError.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
