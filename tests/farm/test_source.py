"""FarmSource: claims from an in-process farm over HTTP, the cold fallbacks, give-backs.

The claimed workers' sockets are opened by tests.apptools.WorkerDoors (the warm worker's
own door), since a claimed worker counts only once it took the hand-off."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from farm_server.farm import Farm
from pytest_shadowfarm.errors import TrustError
from pytest_shadowfarm.farm.client import FarmClient, FarmEndpoint
from pytest_shadowfarm.farm.handoff import WarmSlot
from pytest_shadowfarm.farm.source import FarmSource
from pytest_shadowfarm.run import Run
from pytest_shadowfarm.settings import Settings
from shadowfarm_wire.home import FarmHome
from tests.apptools import Clock, WorkerDoors, make_farm, serve_farm, warm_all


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Gateway:
    def __init__(self, id: str) -> None:
        self.id = id


@pytest.fixture
def home(tmp_path: Path) -> FarmHome:
    return FarmHome(tmp_path / "home")


@pytest.fixture
def farm(home: FarmHome, api_server) -> Iterator[Farm]:
    farm = make_farm(home, Clock())
    with serve_farm(api_server, farm):
        yield farm
    farm.store.close()


@pytest.fixture
def doors(farm: Farm) -> Iterator[WorkerDoors]:
    doors = WorkerDoors(farm)
    yield doors
    doors.close()


@pytest.fixture
def warnings_seen() -> list[str]:
    return []


@pytest.fixture
def make_source(tmp_path: Path, home: FarmHome, warnings_seen: list[str]):
    def make(farm: str) -> FarmSource:
        settings = Settings(
            rootdir=tmp_path, history=tmp_path / "h.db", farm=farm, farm_home=home.root
        )
        run = Run(settings, warn=warnings_seen.append)
        return FarmSource(run, str(tmp_path / "project"), env={})

    return make


def count_releases(source: FarmSource) -> list[str]:
    """Wrap the source's client so that each release it sends is recorded."""
    assert source.client is not None
    sent: list[str] = []
    release = source.client.release

    def spy(worker_id: str, ending: Any = None) -> None:
        sent.append(worker_id)
        release(worker_id, ending)

    source.client.release = spy  # type: ignore[method-assign]
    return sent


class TestReserve:
    def test_no_worker_wanted_asks_nothing(self, make_source):
        """reserve(0) is 0 without looking for a farm."""
        source = make_source("auto")
        assert source.reserve(0) == 0
        assert source.home is None

    def test_without_a_running_farm_the_run_goes_cold(self, make_source, warnings_seen):
        """auto and no daemon: 0 reserved, a header line, no warning."""
        source = make_source("auto")
        assert source.reserve(2) == 0
        assert source.header == "shadowfarm: no farm running; cold workers"
        assert warnings_seen == []

    def test_an_unreachable_farm_costs_one_warning(self, make_source, home, warnings_seen):
        """A farm URL that refuses connections: 0 reserved, a warning, the header says so."""
        home.create().ensure_token()  # the home to check that farm with
        url = closed_port_url()
        source = make_source(url)
        assert source.reserve(3) == 0
        assert warnings_seen == [
            f"farm not used, workers start cold: the farm at {url} is not reachable "
            "(ConnectionRefusedError)"
        ]
        assert source.header == "shadowfarm: farm unavailable; 3 cold workers"
        assert source.client is None

    def test_a_first_claim_registers_the_profile(self, make_source, farm):
        """A new profile: nothing warm yet, the header says the farm warms it now."""
        source = make_source(farm.url)
        assert source.reserve(2) == 0
        assert source.claim is not None
        assert source.claim.registered
        assert source.header == (
            "shadowfarm: 0 warm workers (farm), 2 cold; "
            f"new profile {source.claim.profile_key}, the farm warms it now"
        )
        assert list(farm.pool.profiles) == [source.claim.profile_key]

    def test_a_partial_claim_reserves_what_came(self, make_source, farm, doors):
        """One warm worker for two asked: 1 reserved, a farm_claim event with the numbers."""
        make_source(farm.url).reserve(1)
        [warm_id] = warm_all(farm)
        doors.open(warm_id)
        source = make_source(farm.url)
        assert source.reserve(2) == 1
        assert [slot.id for slot in source.claimed] == [warm_id]
        assert source.header == "shadowfarm: 1 warm workers (farm), 1 cold"
        [event] = source.run.events.of("farm_claim")
        assert (event["requested"], event["granted"]) == (2, 1)
        [hello] = doors.admitted
        assert (hello["id"], hello["profile"]) == ("gw0", source.claim.profile_key)
        source.release_all()  # as at the end of the run: the unused connection is closed

    def test_a_claimed_worker_that_refuses_the_hand_off_is_not_counted(
        self, make_source, farm, warnings_seen
    ):
        """A warm worker nobody answers for: 0 reserved, a warning, given back at once."""
        make_source(farm.url).reserve(1)
        [warm_id] = warm_all(farm)
        source = make_source(farm.url)
        assert source.reserve(1) == 0
        assert source.header == "shadowfarm: 0 warm workers (farm), 1 cold"
        assert warnings_seen[-1].startswith(f"farm worker {warm_id} could not be handed over")
        assert (source.claimed, farm.pool.workers[warm_id].released is not None) == ([], True)

    def test_a_socket_outside_the_farms_home_is_not_connected(self, make_source, farm, doors):
        """A claim naming a socket outside the home's sockets directory: no hand-off."""
        make_source(farm.url).reserve(1)
        [warm_id] = warm_all(farm)
        doors.open(warm_id)
        source = make_source(farm.url)
        source.home = FarmHome(farm.home.root.parent / "elsewhere").create()
        slot = WarmSlot(warm_id, farm.pool.workers[warm_id].socket, "t")
        with pytest.raises(TrustError, match="not in the farm's sockets directory"):
            source.connect(slot, "gw0")
        assert doors.admitted == []


