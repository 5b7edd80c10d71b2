"""The memory ceiling a run really has: its cgroup's limit, else the RAM it can get, or an override.

A worker that leaks is killed when the *cgroup* it runs in reaches its limit, long
before the host runs out of RAM (a CI container of 7 GB on a 64 GB host). The limit
that matters is the smallest one on the path from the process's own cgroup up to the
root of its hierarchy:

* cgroup v2: ``memory.max`` of the cgroup and of each ancestor ("max": none there);
* cgroup v1: ``hierarchical_memory_limit`` in ``memory.stat``, which the kernel already
  folds over the ancestors (with ``use_hierarchy``). The ``memory.limit_in_bytes`` of
  the top-level cgroup usually says unlimited (9223372036854771712), so reading only
  the mount point's file, as many tools do, misses the container's limit.

The process's cgroup comes from ``/proc/<pid>/cgroup``; where that hierarchy is mounted
from ``/proc/self/mountinfo`` (the mount's root field maps the cgroup path onto the
mount point; in a container with its own cgroup namespace both are "/"). Everything is
read below ``root`` so that tests build fake ``/proc`` and ``/sys`` trees. Nothing here
raises for an unreadable or odd file: that part of the answer is just unknown.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pytest_shadowfarm.sizes import format_size

__all__ = [
    "UNLIMITED",
    "Ceiling",
    "CgroupMemory",
    "Pressure",
    "find_ceiling",
    "find_memory_cgroup",
    "host_available_bytes",
    "memory_ceiling",
    "read_pressure",
]

#: at or above this a limit means "none": v1 reports PAGE_COUNTER_MAX pages
#: (9223372036854771712 with 4 KiB pages), no machine has 2**60 bytes
UNLIMITED = 1 << 60


@dataclass(frozen=True)
class CgroupMemory:
    """The memory cgroup of one process, and the tightest limit on it."""

    version: int
    #: the cgroup's directory, below ``root``
    path: Path
    #: the smallest limit on the cgroup or an ancestor; None: none anywhere
    limit_bytes: int | None
    #: the file that set ``limit_bytes``
    limit_from: Path | None
    #: what the cgroup holds now (page cache included), if readable
    usage_bytes: int | None
    #: inactive file cache in it: reclaimed before the OOM killer runs, if readable
    inactive_file_bytes: int | None = None

    @property
    def working_set_bytes(self) -> int | None:
        """Usage less the inactive file cache (what cAdvisor and kubelet compare to the
        limit): the memory of the cgroup that the kernel cannot just drop."""
        if self.usage_bytes is None:
            return None
        return max(0, self.usage_bytes - (self.inactive_file_bytes or 0))


@dataclass(frozen=True)
class Pressure:
    """PSI memory pressure: % of the last 10 s some / all tasks stalled on memory."""

    some_avg10: float
    full_avg10: float | None
    source: Path


@dataclass(frozen=True)
class Ceiling:
    """The memory the run's processes may use in all, and where that figure came from."""

    bytes: int
    #: "override", "cgroup" or "ram"
    kind: str
    #: for people: "cgroup v1 limit (…/memory.stat hierarchical_memory_limit)"
    source: str
    cgroup: CgroupMemory | None = None

    def describe(self) -> str:
        return f"{format_size(self.bytes)} ({self.source})"


# --- /proc ------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _cgroup_mounts(root: Path, version: int) -> list[tuple[str, Path]]:
    """(root inside the hierarchy, mount point below ``root``) of each memory hierarchy mount."""
    text = _read(root / "proc/self/mountinfo") or ""
    found: list[tuple[str, Path]] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        if (version == 1 and fstype == "cgroup" and "memory" in options) or (
            version == 2 and fstype == "cgroup2"
        ):
            mount_root, point = _unescape(fields[3]), _unescape(fields[4])
            found.append((mount_root, root / point.lstrip("/")))
    return found


def _own_paths(root: Path, pid: int | str) -> dict[int, str]:
    """The process's cgroup path per version: {1: memory hierarchy, 2: unified}."""
    text = _read(root / f"proc/{pid}/cgroup") or ""
    paths: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if "memory" in controllers.split(","):
            paths[1] = path
        elif parts[0] == "0" and controllers == "":
            paths[2] = path
    return paths


def _locate(mounts: list[tuple[str, Path]], path: str) -> tuple[Path, Path] | None:
    """(the cgroup's directory, its hierarchy's mount point) for cgroup ``path``."""
    for mount_root, point in mounts:
        base = mount_root.rstrip("/")
        if path == mount_root or path.startswith(base + "/"):
            candidate = point / path[len(base) :].lstrip("/")
            if candidate.is_dir():
                return candidate, point
    # The path is not below any mount's root (a container seeing the host's paths
    # without its own cgroup namespace): its mount point is its cgroup.
    for _, point in mounts:
        if point.is_dir():
            return point, point
    return None


