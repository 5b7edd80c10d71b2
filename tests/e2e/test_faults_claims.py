"""A claim whose client left before the answer gives its workers back, still warm."""

from __future__ import annotations

import json
import socket
import time

import pytest

from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow


def abandoned_claim(farm, profile) -> bytes:
    """POST a claim and half-close at once, as a client whose timeout fired does."""
    host, port = farm.url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"profile": profile.to_dict(), "count": 1}).encode()
    head = (
        f"POST /api/workers/claim HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {farm.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_claim_abandoned_by_its_client_returns_its_worker(start_farm, farm_project):
    """The worker goes back to warm at once (not ended after claim_timeout_s)."""
    farm = start_farm(default_min_warm=1, default_max_warm=1)
    profile = current_profile(str(farm_project), ["idna"])
    farm.claim(profile, 1)  # registers the profile; the farm warms one worker
    farm.wait_status(lambda s: counts(s, profile.key).get("warm", 0) == 1, "a warm worker")
    warm_id = [w["id"] for w in farm.status()["workers"] if w["state"] == "warm"]
    answer = abandoned_claim(farm, profile)
    assert b'"workers"' not in answer  # nothing handed to a client that is gone
    time.sleep(0.5)
    status = farm.status()
    assert counts(status, profile.key).get("claimed", 0) == 0
    assert [w["id"] for w in status["workers"] if w["state"] == "warm"] == warm_id
    # and a real client gets that very worker
    assert [w["id"] for w in farm.claim(profile, 1)["workers"]] == warm_id


def test_old_profiles_are_forgotten(tmp_path):
    """Retired or unclaimed for 30 days: gone from the store (a restart restores none)."""
    from farm_server.pool import ProfileEntry
    from farm_server.store import PROFILE_MAX_AGE_S, FarmStore

    store = FarmStore.open(tmp_path / "farm.sqlite")
    now = 1_000_000_000.0
    old = now - PROFILE_MAX_AGE_S - 1
    fresh = ProfileEntry(current_profile("/p/fresh"), registered=now)
    idle = ProfileEntry(current_profile("/p/idle"), registered=old, last_claim=old)
    retired = ProfileEntry(current_profile("/p/retired"), registered=now, retired=old)
    for entry in (fresh, idle, retired):
        store.save_profile(entry)
    assert store.prune_profiles(now) == 2
    assert [row["key"] for row in store.load_profiles()] == [fresh.key]
    store.close()