class TestGivingBack:
    def test_a_released_worker_is_given_back_once(self, make_source, farm, doors):
        """release() of a handed-over worker tells the farm once; again, nothing is sent."""
        make_source(farm.url).reserve(1)
        [warm_id] = warm_all(farm)
        doors.open(warm_id)
        source = make_source(farm.url)
        source.reserve(1)
        sent = count_releases(source)
        source.handed_over(Gateway("gw0"), source.claimed[0])
        source.release("gw0")
        source.lost("gw0", "crashed")
        assert sent == [warm_id]
        assert farm.pool.workers[warm_id].released is not None
        assert source.claimed == []

    def test_release_all_gives_back_what_was_never_handed_over(self, make_source, farm, doors):
        """At the end of the run, every claimed worker not yet released goes back."""
        make_source(farm.url).reserve(1)
        [warm_id] = warm_all(farm)
        doors.open(warm_id)
        source = make_source(farm.url)
        source.reserve(1)
        sent = count_releases(source)
        source.release_all()
        assert (sent, source.claimed) == ([warm_id], [])

    def test_a_failed_handoff_warns_and_gives_the_slot_back(
        self, make_source, farm, warnings_seen, doors
    ):
        """A warm worker that could not be connected: a warning, an event, a release."""
        make_source(farm.url).reserve(1)
        doors.open(*warm_all(farm))
        source = make_source(farm.url)
        source.reserve(1)
        sent = count_releases(source)
        slot = source.claimed[0]
        source.handoff_failed(slot, OSError("refused"))
        assert warnings_seen[-1] == (
            f"farm worker {slot.id} could not be handed over (refused); a cold worker replaces it"
        )
        assert source.run.events.of("farm_handoff_failed")[0]["worker"] == slot.id
        assert sent == [slot.id]

    def test_a_farm_gone_at_release_stops_the_give_back(self, make_source):
        """With the farm gone, the first failed release ends the give-back quietly."""
        source = make_source("auto")
        source.client = FarmClient(FarmEndpoint(closed_port_url(), None), timeout=1.0)
        source.claimed = [WarmSlot("w-1", "/s1", "t"), WarmSlot("w-2", "/s2", "t")]
        sent = count_releases(source)
        source.release_all()
        assert (sent, source.claimed) == (["w-1"], [])