def _int_file(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    value = text.strip()
    if value == "max":
        return UNLIMITED
    try:
        return int(value)
    except ValueError:
        return None


def _stat_value(path: Path, key: str) -> int | None:
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _up_to(directory: Path, top: Path) -> list[Path]:
    """``directory`` and each ancestor up to ``top`` (inclusive), innermost first."""
    chain = [directory]
    while directory != top and directory.parent != directory and top in directory.parents:
        directory = directory.parent
        chain.append(directory)
    return chain


def _tightest(candidates: list[tuple[int | None, Path]]) -> tuple[int | None, Path | None]:
    known = [(value, path) for value, path in candidates if value is not None and value < UNLIMITED]
    if not known:
        return None, None
    return min(known, key=lambda pair: pair[0])


def find_memory_cgroup(pid: int | str = "self", *, root: Path = Path("/")) -> CgroupMemory | None:
    """The memory cgroup ``pid`` is in and its tightest limit; None when there is none to read.

    cgroup v1's memory hierarchy wins when the process is in one: on hybrid hosts the
    cgroup2 mount usually has no memory controller.
    """
    own = _own_paths(root, pid)
    if 1 in own:
        found = _locate(_cgroup_mounts(root, 1), own[1])
        if found is not None:
            directory, top = found
            candidates = [
                (
                    _stat_value(directory / "memory.stat", "hierarchical_memory_limit"),
                    directory / "memory.stat",
                )
            ]
            # also each level's own limit: use_hierarchy=0 (old kernels) or no memory.stat
            candidates += [
                (_int_file(d / "memory.limit_in_bytes"), d / "memory.limit_in_bytes")
                for d in _up_to(directory, top)
            ]
            limit, source = _tightest(candidates)
            usage = _int_file(directory / "memory.usage_in_bytes")
            inactive = _stat_value(directory / "memory.stat", "total_inactive_file")
            return CgroupMemory(1, directory, limit, source, usage, inactive)
    if 2 in own:
        found = _locate(_cgroup_mounts(root, 2), own[2])
        if found is not None:
            directory, top = found
            chain = _up_to(directory, top)
            if not any(
                (d / "memory.max").exists() or (d / "memory.current").exists() for d in chain
            ):
                return None  # the memory controller is not enabled here
            limit, source = _tightest(
                [(_int_file(d / "memory.max"), d / "memory.max") for d in chain]
            )
            usage = _int_file(directory / "memory.current")
            inactive = _stat_value(directory / "memory.stat", "inactive_file")
            return CgroupMemory(2, directory, limit, source, usage, inactive)
    return None


def read_pressure(cgroup: CgroupMemory | None, *, root: Path = Path("/")) -> Pressure | None:
    """PSI memory pressure of the cgroup (v2), else of the whole host; None where unreadable."""
    files = []
    if cgroup is not None and cgroup.version == 2:
        files.append(cgroup.path / "memory.pressure")
    files.append(root / "proc/pressure/memory")
    for path in files:
        text = _read(path)  # EOPNOTSUPP when the kernel has PSI off (psi=0)
        if text is None:
            continue
        values: dict[str, float] = {}
        for line in text.splitlines():
            kind, *pairs = line.split()
            for pair in pairs:
                key, _, value = pair.partition("=")
                if key == "avg10":
                    with contextlib.suppress(ValueError):
                        values[kind] = float(value)
        if "some" in values:
            return Pressure(values["some"], values.get("full"), path)
    return None


def memory_ceiling(
    *,
    cgroup: CgroupMemory | None,
    available_bytes: int,
    held_bytes: int = 0,
    override: int | None = None,
    override_source: str = "--sf-memory-limit",
) -> Ceiling:
    """The smaller of the cgroup limit and the RAM the run can have; ``override`` wins outright.

    The RAM the run can have is what the host has available now plus what the run's own
    processes (``held_bytes``: controller and workers) already hold, since available
    RAM no longer counts that.
    """
    if override is not None:
        return Ceiling(override, "override", f"{override_source} {format_size(override)}", cgroup)
    ram = max(0, available_bytes) + max(0, held_bytes)
    if cgroup is not None and cgroup.limit_bytes is not None and cgroup.limit_bytes <= ram:
        where = f"{cgroup.limit_from}" if cgroup.limit_from else str(cgroup.path)
        return Ceiling(
            cgroup.limit_bytes, "cgroup", f"cgroup v{cgroup.version} limit, {where}", cgroup
        )
    return Ceiling(ram, "ram", "available RAM", cgroup)


def host_available_bytes() -> int:
    """psutil's available RAM (imported here: only a run with the health monitor needs it)."""
    import psutil

    return int(psutil.virtual_memory().available)


def find_ceiling(
    pid: int | str = "self",
    *,
    held_bytes: int = 0,
    override: int | None = None,
    root: Path = Path("/"),
) -> Ceiling:
    """:func:`memory_ceiling` of ``pid``'s cgroup and this host's available RAM."""
    cgroup = find_memory_cgroup(pid, root=root) if os.name == "posix" else None
    return memory_ceiling(
        cgroup=cgroup,
        available_bytes=host_available_bytes(),
        held_bytes=held_bytes,
        override=override,
    )
