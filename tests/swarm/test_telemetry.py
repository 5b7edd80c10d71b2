"""Worker telemetry: the sampler, peak RSS, the controller's hub, and real -n 1 runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_shadowfarm.swarm.channel import _END, TelemetryHub
from pytest_shadowfarm.swarm.telemetry import PeakRss, Sampler, add_usage, read_sample, schedstat

MIB_KB = 1024
#: 100 MB (decimal) in kB
HUNDRED_MB_KB = 100_000_000 // 1024
WAIT_S = 10.0  # every wait below is bounded by this


class FakeChannel:
    def __init__(self) -> None:
        self.callback: Any = None
        self.endmarker: object = None

    def setcallback(self, callback: Any, endmarker: object) -> None:
        self.callback, self.endmarker = callback, endmarker


class FakeGateway:
    def __init__(self, gwid: str) -> None:
        self.id = gwid
        self.channel = FakeChannel()

    def newchannel(self) -> FakeChannel:
        return self.channel


class Trace:
    cpu_s: float | None = None
    peak_rss_kb: int | None = None


class TestReadSample:
    def test_a_sample_has_cpu_rss_threads_and_io(self) -> None:
        """Every field is present; RSS and threads are real numbers for this process."""
        sample = read_sample(psutil.Process())
        assert set(sample) == {"cpu_pct", "rss_kb", "threads", "read_bytes", "write_bytes"}
        assert sample["rss_kb"] > 1000
        assert sample["threads"] >= 1


class TestSampler:
    def test_samples_flow_every_interval_with_where_the_worker_is(self) -> None:
        """Three samples arrive within the bounded wait, numbered, with the current test."""
        got: list[dict[str, Any]] = []
        enough = threading.Event()

        def send(sample: Any) -> None:
            got.append(dict(sample))
            if len(got) >= 3:
                enough.set()

        sampler = Sampler(send, 0.02, where=lambda: ("t.py::test_x", "call"))
        sampler.start()
        try:
            assert enough.wait(WAIT_S)
        finally:
            sampler.stop()
        assert [s["seq"] for s in got[:3]] == [1, 2, 3]
        assert got[0]["nodeid"] == "t.py::test_x"
        assert got[0]["phase"] == "call"

    def test_a_closed_channel_ends_the_thread(self) -> None:
        """When send raises (channel closed), the thread stops by itself."""
        calls: list[int] = []

        def send(sample: Any) -> None:
            calls.append(1)
            raise OSError("cannot send to closed channel")

        sampler = Sampler(send, 0.01)
        sampler.start()
        sampler._thread.join(WAIT_S)
        assert not sampler._thread.is_alive()
        assert calls == [1]


class TestSchedstat:
    # Time the hypervisor steals from this VM is in neither schedstat field, so these tests
    # compare schedstat with the thread's own clocks and with a competitor it can see,
    # never with wall time.
    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux")
    def test_time_on_a_cpu_is_the_threads_cpu_time(self) -> None:
        """The first field moves with the main thread's CPU clock, give or take a tick."""
        before, cpu_before = schedstat(), time.thread_time_ns()
        deadline = time.monotonic() + WAIT_S
        while time.thread_time_ns() - cpu_before < 100_000_000 and time.monotonic() < deadline:
            pass
        after, cpu_after = schedstat(), time.thread_time_ns()
        assert before is not None
        assert after is not None
        assert abs((after[0] - before[0]) - (cpu_after - cpu_before)) < 10_000_000  # HZ >= 100

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux")
    def test_time_waiting_for_a_cpu_is_counted(self) -> None:
        """Sharing one CPU with a busy process, the main thread waits about as long as it runs."""
        mine = os.sched_getaffinity(0)
        cpu = min(mine)
        spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
        rival = subprocess.Popen([sys.executable, "-c", spin])
        try:
            os.sched_setaffinity(0, {cpu})
            before, cpu_before = schedstat(), time.thread_time_ns()
            deadline = time.monotonic() + WAIT_S
            while time.thread_time_ns() - cpu_before < 200_000_000 and time.monotonic() < deadline:
                pass
            after = schedstat()
        finally:
            os.sched_setaffinity(0, mine)
            rival.kill()
            rival.wait(WAIT_S)
        assert before is not None
        assert after is not None
        ran, waited = after[0] - before[0], after[1] - before[1]
        assert ran >= 150_000_000
        assert waited >= 0.3 * ran

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux")
    def test_samples_carry_the_cpu_demand(self) -> None:
        """From the second sample on, cpu_demand_pct is a number."""
        got: list[dict[str, Any]] = []
        enough = threading.Event()

        def send(sample: Any) -> None:
            got.append(dict(sample))
            if len(got) >= 2:
                enough.set()

        sampler = Sampler(send, 0.02)
        sampler.start()
        try:
            assert enough.wait(WAIT_S)
        finally:
            sampler.stop()
        assert got[0]["cpu_demand_pct"] is None
        assert isinstance(got[1]["cpu_demand_pct"], float)


