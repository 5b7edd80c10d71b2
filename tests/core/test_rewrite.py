"""The plugin's own modules are imported without pytest's assertion rewriting."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.assertion import assertstate_key
from _pytest.assertion.rewrite import AssertionRewritingHook

from pytest_shadowfarm.rewrite import skip_own_modules

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import sys


def test_our_feature_modules_are_not_rewritten():
    ours = {
        name: type(module.__loader__).__name__
        for name, module in sys.modules.items()
        if name.startswith("pytest_shadowfarm.") and getattr(module, "__loader__", None)
    }
    assert "pytest_shadowfarm.session" in ours  # imported when the plugin configured
    assert ours["pytest_shadowfarm.session"] != "AssertionRewritingHook"


def test_the_projects_own_tests_still_are():
    assert type(sys.modules[__name__].__loader__).__name__ == "AssertionRewritingHook"
    x = [1, 2]
    assert x == [1, 3]
"""


def test_a_run_imports_our_modules_as_they_are_and_still_rewrites_the_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checkout on sys.path: its metadata lists every module, as an installed wheel's
    # does, and pytest marks them all for rewriting (an editable install lists none).
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_check=CHECK)
    result = pytester.runpytest_subprocess("-p", "shadowfarm", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([r".*assert \[1, 2\] == \[1, 3\]", r".*At index 1 diff: 2 != 3"])


def test_our_packages_are_unmarked_and_the_others_kept(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    hook = AssertionRewritingHook(config)
    hook.mark_rewrite("pytest_shadowfarm", "farm_server", "xdist")
    state = config.stash[assertstate_key]
    assert hook._is_marked_for_rewrite("pytest_shadowfarm.session", state)

    assert skip_own_modules(meta_path=[object(), hook]) is True

    assert not hook._is_marked_for_rewrite("pytest_shadowfarm.session", state)
    assert not hook._is_marked_for_rewrite("farm_server.worker", state)
    assert hook._is_marked_for_rewrite("xdist.remote", state)


def test_without_pytests_hook_nothing_is_changed() -> None:
    assert skip_own_modules(meta_path=[object()]) is False
