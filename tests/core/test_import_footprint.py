"""What loading the plugin imports: every run and every xdist worker pays for it at start-up.

Each check runs in a fresh interpreter, so modules imported by other tests do not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: what the plugin module, an xdist worker's part and the settings may not pull in
CONTROLLER_ONLY = frozenset(
    {
        "sqlite3",
        "pytest_shadowfarm.history.store",
        "pytest_shadowfarm.priority.impact",
        "pytest_shadowfarm.priority.order",
        "pytest_shadowfarm.priority.score",
        "pytest_shadowfarm.swarm.controller",
        "pytest_shadowfarm.session",
    }
)


def _imported_after(code: str) -> set[str]:
    # Without coverage's subprocess measurement (the fast tier runs under it): coverage
    # imports modules of its own (sqlite3) into the interpreter being looked at.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run(
        [sys.executable, "-c", f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import pytest_shadowfarm.plugin",
        "import pytest_shadowfarm.plugin, pytest_shadowfarm.sched.plugin, "
        "pytest_shadowfarm.swarm.plugin",
    ],
    ids=["plugin", "worker"],
)
def test_loading_the_plugin_imports_no_controller_module(code: str) -> None:
    imported = _imported_after(code)
    assert not imported & CONTROLLER_ONLY


def test_the_priority_package_imports_a_module_on_first_use_of_its_names() -> None:
    assert "pytest_shadowfarm.priority.impact" not in _imported_after(
        "import pytest_shadowfarm.priority"
    )
    # In a fresh interpreter too: an in-process pytester run (tests/test_plugin.py) drops
    # the submodules it imported, and a later import would make a second module object.
    imported = _imported_after(
        "from pytest_shadowfarm import priority\n"
        "from pytest_shadowfarm.priority import analyze_changes\n"
        "from pytest_shadowfarm.priority.impact import analyze_changes as direct\n"
        "assert analyze_changes is direct\n"
        "assert priority.analyze_changes is direct"
    )
    assert "pytest_shadowfarm.priority.impact" in imported


def test_an_xdist_controller_that_does_not_scale_imports_no_psutil() -> None:
    imported = _imported_after(
        "import pytest_shadowfarm.plugin, pytest_shadowfarm.session, "
        "pytest_shadowfarm.swarm.controller"
    )
    assert "psutil" not in imported


def test_every_public_name_of_the_priority_package_resolves() -> None:
    import pytest_shadowfarm.priority as priority

    for name in priority.__all__:
        assert getattr(priority, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        priority.nothing_here  # noqa: B018


def test_the_history_package_imports_its_store_on_first_use() -> None:
    assert "sqlite3" not in _imported_after("import pytest_shadowfarm.history")
    from pytest_shadowfarm import history
    from pytest_shadowfarm.history.store import HistoryStore

    assert history.HistoryStore is HistoryStore


def test_a_controller_that_does_not_scale_imports_no_swarm_policy() -> None:
    """The controller reads each report's usage through the swarm package; the policy
    (the scaling decisions) comes in only when a name of it is asked for."""
    assert "pytest_shadowfarm.swarm.policy" not in _imported_after(
        "import pytest_shadowfarm.plugin, pytest_shadowfarm.session"
    )
    import pytest_shadowfarm.swarm as swarm
    from pytest_shadowfarm.swarm.policy import decide

    assert swarm.decide is decide
    for name in swarm.__all__:
        assert getattr(swarm, name) is not None, name