class TestPeakRss:
    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux")
    def test_a_spike_shorter_than_any_interval_is_seen(self) -> None:
        """Allocate and free 64 MB between two reads: the kernel mark still shows it."""
        peak = PeakRss(psutil.Process())
        peak.reset()
        base = psutil.Process().memory_info().rss // 1024
        blob = b"\x01" * (64 * 1024 * 1024)
        del blob
        # within 1 %: the allocator may hand a few pages back at the same time
        assert peak.peak_kb() >= base + 0.99 * 64 * MIB_KB

    def test_without_the_kernel_mark_the_largest_observed_rss_counts(self) -> None:
        """The fallback keeps the largest RSS the sampler saw since the reset."""
        peak = PeakRss(psutil.Process())
        peak.kernel = False
        peak.reset()
        peak.observe(10**9)
        assert peak.peak_kb() == 10**9
        peak.reset()
        assert peak.peak_kb() < 10**9


class TestAddUsage:
    def test_cpu_adds_up_over_phases_and_the_peak_is_the_largest(self) -> None:
        """setup + call + teardown CPU add; peak RSS is the max."""
        trace = Trace()
        for cpu, peak in [(0.1, 500), (0.5, 900), (0.05, 700)]:
            add_usage(trace, {"phase": "x", "cpu_s": cpu, "peak_rss_kb": peak})
        assert trace.cpu_s == pytest.approx(0.65)
        assert trace.peak_rss_kb == 900

    @pytest.mark.parametrize(
        "usage", [None, "x", {"cpu_s": "1"}, {"cpu_s": -1.0, "peak_rss_kb": True}, {}]
    )
    def test_anything_else_is_ignored(self, usage: object) -> None:
        """A report without our attribute, or with junk in it, changes nothing."""
        trace = Trace()
        add_usage(trace, usage)
        assert (trace.cpu_s, trace.peak_rss_kb) == (None, None)


class TestTelemetryHub:
    def test_samples_from_the_receiver_thread_land_on_drain(self) -> None:
        """The callback only enqueues; drain() updates the worker's state."""
        hub = TelemetryHub(clock=lambda: 1.5)
        gateway = FakeGateway("gw3")
        channel = hub.open(gateway)
        sample = {"t": 1.0, "cpu_pct": 50.0, "rss_kb": 2048, "threads": 4, "nodeid": "a::b"}
        thread = threading.Thread(target=channel.callback, args=(sample,))
        thread.start()
        thread.join(WAIT_S)
        assert hub.workers["gw3"].samples == 0  # nothing moves before drain
        new = hub.drain()
        assert [(s.worker, s.received_s, s.nodeid) for s in new] == [("gw3", 1.5, "a::b")]
        state = hub.workers["gw3"]
        assert (state.samples, state.rss_kb, state.threads, state.nodeid) == (1, 2048, 4, "a::b")
        assert hub.busy_cores() == pytest.approx(0.5)

    def test_cpu_seconds_integrate_between_samples(self) -> None:
        """50 % for 2 s of worker time is 1 CPU second."""
        hub = TelemetryHub(clock=time.perf_counter)
        channel = hub.open(FakeGateway("gw0"))
        channel.callback({"t": 10.0, "cpu_pct": 50.0, "rss_kb": 1})
        channel.callback({"t": 12.0, "cpu_pct": 50.0, "rss_kb": 1})
        hub.drain()
        assert hub.workers["gw0"].cpu_s == pytest.approx(1.0)

    def test_the_cpu_share_while_in_tests_comes_from_the_samples(self) -> None:
        """In-test samples (after each worker's first) give the live I/O-boundness."""
        hub = TelemetryHub(clock=time.perf_counter)
        channel = hub.open(FakeGateway("gw0"))
        channel.callback({"t": 1.0, "cpu_pct": 90.0, "nodeid": "a::b"})  # baseline, skipped
        assert hub.drain()
        assert hub.test_cpu_fraction() is None
        for pct, nodeid in [(4.0, "a::b"), (99.0, None), (6.0, "a::c"), (2.0, "a::c")]:
            channel.callback({"t": 2.0, "cpu_pct": pct, "nodeid": nodeid})
        hub.drain()
        assert hub.test_cpu_fraction() == pytest.approx(0.04)

    def test_the_end_marker_closes_the_worker_and_junk_is_ignored(self) -> None:
        """A closed channel takes the worker out of live(); non-mapping messages are dropped."""
        hub = TelemetryHub(clock=time.perf_counter)
        channel = hub.open(FakeGateway("gw1"))
        channel.callback(["not", "a", "sample"])
        channel.callback(channel.endmarker)
        assert channel.endmarker is _END
        assert hub.drain() == []
        assert hub.workers["gw1"].closed
        assert hub.live() == []


