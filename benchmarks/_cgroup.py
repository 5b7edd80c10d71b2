"""A throw-away memory cgroup (v1 or v2) to run a command under a memory limit, and its OOM kills.

Used by ``bench_health.py`` and ``tests/e2e/test_health_cgroup.py``. Needs root (or a
delegated cgroup v2 subtree) and the memory controller. The cgroup is made *under the
cgroup this process is in*, so it nests inside whatever limit the host already sets,
and it is removed afterwards (after its processes have gone).

The child joins the cgroup before it runs anything: ``preexec_fn`` writes its own pid
into ``cgroup.procs`` between fork and exec, so every process it starts (xdist's
workers included) is charged to the cgroup from its first page.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CgroupError", "MemoryCgroup", "memory_cgroup"]


class CgroupError(RuntimeError):
    """The memory cgroup cannot be made here; the message says why and what would fix it."""


@dataclass
class MemoryCgroup:
    """A memory cgroup made by :func:`memory_cgroup`."""

    path: Path
    version: int
    limit_bytes: int

    def join(self, pid: int = 0) -> None:
        """Put ``pid`` (0: the calling process) into this cgroup."""
        (self.path / "cgroup.procs").write_text(f"{pid or os.getpid()}\n")

    def oom_kills(self) -> int:
        """Processes the kernel OOM-killed in this cgroup so far."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        counters = _counters(self.path / name)
        return counters.get("oom_kill", 0)

    def peak_bytes(self) -> int | None:
        """The cgroup's memory high-water mark (None where the kernel does not keep one)."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def run(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``subprocess.run(cmd)`` with the child in this cgroup from before its exec."""
        procs = str(self.path / "cgroup.procs")

        def enter() -> None:  # in the child, between fork and exec: no Python objects shared
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0\n")  # "0": the writing process itself
            finally:
                os.close(fd)

        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("check", False)
        return subprocess.run(list(cmd), preexec_fn=enter, **kwargs)


def _counters(path: Path) -> dict[str, int]:
    counters: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return counters
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            counters[key] = int(value)
    return counters


def _own_cgroup_dir(version: int, proc: Path = Path("/proc/self")) -> Path:
    """Where this process's memory cgroup is (v1: the memory hierarchy; v2: the unified one)."""
    mounts = _mounts(version)
    if not mounts:
        what = "a cgroup v1 memory hierarchy" if version == 1 else "a cgroup2 filesystem"
        msg = f"no {what} is mounted (see /proc/self/mountinfo)"
        raise CgroupError(msg)
    for line in (proc / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (version == 1 and "memory" in controllers.split(",")) or (
            version == 2 and controllers == ""
        ):
            mount_root, mount_point = mounts[0]
            rel = os.path.relpath(path, mount_root) if path.startswith(mount_root) else "."
            candidate = (Path(mount_point) / rel).resolve()
            return candidate if candidate.is_dir() else Path(mount_point)
    msg = f"this process is in no cgroup v{version} memory hierarchy (see /proc/self/cgroup)"
    raise CgroupError(msg)


def _mounts(version: int) -> list[tuple[str, str]]:
    """(root, mount point) of each mount of the wanted cgroup hierarchy."""
    found: list[tuple[str, str]] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        if (version == 1 and fstype == "cgroup" and "memory" in options) or (
            version == 2 and fstype == "cgroup2"
        ):
            found.append((fields[3], fields[4]))
    return found


def _v2_has_memory(parent: Path) -> bool:
    try:
        return "memory" in (parent / "cgroup.controllers").read_text().split()
    except OSError:
        return False


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int, *, prefix: str = "shadowfarm-bench") -> Iterator[MemoryCgroup]:
    """A new memory cgroup limited to ``limit_bytes`` (no swap), removed on exit.

    Prefers the v1 memory hierarchy when it is mounted (the v2 one may be mounted
    without its memory controller, as on hybrid hosts); raises :class:`CgroupError`.
    """
    if os.geteuid() != 0:
        msg = "making a memory cgroup needs root (run as root, or in a container that is)"
        raise CgroupError(msg)
    errors: list[str] = []
    group: MemoryCgroup | None = None
    for version in (1, 2):
        try:
            parent = _own_cgroup_dir(version)
            if version == 2 and not _v2_has_memory(parent):
                msg = f"{parent}: the memory controller is not enabled for this cgroup2 subtree"
                raise CgroupError(msg)
            group = _make(parent / f"{prefix}-{uuid.uuid4().hex[:8]}", version, limit_bytes)
            break
        except (CgroupError, OSError) as exc:
            errors.append(f"v{version}: {exc}")
    if group is None:
        msg = "cannot make a memory cgroup: " + "; ".join(errors)
        raise CgroupError(msg)
    try:
        yield group
    finally:
        _remove(group.path)


def _make(path: Path, version: int, limit_bytes: int) -> MemoryCgroup:
    path.mkdir()
    try:
        if version == 1:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):  # absent without swap accounting
                (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        else:
            (path / "memory.max").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
    except OSError:
        path.rmdir()
        raise
    return MemoryCgroup(path, version, limit_bytes)


def _remove(path: Path, timeout_s: float = 10.0) -> None:
    """rmdir once its processes have left (a killed worker's exit takes a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
