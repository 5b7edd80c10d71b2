"""The pool's bookkeeping and decisions, with a fake launcher and a hand-driven clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from farm_server.config import FarmConfig
from farm_server.pool import FAILURES_BEFORE_BACKOFF, Pool
from farm_server.warming_gate import CLAIM_SETTLE_S
from farm_server.worker import WorkerSpec
from shadowfarm_wire.profile import current_profile

PROFILE = current_profile("/src/proj", distributions=[("numpy", "1")], executable="/py")
UPGRADED = current_profile("/src/proj", distributions=[("numpy", "2")], executable="/py")
OTHER = current_profile("/src/other", distributions=[("numpy", "1")], executable="/py")


@dataclass
class FakeHandle:
    pid: int
    worker_id: str
    pool: Pool
    running: bool = True

    def alive(self) -> bool:
        return self.running

    def terminate(self) -> None:
        if self.running:
            self.running = False
            self.pool.on_exit(self.worker_id, -15)

    kill = terminate

    def wait(self, timeout: float) -> int | None:
        return None if self.running else -15


@dataclass
class FakeLauncher:
    pool: Pool | None = None
    launched: list[WorkerSpec] = field(default_factory=list)
    handles: dict[str, FakeHandle] = field(default_factory=dict)

    def launch(self, spec: WorkerSpec, interpreter: str, on_event: Any, on_exit: Any) -> FakeHandle:
        assert self.pool is not None
        self.launched.append(spec)
        handle = FakeHandle(1000 + len(self.launched), spec.id, self.pool)
        self.handles[spec.id] = handle
        return handle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_pool(clock: Clock, tmp_path: Path):
    def make(**config: Any) -> tuple[Pool, FakeLauncher]:
        launcher = FakeLauncher()
        settings = {"default_min_warm": 2, "default_max_warm": 3, "max_warming": 8}
        settings.update((k, v) for k, v in config.items() if k not in ("idle", "cores"))
        # a quiet 8-core host unless a test says otherwise
        idle = config.pop("idle", lambda: 8.0)
        cores = config.pop("cores", 8)
        pool = Pool(FarmConfig(**settings), launcher, tmp_path, clock=clock, idle=idle, cores=cores)
        launcher.pool = pool
        return pool, launcher

    return make


def ready(pool: Pool, worker_id: str, modules: list[str] = (), ok: bool = True) -> None:  # type: ignore[assignment]
    pool.on_event(worker_id, {"event": "ready", "report": {"ok": ok, "modules": list(modules)}})


def warm_up(pool: Pool, profile: Any) -> None:
    """Register ``profile`` and bring its first workers to warm."""
    pool.register(profile)
    pool.reconcile()
    for worker in pool.live():
        ready(pool, worker.id)


def states(pool: Pool, profile_key: str | None = None) -> list[str]:
    return sorted(w.state for w in pool.live(profile_key=profile_key))


class TestWarming:
    def test_a_first_claim_registers_the_profile_and_gets_nothing_yet(self, make_pool):
        """The first run of a project goes cold; the pool starts warming min_warm workers."""
        pool, launcher = make_pool()
        result = pool.claim(PROFILE, 2)
        assert (result.registered, result.workers) == (True, [])
        pool.reconcile()
        assert states(pool) == ["warming", "warming"]
        assert launcher.launched[0].profile_key == PROFILE.key
        assert launcher.launched[0].rootdir == "/src/proj"

    def test_the_shadow_tests_of_the_claim_reach_the_worker_spec(self, make_pool):
        """The claim's shadow subset and the config's budget and nice go to the worker."""
        pool, launcher = make_pool(shadow_budget_s=2.5, warm_nice=7)
        pool.claim(PROFILE, 1, shadow_tests=["tests/test_a.py::test_fast"])
        pool.reconcile()
        spec = launcher.launched[0]
        assert (spec.shadow_tests, spec.budget_s, spec.nice) == (
            ["tests/test_a.py::test_fast"],
            2.5,
            7,
        )

    def test_the_claims_plugin_options_reach_the_next_warm_ups(self, make_pool):
        """A claim's -p options go to the workers warmed after it; a claim that does not
        say (None, a mid-run claim) keeps them; one that says none clears them."""
        pool, launcher = make_pool(default_min_warm=1, default_max_warm=1)
        pool.claim(PROFILE, 1, plugins=["no:randomly", "xdist"])
        pool.reconcile()
        assert launcher.launched[-1].plugins == ["no:randomly", "xdist"]
        entry = pool.profiles[PROFILE.key]
        pool.claim(PROFILE, 1)
        assert entry.plugins == ["no:randomly", "xdist"]
        pool.claim(PROFILE, 1, plugins=[])
        assert entry.plugins == []

    def test_the_caps_on_processes_and_warm_ups_hold(self, make_pool):
        """max_warming limits concurrent warm-ups; max_processes limits every live worker."""
        pool, _ = make_pool(default_min_warm=5, default_max_warm=5, max_warming=2)
        pool.register(PROFILE)
        pool.reconcile()
        assert states(pool) == ["warming"] * 2
        pool, _ = make_pool(default_min_warm=5, default_max_warm=5, max_processes=3)
        pool.register(PROFILE)
        pool.register(OTHER)
        pool.reconcile()
        assert len(pool.live()) == 3

    def test_a_crash_while_warming_is_replaced_then_backs_off(self, make_pool, clock):
        """Workers dying before ready are replaced, until repeated failures pause spawning."""
        pool, _ = make_pool(default_min_warm=1)
        pool.register(PROFILE)
        for _ in range(FAILURES_BEFORE_BACKOFF):
            pool.reconcile()
            (worker,) = pool.live()
            pool.on_exit(worker.id, 1)
        pool.reconcile()
        assert pool.live() == []
        assert pool.profiles[PROFILE.key].health == "broken"
        clock.now += 6
        pool.reconcile()
        assert states(pool) == ["warming"]


class TestClaims:
    def test_claimed_workers_are_distinct_and_replaced_at_once(self, make_pool):
        """Two claims never share a worker; each claimed worker is replaced by a new one."""
        pool, _ = make_pool()
        warm_up(pool, PROFILE)
        first = pool.claim(PROFILE, 1)
        second = pool.claim(PROFILE, 1)
        third = pool.claim(PROFILE, 1)
        assert len(first.workers) == len(second.workers) == 1
        assert first.workers[0].id != second.workers[0].id
        assert third.workers == []
        pool.reconcile()
        assert states(pool, PROFILE.key) == ["claimed", "claimed", "warming", "warming"]

    def test_replacements_wait_for_spare_cpu_while_a_run_is_testing(self, make_pool, clock):
        """Two claimed workers on a host with no idle core: no warm-up starts, from the
        claim on (the status says why), until a core is spare."""
        idle = [0.3]
        pool, _ = make_pool(idle=lambda: idle[0], cores=2)
        warm_up(pool, PROFILE)
        claimed = pool.claim(PROFILE, 2).workers
        pool.reconcile()  # the claim wakes the supervisor before the run connects
        assert states(pool, PROFILE.key) == ["claimed", "claimed"]
        for worker in claimed:
            pool.on_event(worker.id, {"event": "claimed"})
        clock.now += CLAIM_SETTLE_S
        pool.reconcile()
        assert states(pool, PROFILE.key) == ["claimed", "claimed"]
        assert "2 workers claimed by runs, 0.3 idle cores" in pool.deferred
        idle[0] = 1.5
        pool.reconcile()
        assert states(pool, PROFILE.key) == ["claimed", "claimed", "warming", "warming"]
        assert pool.deferred == ""

    def test_a_claim_restarts_the_cpu_measure_so_the_quiet_before_it_never_counts(
        self, make_pool, clock
    ):
        """A 2-core host was idle until the claim; the run then uses both cores. No
        warm-up starts on the strength of the idle time before the claim: the measure
        restarts at the claim and is read only after CLAIM_SETTLE_S of the run."""
        readings = [2.0]  # what the CPU measure says at its next reading
        calls: list[float] = []

        def idle() -> float:
            calls.append(clock.now)
            return readings[0]

        pool, _ = make_pool(idle=idle, cores=2)
        warm_up(pool, PROFILE)
        claimed_at = clock.now
        pool.claim(PROFILE, 2)
        assert calls[-1] == claimed_at  # the claim restarted the measure
        readings[0] = 0.1  # the run starts: both cores busy
        for step in (0.0, 0.5):
            clock.now = claimed_at + step
            pool.reconcile()
            assert states(pool, PROFILE.key) == ["claimed", "claimed"]
            assert "measuring the CPU they leave idle" in pool.deferred
        assert calls[-1] == claimed_at  # not read before the run had time to show its use
        clock.now = claimed_at + CLAIM_SETTLE_S
        pool.reconcile()
        assert states(pool, PROFILE.key) == ["claimed", "claimed"]
        assert "0.1 idle cores" in pool.deferred

    def test_with_cores_to_spare_for_the_run_replacements_start_at_once(self, make_pool):
        """On 8 cores, two claimed workers and their controller cannot fill the host:
        the replacements start at the claim, as they always did."""
        pool, _ = make_pool(idle=lambda: 6.0, cores=8)
        warm_up(pool, PROFILE)
        pool.claim(PROFILE, 2)
        pool.reconcile()
        assert states(pool, PROFILE.key) == ["claimed", "claimed", "warming", "warming"]
        assert pool.deferred == ""

    def test_released_workers_or_spare_cores_0_let_warm_ups_start(self, make_pool):
        """Once the run released its workers, or with warm_spare_cores=0, nothing waits."""
        for config, release in (({}, True), ({"warm_spare_cores": 0}, False)):
            pool, _ = make_pool(idle=lambda: 0.0, **config)
            warm_up(pool, PROFILE)
            for worker in pool.claim(PROFILE, 2).workers:
                pool.on_event(worker.id, {"event": "claimed"})
                if release:
                    pool.release(worker.id)
            pool.reconcile()
            assert states(pool, PROFILE.key).count("warming") == 2

    def test_the_closest_match_covers_most_of_the_claims_modules(self, make_pool):
        """With two warm workers, the one that warmed scipy goes to a run that imports it."""
        pool, _ = make_pool()
        pool.register(PROFILE)
        pool.reconcile()
        plain, rich = pool.live()
        ready(pool, plain.id, ["numpy"])
        ready(pool, rich.id, ["numpy", "scipy"])
        result = pool.claim(PROFILE, 1, modules=["scipy", "numpy"])
        assert [w.id for w in result.workers] == [rich.id]

    def test_workers_of_another_profile_are_never_handed_out(self, make_pool):
        """A claim only gets workers of its own profile key."""
        pool, _ = make_pool()
        pool.register(OTHER)
        pool.reconcile()
        for worker in pool.live():
            ready(pool, worker.id)
        assert pool.claim(PROFILE, 2).workers == []

    def test_a_claimed_worker_that_never_connects_is_ended(self, make_pool, clock):
        """The claim's client died before connecting: the worker ends after claim_timeout."""
        pool, _ = make_pool(claim_timeout_s=60)
        warm_up(pool, PROFILE)
        (worker,) = pool.claim(PROFILE, 1).workers
        clock.now += 61
        pool.reconcile()
        assert worker.state == "gone"
        assert worker.end_reason == "claimed but never connected"

    def test_a_released_worker_still_running_after_the_grace_is_ended(self, make_pool, clock):
        """Release, then release_grace_s: a worker that did not exit by itself is ended."""
        pool, _ = make_pool(release_grace_s=10)
        warm_up(pool, PROFILE)
        (worker,) = pool.claim(PROFILE, 1).workers
        pool.on_event(worker.id, {"event": "claimed"})
        pool.release(worker.id)
        clock.now += 5
        pool.reconcile()
        assert worker.state == "claimed"
        clock.now += 6
        pool.reconcile()
        assert worker.state == "gone"

    def test_a_released_worker_that_never_connected_ends_at_once(self, make_pool):
        """A run that could not use its claimed worker releases it: no waiting for a grace."""
        pool, _ = make_pool(release_grace_s=1000)
        warm_up(pool, PROFILE)
        (worker,) = pool.claim(PROFILE, 1).workers
        pool.release(worker.id)
        pool.reconcile()
        assert (worker.state, worker.end_reason) == ("gone", "released without being used")

    def test_an_unknown_worker_cannot_be_released(self, make_pool):
        """release() of an id the pool never made returns None."""
        pool, _ = make_pool()
        assert pool.release("w-nope") is None


