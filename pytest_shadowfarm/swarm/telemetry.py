"""Worker-side telemetry: a psutil sampler thread, and CPU / peak RSS of every test.

Runs in each xdist worker whose controller opened a telemetry channel (see
:mod:`pytest_shadowfarm.swarm.channel`). Two things travel:

* **samples**, every ``interval`` seconds from a daemon thread, over the dedicated
  execnet channel: the worker's CPU %, RSS, I/O counters and threads, and which test
  and phase it is in. Not over xdist's own event channel: an event name xdist does
  not know makes it raise ``ValueError('unknown event')`` and tear the worker down.
  ``channel.send`` from a thread is allowed under
  the ``main_thread_only`` execmodel; only ``remote_exec`` is not.
* **per-test usage**, as the report attribute :data:`USAGE_ATTR` on the test's teardown
  report: its CPU seconds from ``logstart`` on (and, on Linux, its seconds waiting for
  a CPU: see :func:`schedstat`) and its peak RSS. xdist serialises
  report attributes with the report (``_report_to_json`` copies ``__dict__``), so the
  controller reads them in ``pytest_runtest_logreport``; user_properties would work
  too but would leak into every JUnit XML.

Peak RSS: on Linux the kernel's high-water mark ``VmHWM`` is reset at the start of
each test by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), so a spike
shorter than the sampling interval is still seen; elsewhere the peak is the largest
RSS the sampler saw during the test, and the RSS at its end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil
import pytest

from pytest_shadowfarm.swarm.channel import CHANNEL_KEY, INTERVAL_KEY
from pytest_shadowfarm.swarm.procfs import ProcFile
from pytest_shadowfarm.usage import USAGE_ATTR, add_usage

__all__ = [
    "CHANNEL_KEY",
    "INTERVAL_KEY",
    "USAGE_ATTR",
    "PeakRss",
    "Sampler",
    "WorkerTelemetry",
    "add_usage",
    "read_sample",
    "register_worker_telemetry",
    "schedstat",
]

_CLEAR_REFS = ProcFile("/proc/self/clear_refs", write=True)
#: the main thread's time on a CPU and time waiting for one, in ns (Linux schedstat)
_SCHEDSTAT = ProcFile("/proc/self/schedstat", size=256)


def schedstat() -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for a CPU) of the main thread; None off Linux.

    The waiting part is what tells a CPU-bound test on a busy host (little CPU time, much
    waiting) from one that waits on the network (little of either); CPU time alone would
    make the first look I/O-bound.
    """
    try:
        fields = _SCHEDSTAT.read().split()
        return int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


_STATUS = ProcFile("/proc/self/status", size=16384)


def read_sample(process: psutil.Process) -> dict[str, Any]:
    """One measurement of ``process`` (the parts the platform cannot give are None)."""
    with process.oneshot():
        sample: dict[str, Any] = {
            "cpu_pct": process.cpu_percent(interval=None),
            "rss_kb": process.memory_info().rss // 1024,
            "threads": process.num_threads(),
            "read_bytes": None,
            "write_bytes": None,
        }
        with contextlib.suppress(AttributeError, psutil.AccessDenied, NotImplementedError):
            io = process.io_counters()  # absent on macOS; may be denied in containers
            sample["read_bytes"] = io.read_bytes
            sample["write_bytes"] = io.write_bytes
    return sample


class PeakRss:
    """The peak RSS of this process since :meth:`reset`, in kB."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.seen_kb = 0  # fallback: the largest RSS seen by anyone since reset
        self.kernel = self._try_reset()

    def _try_reset(self) -> bool:
        try:
            _CLEAR_REFS.write(b"5")
        except OSError:  # not Linux, or a kernel/sandbox that forbids it
            return False
        return self._hwm_kb() is not None

    @staticmethod
    def _status_kb(*fields: bytes) -> list[int] | None:
        """The named ``/proc/self/status`` lines' values in kB, from one read."""
        try:
            status = _STATUS.read()
            values = []
            for field in fields:
                start = status.index(field) + len(field)
                values.append(int(status[start : status.index(b"kB", start)]))
        except (OSError, ValueError):
            return None
        return values

    @classmethod
    def _hwm_kb(cls) -> int | None:
        values = cls._status_kb(b"VmHWM:")
        return None if values is None else values[0]

    def reset(self) -> None:
        self.seen_kb = 0
        if self.kernel:
            try:
                _CLEAR_REFS.write(b"5")
            except OSError:
                self.kernel = False

    def observe(self, rss_kb: int) -> None:
        """Fold in an RSS seen by the sampler (only matters without the kernel mark)."""
        self.seen_kb = max(self.seen_kb, rss_kb)

    def peak_kb(self) -> int:
        return self.peak_and_now_kb()[0]

    def peak_and_now_kb(self) -> tuple[int, int]:
        """The peak RSS since :meth:`reset` and the RSS now (what the worker keeps after a
        test: the health monitor's input), in kB."""
        if self.kernel:
            values = self._status_kb(b"VmHWM:", b"VmRSS:")
            if values is not None:
                return values[0], values[1]
        now = self.process.memory_info().rss // 1024
        self.observe(now)
        return self.seen_kb, now


