"""Posting run telemetry to the farm: off the main thread, bounded, one warning on failure."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pytest_shadowfarm.swarm.farmlink import FarmTelemetry, client_poster, run_snapshot

WAIT_S = 10.0


class TestRunSnapshot:
    def test_the_run_each_worker_and_each_event_are_one_sample(self) -> None:
        """kind run / worker / event, stamped with the time; events are kept whole."""
        event = {"t": 1.0, "kind": "scale", "from": 1, "to": 3}
        samples = run_snapshot(
            t=2.5, run={"workers": 3}, workers=[{"worker": "gw0"}], events=[event]
        )
        assert samples == [
            {"kind": "run", "t": 2.5, "workers": 3},
            {"kind": "worker", "t": 2.5, "worker": "gw0"},
            {"kind": "event", "event": event},
        ]


class TestClientPoster:
    def test_a_public_post_method_is_preferred(self) -> None:
        """A client with post_telemetry gets the body through it."""
        got: list[Any] = []

        class Client:
            def post_telemetry(self, body: Any) -> None:
                got.append(body)

        client_poster(Client())({"samples": []})
        assert got == [{"samples": []}]

    def test_otherwise_the_route_goes_through_the_clients_request(self) -> None:
        """POST /api/swarm/telemetry with the client's own request method."""
        got: list[Any] = []

        class Client:
            def _request(self, method: str, path: str, body: Any) -> None:
                got.append((method, path, body))

        client_poster(Client())({"samples": [1]})
        assert got == [("POST", "/api/swarm/telemetry", {"samples": [1]})]


class TestFarmTelemetry:
    def test_snapshots_are_posted_by_the_thread_with_the_claim(self) -> None:
        """Every offered sample reaches the farm, with the run's claim id."""
        bodies: list[dict[str, Any]] = []
        posted = threading.Event()

        def post(body: dict[str, Any]) -> None:
            bodies.append(body)
            posted.set()

        link = FarmTelemetry(post, claim_id="c-1", warn=pytest.fail)
        link.offer([{"kind": "run", "n": 1}])
        assert posted.wait(WAIT_S)
        link.offer([{"kind": "run", "n": 2}])
        link.close(timeout=WAIT_S)
        assert {b["claim_id"] for b in bodies} == {"c-1"}
        assert [s["n"] for b in bodies for s in b["samples"]] == [1, 2]

    def test_a_failing_farm_stops_the_posts_with_one_warning(self) -> None:
        """After the first error nothing more is sent; close() warns once, naming it."""
        calls: list[int] = []
        warnings: list[str] = []

        def post(body: dict[str, Any]) -> None:
            calls.append(1)
            raise OSError("the farm at http://x did not answer within 2s")

        link = FarmTelemetry(post, claim_id=None, warn=warnings.append)
        link.offer([{"kind": "run"}])
        link.close(timeout=WAIT_S)
        link.offer([{"kind": "run"}])
        link.close(timeout=WAIT_S)
        assert calls == [1]
        assert warnings == [
            "swarm telemetry not sent to the farm: the farm at http://x did not answer within 2s"
        ]

    def test_a_hanging_farm_costs_close_no_more_than_its_timeout(self) -> None:
        """close() returns after its timeout even if the post never does."""
        release = threading.Event()
        link = FarmTelemetry(lambda body: release.wait(WAIT_S), claim_id=None, warn=pytest.fail)
        link.offer([{"kind": "run"}])
        link.close(timeout=0.1)
        release.set()
