"""The daemon's pool policies, one per profile, taught from the persisted claim log.

A restarted farm rebuilds each profile's policy from its claims in the database, so its
demand model survives restarts; from then on every claim is shown to it as it comes.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from farm_server.forecast.policy import PoolPolicy

__all__ = ["PolicyBook"]


@dataclass
class PolicyBook:
    #: the claims of a profile so far: (time, workers), in time order
    load_log: Callable[[str], Iterable[tuple[float, int]]]
    make: Callable[[], PoolPolicy]
    policies: dict[str, PoolPolicy] = field(default_factory=dict)
    #: per profile, since the daemon started: [workers requested, granted warm]
    served: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, profile_key: str) -> PoolPolicy:
        with self.lock:
            policy = self.policies.get(profile_key)
            if policy is None:
                policy = self.make()
                for when, workers in self.load_log(profile_key):
                    policy.observe(when, workers)
                self.policies[profile_key] = policy
            return policy

    def observe(self, profile_key: str, when: float, workers: int, granted: int = 0) -> None:
        self.get(profile_key).observe(when, workers)
        counts = self.served.setdefault(profile_key, [0, 0])
        counts[0] += workers
        counts[1] += granted

    def hit_rate(self, profile_key: str) -> float | None:
        requested, granted = self.served.get(profile_key, (0, 0))
        return granted / requested if requested else None

    def target(self, profile_key: str, now: float, warmup_times: list[float]) -> int:
        policy = self.get(profile_key)
        if warmup_times:  # lead time: the profile's own measured warm-up
            policy.warmup_s = statistics.median(warmup_times)
        return policy.target(now)
