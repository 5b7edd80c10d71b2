"""The warm worker's cache of assertion-rewritten code: reused only for the same source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.assertion import rewrite

from farm_server.rewrite_cache import RewriteCache

TEST = "def test_it():\n    x = {value}\n    assert x == 1\n"


class Config:
    """Stands for pytest's config: the rewrite reads one ini value."""

    def __init__(self, pass_hook: bool = False) -> None:
        self.pass_hook = pass_hook

    def getini(self, name: str) -> Any:
        assert name == "enable_assertion_pass_hook"
        return self.pass_hook


@pytest.fixture
def cache() -> Iterator[RewriteCache]:
    cache = RewriteCache()
    assert cache.install()
    yield cache
    cache.uninstall()


def outcome(code: Any) -> str:
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    try:
        namespace["test_it"]()
    except AssertionError as exc:
        return f"failed: {exc}"
    return "passed"


class TestRewriteCache:
    def test_the_same_source_gets_the_same_code_object(self, cache, tmp_path):
        """The second rewrite of an unchanged file is a hit: no parse, no compile."""
        fn = tmp_path / "test_a.py"
        fn.write_text(TEST.format(value=1))
        first = rewrite._rewrite_test(fn, Config())
        second = rewrite._rewrite_test(fn, Config())
        assert second[1] is first[1]
        assert cache.stats() == {"modules": 1, "hits": 1, "misses": 1}

    def test_a_changed_source_is_rewritten_and_runs_its_new_code(self, cache, tmp_path):
        """Stale code is impossible: any other bytes are compiled afresh."""
        fn = tmp_path / "test_a.py"
        fn.write_text(TEST.format(value=1))
        assert outcome(rewrite._rewrite_test(fn, Config())[1]) == "passed"
        fn.write_text(TEST.format(value=2))  # same size, maybe the same mtime
        code = rewrite._rewrite_test(fn, Config())[1]
        assert outcome(code).startswith("failed: assert 2 == 1")
        assert cache.stats()["hits"] == 0

    def test_the_assertion_pass_hook_setting_is_part_of_the_key(self, cache, tmp_path):
        """Code rewritten without the pass hook is not reused for a run that enables it."""
        fn = tmp_path / "test_a.py"
        fn.write_text(TEST.format(value=1))
        rewrite._rewrite_test(fn, Config(pass_hook=False))
        rewrite._rewrite_test(fn, Config(pass_hook=True))
        assert cache.stats()["hits"] == 0

    def test_uninstall_puts_pytest_s_function_back(self, tmp_path: Path):
        """Outside a warm worker nothing stays patched."""
        original = rewrite._rewrite_test
        cache = RewriteCache()
        cache.install()
        assert rewrite._rewrite_test == cache.rewrite
        cache.uninstall()
        assert rewrite._rewrite_test is original