# --- real runs ----------------------------------------------------------------------------

SUITE = """
import time

def test_small():
    pass

def test_alloc():
    blob = b"\\x01" * (100 * 1024 * 1024)
    time.sleep(0.05)
    del blob

def test_burn():
    start = time.perf_counter()
    while time.perf_counter() - start < 0.5:
        sum(range(1000))

def test_long():
    time.sleep(1.5)
"""

PROBE = """
import json
import pytest


class Probe:
    '''Counts the telemetry samples of test_long the controller had when its report came.'''

    def __init__(self, config):
        self.config = config
        self.during = None

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and report.nodeid.endswith("test_long"):
            swarm = self.config.pluginmanager.getplugin("shadowfarm-swarm")
            swarm.hub.drain()
            self.during = [
                [s.received_s, s.data.get("phase")]
                for s in swarm.hub.samples
                if s.nodeid == report.nodeid
            ]

    def pytest_unconfigure(self):
        (self.config.rootpath / "probe.json").write_text(json.dumps({"during": self.during}))


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Probe(config), "probe")
"""


def _results(pytester: pytest.Pytester) -> dict[str, tuple[int | None, float | None, float]]:
    db = sqlite3.connect(pytester.path / ".shadowfarm" / "history.sqlite")
    rows = db.execute("SELECT nodeid, peak_rss_kb, cpu_s, duration_s FROM results").fetchall()
    db.close()
    return {nodeid.split("::")[-1]: (peak, cpu, wall) for nodeid, peak, cpu, wall in rows}


@pytest.fixture
def project(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    pytester.makepyfile(test_tel=SUITE)
    pytester.makeconftest(PROBE)
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "no-farm"))  # never a real farm
    return pytester


@pytest.mark.slow
class TestTelemetryInARun:
    def test_samples_arrive_during_a_long_test_and_usage_reaches_history(
        self, project: pytest.Pytester
    ) -> None:
        """-n 1: >= 3 samples of test_long before its report; peak RSS and CPU stored."""
        result = project.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "1", "--sf-report-json", "report.json", timeout=120
        )
        result.assert_outcomes(passed=4)
        during = json.loads((project.path / "probe.json").read_text())["during"]
        assert len(during) >= 3, during
        assert "call" in {phase for _, phase in during}
        results = _results(project)
        small_peak, _, _ = results["test_small"]
        alloc_peak, _, _ = results["test_alloc"]
        assert small_peak is not None
        assert alloc_peak is not None
        assert alloc_peak - small_peak >= HUNDRED_MB_KB  # it held 100 MiB
        _, burn_cpu, _ = results["test_burn"]
        _, long_cpu, long_wall = results["test_long"]
        assert burn_cpu is not None
        assert long_cpu is not None
        assert burn_cpu > 0.05  # a 0.5 s busy loop, even on a loaded box
        assert long_cpu < 0.1 * long_wall  # sleeping costs no CPU
        report = json.loads((project.path / "report.json").read_text())
        by_name = {t["nodeid"].split("::")[-1]: t for t in report["tests"]}
        assert by_name["test_alloc"]["peak_rss_kb"] == alloc_peak
        result.stdout.fnmatch_lines(["telemetry: * samples from 1 workers; peak RSS *"])

    def test_an_interval_of_zero_turns_telemetry_off(self, project: pytest.Pytester) -> None:
        """--sf-telemetry-interval 0: no samples, no usage in the history."""
        result = project.runpytest_subprocess(
            "-p", "shadowfarm", "-n", "1", "--sf-telemetry-interval", "0", timeout=120
        )
        result.assert_outcomes(passed=4)
        assert json.loads((project.path / "probe.json").read_text())["during"] == []
        assert {cpu for _, cpu, _ in _results(project).values()} == {None}
        assert "telemetry:" not in result.stdout.str()

    def test_telemetry_is_off_without_xdist(self, project: pytest.Pytester) -> None:
        """-p no:xdist: the run works, nothing measured (workers only)."""
        project.makeconftest("")
        result = project.runpytest_subprocess("-p", "shadowfarm", "-p", "no:xdist", timeout=120)
        result.assert_outcomes(passed=4)
        assert {peak for peak, _, _ in _results(project).values()} == {None}
