"""Hook specifications pytest-shadowfarm adds to pytest (``pytest_addhooks`` in plugin.py)."""

from __future__ import annotations

import pytest


def pytest_shadowfarm_warmup(config: pytest.Config) -> None:
    """Warm a farm worker before any run claims it.

    Called once in each warm farm worker, during its shadow run, after collection (so a
    hook in any conftest is seen). Import heavy modules, pre-fetch data, fill caches of
    third-party libraries here. The worker then drops every module under the project
    rootdir, so only state held by third-party or stdlib modules survives into the real
    run. An exception is reported in ``shadowfarm farm status``, not raised.
    """


def pytest_shadowfarm_prepared_handoff(config: pytest.Config) -> None:
    """A warm farm worker hands a run the config and collection it prepared for it.

    Called in that worker once the run's ``config.workerinput`` is set, before the
    session-start and collection hooks are replayed for the plugins registered since.
    A plugin that reads ``workerinput`` in ``pytest_configure`` reads it again here.
    """