class TestProfiles:
    def test_a_new_key_of_the_same_project_retires_the_old_profile(self, make_pool):
        """Upgraded distributions: the old profile's unclaimed workers end, claimed ones stay."""
        pool, _ = make_pool()
        warm_up(pool, PROFILE)
        pool.claim(PROFILE, 1)
        result = pool.claim(UPGRADED, 1)
        assert result.registered
        pool.reconcile()
        assert states(pool, PROFILE.key) == ["claimed"]
        assert pool.profiles[PROFILE.key].retired is not None
        assert states(pool, UPGRADED.key) == ["warming", "warming"]

    def test_a_worker_that_finds_another_environment_retires_its_profile(self, make_pool):
        """The 'mismatch' event means the profile can never be warmed again."""
        pool, _ = make_pool()
        pool.register(PROFILE)
        pool.reconcile()
        worker = pool.live()[0]
        pool.on_event(worker.id, {"event": "mismatch", "found": "abc"})
        assert pool.profiles[PROFILE.key].retired is not None

    def test_an_unfit_worker_is_never_offered_and_its_profile_runs_cold(self, make_pool):
        """A report saying the purge could not be made consistent ends the worker, warms
        no replacement, and claims get no workers."""
        pool, launcher = make_pool()
        pool.register(PROFILE)
        pool.reconcile()
        first = pool.live()[0]
        reason = "numpy._core (extension module) would have to be imported again"
        pool.on_event(first.id, {"event": "ready", "report": {"ok": True, "unfit": reason}})
        assert first.state == "gone"
        assert first.end_reason == f"unfit: {reason}"
        assert pool.profiles[PROFILE.key].unfit == reason
        for worker in pool.live():
            ready(pool, worker.id)
        spawned = len(launcher.launched)
        assert pool.claim(PROFILE, 2).workers == []
        pool.reconcile()
        assert len(launcher.launched) == spawned
        assert pool.live() == []

    def test_an_idle_profile_keeps_no_warm_workers(self, make_pool, clock):
        """After idle_ttl_s without a claim the warm workers end and are not replaced."""
        pool, _ = make_pool(idle_ttl_s=100)
        pool.claim(PROFILE, 1)
        pool.reconcile()
        clock.now += 101
        pool.reconcile()
        pool.reconcile()
        assert pool.live() == []

    def test_drain_ends_warm_workers_and_a_claim_brings_them_back(self, make_pool):
        """Drained: nothing warm; the next claim is demand again."""
        pool, _ = make_pool()
        pool.register(PROFILE)
        pool.reconcile()
        assert pool.drain("all") == [PROFILE.key]
        pool.reconcile()
        assert pool.live() == []
        pool.claim(PROFILE, 1)
        pool.reconcile()
        assert states(pool) == ["warming", "warming"]

    def test_scale_by_key_prefix_sets_min_and_max(self, make_pool):
        """scale(prefix, 1, 1) keeps one worker, ending the extra one."""
        pool, _ = make_pool()
        pool.register(PROFILE)
        pool.reconcile()
        assert pool.scale(PROFILE.key[:6], 1, 1) == [PROFILE.key]
        pool.reconcile()
        assert states(pool) == ["warming"]
        assert pool.scale("zzzz", 1, 1) == []


