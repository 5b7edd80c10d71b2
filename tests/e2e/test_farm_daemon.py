"""The farm daemon as a real process: claims, replacement, profiles, orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from farm_server import daemon
from shadowfarm_wire.profile import Profile, current_profile
from tests.farmtools import WAIT_S, counts, gone, slot_of, wait_until

pytestmark = pytest.mark.slow

SHADOW = ["tests/test_lib.py::test_version"]


def warm(n: int, key: str):
    return lambda status: counts(status, key).get("warm", 0) >= n


class TestLifecycle:
    def test_start_is_ready_and_stop_leaves_no_process_but_keeps_the_state(
        self, start_farm, farm_project
    ):
        """start returns a serving farm; stop ends daemon and workers; token and db stay."""
        farm = start_farm()
        profile = current_profile(str(farm_project), ["idna"])
        farm.claim(profile, 2, shadow_tests=SHADOW)
        farm.wait_status(warm(2, profile.key), "two warm workers")
        pids = {farm.pid} | farm.seen_pids
        assert len(pids) == 3
        assert daemon.stop(farm.home) is not None
        assert all(wait_until(lambda p=pid: gone(p), WAIT_S) for pid in pids)
        assert not farm.home.daemon_file.exists()
        assert farm.home.token_file.exists()
        assert farm.home.database.exists()
        assert list(farm.home.sockets.iterdir()) == []

    def test_a_second_start_finds_the_running_farm(self, start_farm):
        """start is idempotent: the running daemon is reported, not a second one started."""
        farm = start_farm()
        info, started = daemon.start(farm.home)
        assert (info.pid, info.url, started) == (farm.pid, farm.url, False)

    def test_the_api_listens_on_loopback(self, start_farm):
        """By default the URL is 127.0.0.1 on a port the kernel picked."""
        assert start_farm().url.startswith("http://127.0.0.1:")

    def test_sigkill_of_the_daemon_leaves_no_worker(self, start_farm, farm_project):
        """Warm and claimed-but-unconnected workers die with a SIGKILLed daemon."""
        farm = start_farm()
        profile = current_profile(str(farm_project), ["idna"])
        farm.claim(profile, 2, shadow_tests=SHADOW)
        farm.wait_status(warm(2, profile.key), "two warm workers")
        assert len(farm.claim(profile, 1)["workers"]) == 1
        workers = set(farm.seen_pids) - {farm.pid}
        farm.status()
        workers |= set(farm.seen_pids) - {farm.pid}
        os.kill(farm.pid, signal.SIGKILL)
        assert wait_until(lambda: gone(farm.pid), WAIT_S)
        assert all(wait_until(lambda p=pid: gone(p), WAIT_S) for pid in workers), workers

    def test_a_crashed_worker_is_replaced_and_its_children_are_swept(
        self, start_farm, farm_project, tmp_path
    ):
        """SIGKILL a warm worker: its orphaned child is killed and a replacement warms."""
        children = tmp_path / "children"
        children.mkdir()
        (farm_project / "tests" / "conftest.py").write_text(
            "import os, subprocess, sys\n"
            "def pytest_shadowfarm_warmup(config):\n"
            "    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
            f"    open(os.path.join({str(children)!r}, str(child.pid)), 'w').close()\n"
        )
        farm = start_farm(default_min_warm=1, default_max_warm=1)
        profile = current_profile(str(farm_project), ["idna"])
        farm.claim(profile, 1, shadow_tests=SHADOW)
        status = farm.wait_status(warm(1, profile.key), "one warm worker")
        (victim,) = status["workers"]
        (child,) = (int(p.name) for p in children.iterdir())
        os.kill(victim["pid"], signal.SIGKILL)
        assert wait_until(lambda: gone(victim["pid"]), WAIT_S)
        assert wait_until(lambda: gone(child), WAIT_S), "the crashed worker's child survived"
        status = farm.wait_status(
            lambda s: (
                [w["state"] for w in s["workers"]] == ["warm"]
                and s["workers"][0]["id"] != victim["id"]
            ),
            "a warm replacement",
        )
        farm.seen_pids.update(int(p.name) for p in children.iterdir())
        assert (farm.home.logs / f"{victim['id']}.log").exists()  # kept for a post-mortem


class TestClaimCycle:
    def test_claim_release_and_replace(self, start_farm, farm_project, open_gateway):
        """Claimed workers serve one session each, exit, and are replaced by warm ones."""
        farm = start_farm()
        profile = current_profile(str(farm_project), ["idna"])
        first = farm.claim(profile, 2, shadow_tests=SHADOW)
        assert (first["registered"], first["workers"]) == (True, [])
        farm.wait_status(warm(2, profile.key), "two warm workers")
        claim = farm.claim(profile, 2)
        ids = [w["id"] for w in claim["workers"]]
        assert len(set(ids)) == 2
        status = farm.status()
        assert counts(status, profile.key)["claimed"] == 2
        for worker in claim["workers"]:
            gateway = open_gateway(slot_of(worker, profile.key), cwd=str(farm_project))
            assert gateway.remote_exec("import os; channel.send(os.getcwd())").receive(WAIT_S) == (
                str(farm_project)
            )
            gateway.exit()
            gateway.join(WAIT_S)
            response = farm.api("POST", f"/api/workers/{worker['id']}/release")
            assert response.status_code == 200
        status = farm.wait_status(
            lambda s: (
                not set(ids) & {w["id"] for w in s["workers"]}
                and counts(s, profile.key)["warm"] == 2
            ),
            "claimed workers gone, two warm replacements",
        )
        assert status["totals"]["claims"] == 2
        assert status["totals"]["hit_rate"] == 0.5
        assert not [i for i in ids if (farm.home.logs / f"{i}.log").exists()]  # tidied

    def test_concurrent_claims_never_share_a_worker(self, start_farm, farm_project):
        """Four claims of one worker each, at once, against four warm workers: four ids."""
        farm = start_farm(default_min_warm=4, default_max_warm=4)
        profile = current_profile(str(farm_project), ["idna"])
        farm.claim(profile, 1, shadow_tests=SHADOW)
        farm.wait_status(warm(4, profile.key), "four warm workers")
        results: list[list[str]] = []

        def claim() -> None:
            results.append([w["id"] for w in farm.claim(profile, 1)["workers"]])

        threads = [threading.Thread(target=claim) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        ids = [i for r in results for i in r]
        assert len(ids) == len(set(ids)) == 4


def _profile_in(env: dict[str, str], rootdir: Path) -> Profile:
    """The profile a worker started with ``env`` computes (a child interpreter)."""
    code = (
        "import json, sys; from shadowfarm_wire.profile import current_profile; "
        "print(json.dumps(current_profile(sys.argv[1], ['idna']).to_dict()))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code, str(rootdir)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=WAIT_S,
    ).stdout
    return Profile.from_dict(json.loads(out))


class TestProfiles:
    def test_installing_a_distribution_rebuilds_the_profile(
        self, start_farm, farm_project, tmp_path
    ):
        """A new distribution on the path: new key, old workers retired, new ones warm."""
        site = tmp_path / "site"
        site.mkdir()
        env = {**os.environ, "PYTHONPATH": str(site)}
        farm = start_farm(env=env)
        before = _profile_in(env, farm_project)
        farm.claim(before, 2, shadow_tests=SHADOW)
        status = farm.wait_status(warm(2, before.key), "two warm workers")
        old = {w["id"] for w in status["workers"]}
        info = site / "sf_fake_dist-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sf-fake-dist\nVersion: 1.0\n")
        after = _profile_in(env, farm_project)
        assert after.key != before.key
        assert farm.claim(after, 2, shadow_tests=SHADOW)["registered"] is True
        status = farm.wait_status(
            lambda s: warm(2, after.key)(s) and not old & {w["id"] for w in s["workers"]},
            "old workers gone, two warm workers of the new profile",
        )
        assert [p["key"] for p in status["profiles"]] == [after.key]
        assert len(farm.claim(after, 2)["workers"]) == 2

    def test_an_injected_distribution_list_is_a_new_profile_that_retires_the_old(
        self, start_farm, farm_project
    ):
        """A client whose distributions differ gets a new profile; the old workers end."""
        farm = start_farm()
        real = current_profile(str(farm_project), ["idna"])
        farm.claim(real, 2, shadow_tests=SHADOW)
        farm.wait_status(warm(2, real.key), "two warm workers")
        upgraded = current_profile(str(farm_project), ["idna"], distributions=[("numpy", "99.0")])
        assert farm.claim(upgraded, 1)["registered"] is True
        # The daemon cannot warm a profile this interpreter does not have: its workers
        # report the mismatch and the profile is retired too; nothing stale stays warm.
        # Retiring a profile drops it from the status at once; its workers are listed
        # until the pool has ended them. The wait is the assertion (it fails the test
        # after WAIT_S): both profiles gone, and no worker of theirs warm or warming.
        farm.wait_status(
            lambda s: (
                not counts(s, real.key)
                and not counts(s, upgraded.key)
                and not [w for w in s["workers"] if w["state"] in ("warm", "warming")]
            ),
            "both profiles retired and none of their workers warm or warming",
        )
