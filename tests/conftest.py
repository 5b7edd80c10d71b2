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

#: the farm's fixtures (a tiny project, real worker processes, running farms) for every
#: folder whose tests need them: e2e, farm_server, shadowfarm_wire; and the in-process
#: API server of the fast tier (farm_server, farm, cli)
pytest_plugins = ["tests.farm_fixtures", "tests.apptools"]
