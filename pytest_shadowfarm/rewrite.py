"""Our own modules are imported as they are, without pytest's assertion rewriting.

pytest rewrites the asserts of every module of an installed plugin's distribution
(marked when pytest starts), so that a plugin's fixtures fail with rich messages. Ours
hold no fixtures: their asserts guard invariants. Rewritten code is cached only where
pytest may write it; under ``PYTHONDONTWRITEBYTECODE`` (common in CI images) or a
read-only install every process parsed, rewrote and compiled our ~70 modules again:
130 ms of the controller's configure on attrs, and as much in every worker.

The marks are pytest's private state (``AssertionRewritingHook._must_rewrite``, pytest
8.3 to 9.x); where they look different nothing is changed and modules stay rewritten.
Each package's docstring says ``PYTEST_DONT_REWRITE`` (pytest's documented opt-out): a
later ``pytest.main`` in the same process marks the packages again and would otherwise
warn that they were imported before it could rewrite them (an error under
``filterwarnings = error``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _pytest.assertion.rewrite import AssertionRewritingHook

from shadowfarm_wire import OWN_PACKAGES

__all__ = ["skip_own_modules"]


def skip_own_modules(meta_path: Sequence[object] | None = None) -> bool:
    """Unmark our packages in pytest's rewriting hook; whether a hook was found."""
    for finder in sys.meta_path if meta_path is None else meta_path:
        if not isinstance(finder, AssertionRewritingHook):
            continue
        marks = getattr(finder, "_must_rewrite", None)
        cache = getattr(finder, "_marked_for_rewrite_cache", None)
        if not isinstance(marks, set) or not isinstance(cache, dict):
            return False
        marks.difference_update(OWN_PACKAGES)
        for name in [n for n in cache if n.partition(".")[0] in OWN_PACKAGES]:
            del cache[name]
        return True
    return False
