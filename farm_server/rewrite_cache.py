"""A warm worker keeps the rewritten code of the test modules its shadow run collected.

Most of a collection is pytest's assertion rewriting: parse, rewrite, compile every test
module and conftest (on attrs' suite 3.7 s of a 5.1 s collection). pytest caches the
result in ``__pycache__``, but not when ``PYTHONDONTWRITEBYTECODE`` is set or the tests
live in a read-only ``site-packages``, and then every run pays it again, a warm worker
included: the purge drops the test modules, so the run collects them afresh.

So the warm worker wraps ``_pytest.assertion.rewrite._rewrite_test`` (what
``AssertionRewritingHook.exec_module`` calls when it has no pyc) before its shadow run,
and remembers each result under the file's path, the hash of the exact source bytes
it compiled and the one config value the rewrite reads (``enable_assertion_pass_hook``).
In the run, a module whose source has the same hash gets the same code object; any
other source is rewritten as usual. The module itself is still executed afresh in the
run's session (its fixtures, its imports of project code): only the compile is reused,
so a changed test file, conftest or project module always runs its new code.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["RewriteCache"]

Rewrite = Callable[[Path, Any], tuple[Any, types.CodeType]]


def _pass_hook(config: Any) -> bool:
    try:
        return bool(config.getini("enable_assertion_pass_hook"))
    except (AttributeError, ValueError):
        return False


class RewriteCache:
    """Rewritten code objects by (path, source hash, pass-hook flag)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes, bool, tuple[Any, types.CodeType]]] = {}
        self.hits = 0
        self.misses = 0
        self._original: Rewrite | None = None

    def install(self) -> bool:
        """Wrap pytest's rewrite function in this process; False if pytest has none."""
        try:
            from _pytest.assertion import rewrite
        except ImportError:
            return False
        original = getattr(rewrite, "_rewrite_test", None)
        if not callable(original):
            return False
        self._original = original
        rewrite._rewrite_test = self.rewrite
        return True

    def uninstall(self) -> None:
        """Put pytest's own function back (tests; a warm worker keeps the cache)."""
        if self._original is not None:
            from _pytest.assertion import rewrite

            rewrite._rewrite_test = self._original  # type: ignore[assignment]
            self._original = None

    def rewrite(self, fn: Path, config: Any) -> tuple[Any, types.CodeType]:
        assert self._original is not None
        path = str(fn)
        source_hash = importlib.util.source_hash(fn.read_bytes())
        flag = _pass_hook(config)
        entry = self.entries.get(path)
        if entry is not None and entry[:2] == (source_hash, flag):
            self.hits += 1
            return entry[2]
        self.misses += 1
        result = self._original(fn, config)
        # pytest >= 9 returns the hash of the bytes it compiled; older ones a stat
        # result, and then the file is read again: a file edited meanwhile is not kept.
        compiled = result[0] if isinstance(result[0], bytes) else None
        if compiled is None:
            compiled = importlib.util.source_hash(fn.read_bytes())
            if compiled != source_hash:
                return result
        self.entries[path] = (compiled, flag, result)
        return result

    def stats(self) -> dict[str, int]:
        return {"modules": len(self.entries), "hits": self.hits, "misses": self.misses}
