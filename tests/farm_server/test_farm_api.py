"""The farm API as a new user meets it: /docs offline, recent telemetry readable."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from farm_server import daemon
from shadowfarm_wire.home import FarmHome
from tests.farmtools import RunningFarm, gone, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFarm]:
    home = FarmHome(tmp_path_factory.mktemp("docs") / "home")
    info, _ = daemon.start(home)
    assert info.url is not None
    yield RunningFarm(home, info.url, info.pid, home.read_token() or "")
    daemon.stop(home)
    assert wait_until(lambda: gone(info.pid), 30)


class TestDocs:
    def test_docs_is_one_page_that_loads_nothing_from_elsewhere(self, farm) -> None:
        """/docs is served to a client with the token, and every src/href it has points at
        the farm itself; without the token, neither the page nor the document."""
        assert farm.api("GET", "/docs", auth=False).status_code == 401
        assert farm.api("GET", "/openapi.json", auth=False).status_code == 401
        response = farm.api("GET", "/docs")
        assert response.status_code == 200
        assert "text/html" in response.headers["content-type"]
        links = re.findall(r"""(?:src|href)=["']([^"']+)""", response.text)
        assert links == ["/openapi.json"]
        assert "http://" not in response.text
        assert "https://" not in response.text
        assert farm.api("GET", "/openapi.json").status_code == 200


class TestTelemetry:
    def test_get_returns_the_recent_posts_newest_first(self, farm) -> None:
        """POSTed telemetry comes back from GET, newest first, limited by ?limit=."""
        for n in range(3):
            posted = farm.api(
                "POST",
                "/api/swarm/telemetry",
                json={"claim_id": "c1", "worker_id": f"w{n}", "samples": [{"rss_kb": n}]},
            )
            assert posted.status_code == 200
        assert farm.api("GET", "/api/swarm/telemetry", auth=False).status_code == 401
        response = farm.api("GET", "/api/swarm/telemetry?limit=2")
        assert response.status_code == 200
        rows = response.json()["telemetry"]
        assert [row["worker_id"] for row in rows] == ["w2", "w1"]
        assert rows[0]["samples"] == [{"rss_kb": 2}]

    def test_a_bad_limit_is_a_422_naming_it(self, farm) -> None:
        """?limit=0 is refused with the field named."""
        response = farm.api("GET", "/api/swarm/telemetry?limit=0")
        assert response.status_code == 422
        assert "limit" in response.text
