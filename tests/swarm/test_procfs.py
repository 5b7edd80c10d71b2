"""ProcFile: one open descriptor, fresh content on every read, and its own process after a fork."""

from __future__ import annotations

import os
import sys

import pytest

from pytest_shadowfarm.swarm.procfs import ProcFile

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs is Linux")


def _pid_in(stat: bytes) -> int:
    return int(stat.split()[0])  # /proc/<pid>/stat starts with the pid


def test_every_read_is_rendered_afresh_through_one_descriptor() -> None:
    """schedstat's CPU time grows between two reads; the descriptor is opened once."""
    schedstat = ProcFile("/proc/self/schedstat")
    try:
        first = int(schedstat.read().split()[0])
        fd = schedstat._fd
        sum(range(2_000_000))  # a few ms of CPU
        second = int(schedstat.read().split()[0])
        assert second > first
        assert schedstat._fd == fd
    finally:
        schedstat.close()


def test_a_forked_child_reads_its_own_process() -> None:
    """Opened in the parent, read in a forked child: the child's pid, not the parent's."""
    stat = ProcFile("/proc/self/stat")
    try:
        assert _pid_in(stat.read()) == os.getpid()
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through the pipe
            try:
                os.write(write_end, str(_pid_in(stat.read()) == os.getpid()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as answer:
            assert answer.read() == b"True"
        _, status = os.waitpid(child, 0)
        assert status == 0
        assert _pid_in(stat.read()) == os.getpid()  # the parent's descriptor is untouched
    finally:
        stat.close()


def test_a_closed_file_reopens_on_the_next_use() -> None:
    status = ProcFile("/proc/self/status")
    status.read()
    status.close()
    assert b"VmHWM:" in status.read()
    status.close()


def test_a_missing_file_raises_file_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        ProcFile("/proc/self/no-such-file").read()


def test_writes_reach_the_kernel() -> None:
    """Writing 5 to clear_refs resets the peak RSS to about the current RSS."""
    clear_refs, status = (
        ProcFile("/proc/self/clear_refs", write=True),
        ProcFile("/proc/self/status"),
    )

    def field(name: bytes) -> int:
        text = status.read()
        start = text.index(name) + len(name)
        return int(text[start : text.index(b"kB", start)])

    try:
        spike = bytearray(64 * 1024 * 1024)
        spike[::4096] = b"x" * len(spike[::4096])  # touch every page
        del spike
        assert field(b"VmHWM:") - field(b"VmRSS:") >= 32 * 1024
        clear_refs.write(b"5")
        assert field(b"VmHWM:") - field(b"VmRSS:") < 32 * 1024
    finally:
        clear_refs.close()
        status.close()