class TestClaimOne:
    def test_no_claim_before_the_run_claimed(self, make_source):
        """Without a client (no farm at the start), a late worker starts cold."""
        assert make_source("auto").claim_one() is None

    def test_a_warm_worker_for_a_late_start(self, make_source, farm):
        """A mid-run claim returns a warm worker and keeps it among the claimed."""
        source = make_source(farm.url)
        source.reserve(1)
        [warm_id] = warm_all(farm)
        slot = source.claim_one()
        assert slot is not None
        assert slot.id == warm_id
        assert source.claimed == [slot]
        assert source.claim_one() is None  # none warm now; the farm may be asked again
        assert source.more_allowed

    def test_one_failure_stops_asking_for_the_run(self, make_source, farm, warnings_seen):
        """A farm that fails a mid-run claim is not asked again in this run."""
        source = make_source(farm.url)
        source.reserve(1)
        url = closed_port_url()
        source.client = FarmClient(FarmEndpoint(url, farm.token), timeout=1.0)
        assert source.claim_one() is None
        assert source.more_allowed is False
        assert warnings_seen[-1].startswith("farm not asked again in this run: the farm at")
        calls: list[Any] = []
        source.client.claim = lambda *a, **k: calls.append(a)  # type: ignore[method-assign]
        assert source.claim_one() is None
        assert calls == []


class TestEndings:
    def test_a_replaced_worker_teaches_the_farm_its_profile_s_max_age(
        self, make_source, farm, doors
    ):
        """A farm worker replaced for memory after 40 tests goes back with that ending; the
        farm keeps it and the next claim of the profile gets a max age below 40 tests."""
        make_source(farm.url).reserve(1)
        [warm_id] = warm_all(farm)
        doors.open(warm_id)
        source = make_source(farm.url)
        assert source.reserve(1) == 1
        assert not source.max_age().limited
        source.handed_over(Gateway("gw0"), source.claimed[0])
        run = source.run
        run.workers.ready("gw0", warm=True, source="farm")
        for i in range(40):
            run.recorder.started(f"t.py::test_{i}", float(i), "gw0")
        run.workers.drain("gw0", ended="replaced", reason="memory would reach", cause="memory")
        run.workers.down("gw0")
        source.release_all()
        [stored] = farm.store.endings(source.claim.profile_key)
        assert (stored.worker_id, stored.ending.ended, stored.ending.cause) == (
            warm_id,
            "replaced",
            "memory",
        )
        assert (stored.ending.tests, stored.ending.reason) == (40, "memory would reach")
        later = make_source(farm.url)
        later.reserve(1)
        assert later.max_age().tests == 40
        assert "1 sick workers (memory)" in later.max_age().basis

    def test_a_crashed_worker_feeds_the_profile_s_history(self, make_source, farm, doors):
        """lost() of a crashed farm worker tells the farm it crashed."""
        make_source(farm.url).reserve(1)
        [warm_id] = warm_all(farm)
        doors.open(warm_id)
        source = make_source(farm.url)
        source.reserve(1)
        source.handed_over(Gateway("gw0"), source.claimed[0])
        source.run.workers.ready("gw0", warm=True, source="farm")
        source.run.workers.down("gw0", crashed=True, reason="Not properly terminated")
        source.lost("gw0", "Not properly terminated")
        [stored] = farm.store.endings(source.claim.profile_key)
        assert (stored.ending.ended, stored.ending.cause) == ("crashed", "crash")
        learned = farm.learned(source.claim.profile_key)
        assert (learned.sick, learned.crashes) == (1, 1)

    def test_a_worker_never_handed_over_goes_back_without_an_ending(self, make_source, farm, doors):
        """A claimed worker the run never used says nothing about the profile."""
        make_source(farm.url).reserve(1)
        doors.open(*warm_all(farm))
        source = make_source(farm.url)
        source.reserve(1)
        source.release_all()
        assert farm.store.endings(source.claim.profile_key) == []

    def test_the_run_s_cold_workers_are_reported_for_the_profile_too(
        self, make_source, farm, doors
    ):
        """At the end, the endings of the workers the farm did not provide go to the
        profile (once); a worker that never started its session is left out."""
        make_source(farm.url).reserve(1)
        doors.open(*warm_all(farm))
        source = make_source(farm.url)
        source.reserve(1)
        run = source.run
        run.workers.ready("gw3")
        for i in range(25):
            run.recorder.started(f"t.py::test_{i}", float(i), "gw3")
        run.workers.drain("gw3", ended="replaced", reason="memory would reach", cause="memory")
        run.workers.down("gw3")
        run.workers.asked("gw4")  # asked for, never started
        source.release_all()
        source.release_all()
        [stored] = farm.store.endings(source.claim.profile_key)
        assert (stored.worker_id, stored.ending.ended, stored.ending.tests) == ("", "replaced", 25)
        assert farm.learned(source.claim.profile_key).max_age.tests == 25