class TestProgress:
    def test_a_warming_worker_shows_its_step_and_how_long_it_has_been_on_it(self, make_pool, clock):
        """A progress event becomes the status' step, per worker and per profile."""
        from farm_server.status import profile_view, worker_view

        pool, _ = make_pool(default_min_warm=1)
        pool.register(PROFILE)
        pool.reconcile()
        (worker,) = pool.live()
        assert worker_view(worker, clock.now)["progress"]["step"] == "starting"
        clock.now += 2.0
        event = {"event": "progress", "step": "shadow tests", "done": 1, "total": 3}
        pool.on_event(worker.id, event)
        clock.now += 0.5
        view = worker_view(worker, clock.now)["progress"]
        assert view == {
            "step": "shadow tests",
            "done": 1,
            "total": 3,
            "step_s": 0.5,
            "warming_s": 2.5,
        }
        entry = pool.profiles[PROFILE.key]
        profile = profile_view(entry, pool.live(), pool, clock.now)
        assert profile["warming"] == [{"worker": worker.id, **view}]
        assert profile["warmup_s_last"] is None

    def test_a_warm_worker_has_no_step_and_its_warm_up_time_is_measured(self, make_pool, clock):
        """Once ready the step is gone; the profile shows the last and median warm-up."""
        from farm_server.status import profile_view, worker_view

        pool, _ = make_pool(default_min_warm=1)
        pool.register(PROFILE)
        pool.reconcile()
        (worker,) = pool.live()
        pool.on_event(worker.id, {"event": "progress", "step": "collecting"})
        clock.now += 4.0
        ready(pool, worker.id)
        assert worker_view(worker, clock.now)["progress"] is None
        profile = profile_view(pool.profiles[PROFILE.key], pool.live(), pool, clock.now)
        assert (profile["warming"], profile["warmup_s_last"]) == ([], 4.0)
        assert profile["warmup_s_median"] == 4.0


class TestStop:
    def test_stop_ends_every_worker_including_claimed_ones(self, make_pool):
        """farm stop leaves no live worker, whatever its state."""
        pool, launcher = make_pool()
        warm_up(pool, PROFILE)
        pool.claim(PROFILE, 1)
        pool.reconcile()
        pool.stop(timeout=1)
        assert not any(h.running for h in launcher.handles.values())
