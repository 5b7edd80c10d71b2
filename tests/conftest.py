"""Test-suite set-up shared by every test module.

hypothesis is imported here, before any test runs, so that pytester's in-process runs
never import it themselves. pytester removes what an in-process run imported from
``sys.modules`` when the run ends, and the next run imports it again; hypothesis' compiled
extension (``hypothesis._native``, PyO3) loses a reference to ``None`` at each such
re-import. On Python 3.11, where ``None`` is reference-counted, enough of them made the
interpreter abort at exit ("Fatal Python error: none_dealloc", exit code 134) after the
tests had passed, whenever the selected tests did not import hypothesis themselves (e.g.
``pytest tests/core/test_plugin.py tests/core/test_ordering.py``). Imported once, it stays.
"""

from __future__ import annotations

import hypothesis  # noqa: F401 - see the module docstring
import pytest

#: the farm's fixtures (a tiny project, real worker processes, running farms) for every
#: folder whose tests need them: e2e, farm_server, shadowfarm_wire; and the in-process
#: API server of the fast tier (farm_server, farm, cli)
pytest_plugins = ["tests.farm_fixtures", "tests.apptools"]


@pytest.fixture(autouse=True)
def _no_outer_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs a test starts must not inherit this suite's own xdist identity.

    Run with ``-n``, each of these tests is itself inside an xdist worker, and a pytest
    subprocess it starts would see ``PYTEST_XDIST_WORKER=gw1`` in its controller: a
    conftest that tells workers apart by it then takes the controller for a worker.
    """
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
