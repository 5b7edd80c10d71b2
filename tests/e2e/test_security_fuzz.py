"""The API fuzz: schemathesis against the farm's own OpenAPI document finds no server error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from farm_server import daemon
from shadowfarm_wire.home import FarmHome
from tests.farmtools import RunningFarm, gone, wait_until

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFarm]:
    home = FarmHome(tmp_path_factory.mktemp("fuzz") / "home")
    info, _ = daemon.start(home)
    assert info.url is not None
    running = RunningFarm(home, info.url, info.pid, home.read_token() or "")
    yield running
    daemon.stop(home)
    assert wait_until(lambda: gone(info.pid), 30)


def test_no_request_makes_a_server_error(farm: RunningFarm) -> None:
    """Any body, path or query the schema allows, per route: never a 5xx.

    Hypothesis strategies from schemathesis's Python API (its pytest plugin does not
    load under this pytest), one ``@given`` per operation of the document.
    """
    auth = {"Authorization": f"Bearer {farm.token}"}
    schema = schemathesis.openapi.from_url(farm.url + "/openapi.json", headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    failures: list[Any] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers=auth, timeout=10)
            # /api/health may say 503 on purpose (a full disk); nothing else may.
            if response.status_code >= 500 and case.path != "/api/health":
                failures.append((case.method, case.formatted_path, response.status_code))
                raise AssertionError(failures[-1], response.text[:500])

        check()
    assert not failures
