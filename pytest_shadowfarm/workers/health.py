"""Predict which worker will run out of memory, early enough to have its replacement ready.

xdist only reacts once a worker is dead (users have asked for "recycle a worker after N
tests / once it grows" since 2018: pytest-xdist#363; an OOM-killed worker can even hang
the run: #658). :class:`HealthMonitor` watches each worker's RSS after every test and
says, per worker, one of:

* ``ok``: nothing to do;
* ``prepare``: start a replacement now, in the background: at the predicted pace the
  worker reaches its share of the memory ceiling about when a new worker (which takes
  ``startup_s`` to start) would be ready, plus a margin;
* ``swap``: stop giving it tests, let it finish what it holds, swap in the replacement.

The prediction: the worker's sustained RSS growth per test (:mod:`.trend`), against its
share of the ceiling: the ceiling minus what the controller and everything else outside
the workers hold, minus what every worker holds now, is the free headroom; the workers
that grow split it in proportion to how fast they grow (bytes per second), so that the
estimate is "when would the group run out" as seen by each worker; with nobody growing
it is split evenly. The score in [0, 1] maps the tests left onto the thresholds: at
``swap_margin_tests`` left it reaches ``swap``, at the lead time a replacement needs it
reaches ``prepare``. Errors (MemoryError, OSError) and age raise it too.

Pure: no pytest, no clock, no psutil; the caller feeds samples and reads assessments.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from pytest_shadowfarm.sizes import format_size
from pytest_shadowfarm.workers.predictions import Decision, Prediction
from pytest_shadowfarm.workers.thresholds import Thresholds, score_for_tests_left
from pytest_shadowfarm.workers.trend import Trend, fit_trend

__all__ = [
    "Assessment",
    "Decision",
    "HealthMonitor",
    "Prediction",
    "Sample",
    "Thresholds",
    "score_for_tests_left",
]


#: tests before its max age at which a worker is swapped out: the two it holds
AGE_SWAP_TESTS = 2.0


@dataclass(frozen=True)
class Sample:
    """One worker after one test: tests it has finished, when (seconds), its RSS and peak."""

    tests_done: int
    t: float
    rss_bytes: int
    #: the test's peak RSS (VmHWM), when known: a transient the worker must have room for
    peak_bytes: int | None = None


@dataclass(frozen=True)
class Assessment:
    """What the monitor says about one worker now."""

    worker: str
    decision: Decision
    #: 0: healthy ... 1: failing now
    score: float
    reason: str
    tests_done: int
    #: what the score comes from: "memory", "age", "errors" or "pressure"
    cause: str = "memory"
    #: predicted tests / seconds until it crosses its share; None: not growing (or unknown)
    tests_left: float | None = None
    seconds_left: float | None = None
    confidence: float = 0.0
    slope_bytes: float | None = None
    level_bytes: int | None = None
    share_bytes: int | None = None


@dataclass
class _Worker:
    samples: deque[Sample]
    #: when its first test ended (its age in seconds counts from there)
    first_t: float | None = None
    decision: Decision = "ok"
    memory_errors: int = 0
    os_errors: int = 0
    predictions: list[Prediction] = field(default_factory=list)
    #: the last fit and what it was fitted on (newest tests_done, thresholds): a worker
    #: without a new sample keeps its fit (the fit is O(window^2), and the watch assesses
    #: every worker after each test of any: most of the controller's CPU on tiny tests)
    fit: tuple[tuple[int, int], Trend | None] | None = None
    #: (newest tests_done, seconds per test, spike bytes): O(window), kept per sample
    paced: tuple[int, float, float] | None = None


class HealthMonitor:
    """Per-worker memory prognosis; see the module docstring.

    ``ceiling_bytes`` (the run's memory ceiling, :mod:`.ceiling`) and ``startup_s``
    (how long a new worker takes to be ready) may be updated between assessments.
    """

    def __init__(
        self,
        ceiling_bytes: int,
        *,
        startup_s: float = 2.0,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.ceiling_bytes = ceiling_bytes
        self.startup_s = startup_s
        self.thresholds = thresholds or Thresholds()
        self._workers: dict[str, _Worker] = {}

    # --- input ------------------------------------------------------------------------------

    def observe(self, worker: str, sample: Sample) -> None:
        """One more finished test on ``worker`` (a sample not newer than the last is ignored)."""
        state = self._state(worker)
        if state.samples and sample.tests_done <= state.samples[-1].tests_done:
            return
        if state.first_t is None:
            state.first_t = sample.t
        state.samples.append(sample)

    def observe_error(self, worker: str, error: str) -> None:
        """A test on ``worker`` errored in setup with ``error`` (an exception type's name)."""
        state = self._state(worker)
        if error == "MemoryError":
            state.memory_errors += 1
        elif error == "OSError":  # ENOMEM, EMFILE: what a leaking worker gets before the OOM
            state.os_errors += 1

    def forget(self, worker: str) -> list[Prediction]:
        """``worker`` has gone (finished, drained, replaced, crashed): its decisions so far."""
        state = self._workers.pop(worker, None)
        return state.predictions if state else []

    def alarmed(self) -> bool:
        """Whether any watched worker is at ``prepare`` or ``swap`` now."""
        return any(state.decision != "ok" for state in self._workers.values())

    def current_bytes(self) -> dict[str, int]:
        """Each watched worker's RSS after its newest test."""
        return {w: s.samples[-1].rss_bytes for w, s in self._workers.items() if s.samples}

    def predictions(self) -> list[Prediction]:
        """Every decision change of the workers still watched."""
        return [p for state in self._workers.values() for p in state.predictions]

    def _state(self, worker: str) -> _Worker:
        if worker not in self._workers:
            self._workers[worker] = _Worker(deque(maxlen=self.thresholds.window))
        return self._workers[worker]

    # --- output -----------------------------------------------------------------------------

    def assess(
        self,
        now: float,
        *,
        outside_bytes: int = 0,
        remaining_tests: Mapping[str, float] | None = None,
        pressure_pct: float | None = None,
    ) -> list[Assessment]:
        """Every watched worker's assessment at ``now`` (the clock the samples' ``t`` use);
        a worker with no sample yet is left out.

        ``outside_bytes``: memory under the same ceiling that no worker holds (the
        controller, other processes in the cgroup, page cache). ``remaining_tests``:
        tests each worker is still expected to run, when the scheduler knows: a worker
        that would reach its share only after its last test is left alone.
        ``pressure_pct``: PSI memory "some" avg10, when readable.
        """
        th = self.thresholds
        fits = {w: self._fit(s) for w, s in self._workers.items() if s.samples}
        levels = {w: self._level(self._workers[w], fit) for w, fit in fits.items()}
        growth = {w: self._growth(self._workers[w], fit) for w, fit in fits.items()}
        free = self.ceiling_bytes - outside_bytes - sum(levels.values())
        total_growth = sum(growth.values())
        out = []
        for worker, fit in fits.items():
            state = self._workers[worker]
            part = growth[worker] / total_growth if total_growth > 0 else 1 / len(fits)
            share = levels[worker] + (free * part if free > 0 else free)
            remaining = (remaining_tests or {}).get(worker)
            out.append(self._assess_one(worker, state, fit, levels[worker], share, now, remaining))
        if pressure_pct is not None and pressure_pct >= th.pressure_pct and out:
            out = self._under_pressure(out, pressure_pct, growth)
        return [self._decide(a, now) for a in out]

    # --- the parts --------------------------------------------------------------------------

    def _fit(self, state: _Worker) -> Trend | None:
        if len(state.samples) < self.thresholds.min_samples:
            return None
        key = (state.samples[-1].tests_done, id(self.thresholds))
        if state.fit is not None and state.fit[0][1] == key[1]:
            (done, _), last = state.fit
            if done == key[0] or (
                last is not None
                and key[0] - done < self.thresholds.refit_flat_tests
                and self._still_flat(state, done, last)
            ):
                return last
        xs = [float(s.tests_done) for s in state.samples]
        ys = [float(s.rss_bytes) for s in state.samples]
        fit = fit_trend(xs, ys, tolerance=self.thresholds.min_slope_bytes)
        state.fit = (key, fit)
        return fit

    def _still_flat(self, state: _Worker, done: int, last: Trend) -> bool:
        """Whether ``last`` was flat and no sample after test ``done`` rose above its band
        (line + spread + ``min_slope_bytes``): a new fit would say flat again."""
        if last.slope > (tolerance := self.thresholds.min_slope_bytes):
            return False
        top = last.level + last.spread + tolerance
        return all(s.rss_bytes <= top for s in reversed(state.samples) if s.tests_done > done)

    def _paced(self, state: _Worker) -> tuple[float, float]:
        """(the worker's median seconds per test, its largest spike above RSS)."""
        done = state.samples[-1].tests_done
        if state.paced is None or state.paced[0] != done:
            s = list(state.samples)
            paces = [
                (b.t - a.t) / (b.tests_done - a.tests_done)
                for a, b in itertools.pairwise(s)
                if b.t >= a.t
            ]
            spike = max(
                (x.peak_bytes - x.rss_bytes for x in s if x.peak_bytes is not None), default=0
            )
            state.paced = (done, statistics.median(paces) if paces else 0.0, spike)
        return state.paced[1], state.paced[2]

    def _level(self, state: _Worker, fit: Trend | None) -> float:
        """What the worker may hold at its next peak: trend level plus spike headroom."""
        spike = self._paced(state)[1]
        if fit is None:
            return state.samples[-1].rss_bytes + spike
        return max(fit.level + max(fit.spread, spike), state.samples[-1].rss_bytes)

    def _confidence(self, fit: Trend) -> float:
        return max(0.0, fit.agreement) * fit.points / (fit.points + 3)

    def _growth(self, state: _Worker, fit: Trend | None) -> float:
        """Bytes per second the worker grows (0 unless the trend is real)."""
        th = self.thresholds
        if fit is None or fit.slope < th.min_slope_bytes:
            return 0.0
        if self._confidence(fit) < th.min_confidence:
            return 0.0
        return fit.slope / max(self._paced(state)[0], 1e-3)

    def _assess_one(
        self,
        worker: str,
        state: _Worker,
        fit: Trend | None,
        level: float,
        share: float,
        now: float,
        remaining: float | None,
    ) -> Assessment:
        th = self.thresholds
        done = state.samples[-1].tests_done
        pace = self._paced(state)[0]
        startup_tests = self.startup_s * th.startup_safety / pace if pace > 0 else math.inf
        swap_at = th.swap_margin_tests
        prepare_at = swap_at + min(startup_tests, 1e6) + th.prepare_margin_tests
        base = Assessment(
            worker, "ok", 0.0, "", done, level_bytes=int(level), share_bytes=int(share)
        )
        candidates: list[Assessment] = []
        if fit is None:
            n = len(state.samples)
            candidates.append(_with(base, reason=f"too few samples ({n} of {th.min_samples})"))
        else:
            candidates.append(
                self._memory(
                    base, fit, level, share, swap_at, prepare_at, pace, now, state, remaining
                )
            )
        # An age is exact, not a prediction: the worker goes when what it holds (the
        # scheduler commits two) takes it to its age, with no margin for a misjudged slope;
        # its replacement starts a few tests ahead, not its whole start-up ahead: with a
        # short age that would keep a third process beside two workers most of the run,
        # under the same memory ceiling (and their next sickness would come sooner).
        age_swap = AGE_SWAP_TESTS
        age_prepare = age_swap + th.prepare_margin_tests
        age = self._age(base, state, now, pace, age_swap, age_prepare, remaining)
        if age is not None:
            candidates.append(age)
        if state.memory_errors:
            candidates.append(
                _with(
                    base,
                    score=max(th.swap, 0.95),
                    confidence=1.0,
                    cause="errors",
                    reason=f"{state.memory_errors} MemoryError in setup",
                )
            )
        if state.os_errors >= th.oserrors_prepare:
            score = th.swap if state.os_errors >= th.oserrors_swap else th.prepare
            candidates.append(
                _with(
                    base,
                    score=score,
                    confidence=1.0,
                    cause="errors",
                    reason=f"{state.os_errors} OSError in setup",
                )
            )
        return max(candidates, key=lambda a: a.score)

    def _age(
        self,
        base: Assessment,
        state: _Worker,
        now: float,
        pace: float,
        swap_at: float,
        prepare_at: float,
        remaining: float | None,
    ) -> Assessment | None:
        """The worker against its max age (tests, else seconds); None when it has none."""
        th = self.thresholds
        done = base.tests_done
        if pace <= 0:
            return None  # its pace is not known yet: when to start a replacement is not
        if th.max_age_tests is not None:
            left = float(th.max_age_tests - done)
            limit = f"max age {th.max_age_tests} tests"
        elif th.max_age_s is not None and state.first_t is not None:
            left = (th.max_age_s - (now - state.first_t)) / pace
            limit = f"max age {th.max_age_s:g}s"
        else:
            return None
        score = score_for_tests_left(left, swap_at, prepare_at, th)
        reason = f"{done} tests run, {limit}"
        if th.max_age_basis:
            reason += f" ({th.max_age_basis})"
        if remaining is not None and left > remaining + swap_at:
            # it would reach its age only after its last test: no replacement needed
            score = min(score, th.prepare * 0.9)
        return _with(base, score=score, confidence=1.0, cause="age", reason=reason)

    def _memory(
        self,
        base: Assessment,
        fit: Trend,
        level: float,
        share: float,
        swap_at: float,
        prepare_at: float,
        pace: float,
        now: float,
        state: _Worker,
        remaining: float | None,
    ) -> Assessment:
        th = self.thresholds
        confidence = self._confidence(fit)
        if fit.slope < th.min_slope_bytes:
            return _with(
                base,
                slope_bytes=fit.slope,
                confidence=confidence,
                reason=f"RSS steady at {format_size(level)} ({format_size(fit.slope)}/test)",
            )
        rate = f"RSS +{format_size(fit.slope)}/test"
        # Tests left at the pace of a bad test (upper quartile of the test-to-test
        # growth), not the median one: the margin must hold for the tests it still runs.
        left = max(0.0, (share - level) / max(fit.slope, fit.steep))
        since = max(0.0, now - state.samples[-1].t)
        seconds = max(0.0, left * pace - since) if pace > 0 else None
        score = score_for_tests_left(left, swap_at, prepare_at, th)
        limit = format_size(self.ceiling_bytes)
        reason = f"memory would reach the {limit} limit in ~{left:.0f} tests ({rate})"
        if confidence < th.min_confidence and left > swap_at:
            # an uncertain trend may not start replacements; only the last margin acts
            score = min(score, th.prepare * 0.9)
            reason += f", uncertain (confidence {confidence:.2f})"
        if remaining is not None and left > remaining + swap_at:
            score = min(score, th.prepare * 0.9)
            reason += f", but only ~{remaining:.0f} tests left for it"
        return _with(
            base,
            score=score,
            reason=reason,
            tests_left=left,
            seconds_left=seconds,
            confidence=confidence,
            slope_bytes=fit.slope,
        )

    def _under_pressure(
        self, out: list[Assessment], pressure: float, growth: dict[str, float]
    ) -> list[Assessment]:
        """The kernel stalls on memory: the fastest-growing (else largest) worker prepares."""
        th = self.thresholds
        worst = max(out, key=lambda a: (growth.get(a.worker, 0.0), a.level_bytes or 0))
        if worst.score >= th.prepare:
            return out
        raised = _with(
            worst,
            score=th.prepare,
            cause="pressure",
            reason=f"memory pressure {pressure:.0f}% (PSI); {worst.reason}",
        )
        return [raised if a is worst else a for a in out]

    def _decide(self, a: Assessment, now: float) -> Assessment:
        th = self.thresholds
        state = self._workers[a.worker]
        if state.decision == "swap" or a.score >= th.swap:
            decision: Decision = "swap"  # a worker told to go never comes back
        elif a.score >= th.prepare or (
            state.decision == "prepare" and a.score >= th.prepare - th.hysteresis
        ):
            decision = "prepare"
        else:
            decision = "ok"
        if decision != state.decision:
            death = a.tests_done + a.tests_left if a.tests_left is not None else None
            state.predictions.append(
                Prediction(a.worker, decision, now, a.tests_done, a.reason, death)
            )
            state.decision = decision
        return _with(a, decision=decision)


_FIELDS = frozenset(f.name for f in fields(Assessment))


def _with(a: Assessment, **changes: object) -> Assessment:
    """``a`` with ``changes``; ``dataclasses.replace`` is 10x slower (see ``_Worker.fit``)."""
    if not changes.keys() <= _FIELDS:
        raise TypeError(f"Assessment has no field {sorted(changes.keys() - _FIELDS)}")
    new = object.__new__(Assessment)
    new.__dict__.update(a.__dict__, **changes)  # frozen: only __setattr__ refuses
    return new