class Sampler:
    """A daemon thread calling ``send(sample)`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        send: Callable[[Mapping[str, Any]], None],
        interval: float,
        *,
        process: psutil.Process | None = None,
        where: Callable[[], tuple[str | None, str | None]] = lambda: (None, None),
        on_rss: Callable[[int], None] = lambda kb: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.send = send
        self.interval = interval
        self.process = process or psutil.Process()
        self.where = where
        self.on_rss = on_rss
        self.clock = clock
        self.seq = 0
        self._last: tuple[float, tuple[int, int]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadowfarm-telemetry", daemon=True)

    def start(self) -> None:
        self.process.cpu_percent(interval=None)  # the first call only sets the baseline
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _demand(self, now: float) -> float | None:
        """The main thread's CPU demand (on a CPU or waiting for one) since the last sample, %."""
        stat = schedstat()
        if stat is None:
            return None
        last, self._last = self._last, (now, stat)
        if last is None or now <= last[0]:
            return None
        busy_ns = (stat[0] - last[1][0]) + (stat[1] - last[1][1])
        return round(100.0 * busy_ns / 1e9 / (now - last[0]), 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sample = read_sample(self.process)
            except psutil.Error:
                continue
            self.on_rss(sample["rss_kb"])
            nodeid, phase = self.where()
            self.seq += 1
            now = self.clock()
            sample.update(
                t=now, seq=self.seq, nodeid=nodeid, phase=phase, cpu_demand_pct=self._demand(now)
            )
            try:
                self.send(sample)
            except Exception:  # channel closed (OSError) or gateway gone: the session is over
                return


class WorkerTelemetry:
    """Worker-side plugin: streams samples and attaches each test's usage to its report.

    The usage is measured once per test, from ``logstart`` to the teardown report, and
    travels on that report: two clock and schedstat reads per test, not two per phase.
    On 2,000 trivial tests at ``-n 1`` the plugin's worker side cost about 1 ms of CPU
    per test while it measured every phase and opened the ``/proc`` files on every
    read; about 0.3 ms now (docs/swarm.md).
    """

    def __init__(self, channel: Any, interval: float) -> None:
        self.channel = channel
        self.process = psutil.Process()
        self.peak = PeakRss(self.process)
        self.nodeid: str | None = None
        self.phase: str | None = None
        self._cpu_start = 0.0
        self._stat_start: tuple[int, int] | None = None
        self.sampler = Sampler(
            self._send,
            interval,
            process=self.process,
            where=lambda: (self.nodeid, self.phase),
            on_rss=self.peak.observe,
        )
        self.sampler.start()

    def _send(self, sample: Mapping[str, Any]) -> None:
        self.channel.send(dict(sample))

    # --- where the worker is ------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.peak.reset()
        self._stat_start = schedstat()
        self._cpu_start = time.process_time()

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.nodeid = self.phase = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self) -> None:
        self.phase = "setup"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self) -> None:
        self.phase = "call"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self) -> None:
        self.phase = "teardown"

    # --- the test's usage, on its last report -------------------------------------------

    @pytest.hookimpl(tryfirst=True)  # before xdist's worker serialises the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown" or report.nodeid != self.nodeid:
            return
        cpu = time.process_time() - self._cpu_start
        peak_kb, rss_kb = self.peak.peak_and_now_kb()
        usage: dict[str, Any] = {
            "phase": "test",
            "cpu_s": round(cpu, 6),
            "peak_rss_kb": peak_kb,
            "rss_kb": rss_kb,
        }
        end = schedstat()
        if self._stat_start is not None and end is not None:
            # seconds the main thread was runnable but waiting for a CPU
            usage["cpu_wait_s"] = round((end[1] - self._stat_start[1]) / 1e9, 6)
        setattr(report, USAGE_ATTR, usage)

    def pytest_unconfigure(self) -> None:
        self.sampler.stop()
        for proc_file in (_SCHEDSTAT, _STATUS, _CLEAR_REFS):
            proc_file.close()  # reopened if used again (another session in this process)
        with contextlib.suppress(Exception):  # the gateway may be gone already
            self.channel.close()


def register_worker_telemetry(config: pytest.Config) -> None:
    """In an xdist worker: start telemetry if the controller opened a channel for it."""
    workerinput: Mapping[str, Any] = getattr(config, "workerinput", {})
    channel = workerinput.get(CHANNEL_KEY)
    interval = workerinput.get(INTERVAL_KEY)
    if channel is None or not isinstance(interval, int | float) or interval <= 0:
        return
    config.pluginmanager.register(WorkerTelemetry(channel, float(interval)), "shadowfarm-telemetry")
