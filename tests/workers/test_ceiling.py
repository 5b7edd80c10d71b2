"""The memory ceiling: cgroup v1/v2 limits up the tree (fake /proc and /sys), RAM, overrides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_shadowfarm.errors import ConfigError
from pytest_shadowfarm.sizes import format_size, parse_size
from pytest_shadowfarm.workers.ceiling import (
    UNLIMITED,
    CgroupMemory,
    find_memory_cgroup,
    memory_ceiling,
    read_pressure,
)

MIB = 1 << 20
V1_UNLIMITED = "9223372036854771712"
V1_MOUNT = "35 31 0:32 {root} /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
V2_MOUNT = "41 31 0:38 {root} /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v1_group(root: Path, rel: str, *, limit: str = V1_UNLIMITED, hier: str | None = None) -> Path:
    """A v1 memory cgroup directory below the fake mount, with its limit files."""
    directory = root / "sys/fs/cgroup/memory" / rel.strip("/")
    write(directory / "memory.limit_in_bytes", limit + "\n")
    if hier is not None:
        write(
            directory / "memory.stat",
            f"cache 0\nrss 0\nhierarchical_memory_limit {hier}\ntotal_inactive_file {MIB}\n",
        )
    write(directory / "memory.usage_in_bytes", str(100 * MIB))
    return directory


def v1_host(root: Path, cgroup_path: str, *, mount_root: str = "/", pid: str = "self") -> None:
    write(root / f"proc/{pid}/cgroup", f"9:name=systemd:/\n4:memory:{cgroup_path}\n0::/\n")
    write(
        root / "proc/self/mountinfo", V1_MOUNT.format(root=mount_root) + V2_MOUNT.format(root="/")
    )
    v1_group(root, "/")


def v2_host(root: Path, cgroup_path: str, limits: dict[str, str]) -> None:
    """cgroup2 at /sys/fs/cgroup; ``limits``: {cgroup path: memory.max}."""
    write(root / "proc/self/cgroup", f"0::{cgroup_path}\n")
    write(root / "proc/self/mountinfo", V2_MOUNT.format(root="/"))
    base = root / "sys/fs/cgroup"
    base.mkdir(parents=True, exist_ok=True)
    for rel, value in limits.items():
        directory = base / rel.strip("/")
        write(directory / "memory.max", value + "\n")
        write(directory / "memory.current", str(50 * MIB) + "\n")


class TestCgroupV1:
    def test_the_hierarchical_limit_counts_although_the_own_file_says_unlimited(
        self, tmp_path: Path
    ) -> None:
        """A container's limit set on an ancestor shows in memory.stat, not limit_in_bytes."""
        v1_host(tmp_path, "/ci/job")
        v1_group(tmp_path, "/ci", limit=str(600 * MIB))
        leaf = v1_group(tmp_path, "/ci/job", hier=str(600 * MIB))
        found = find_memory_cgroup(root=tmp_path)
        assert found == CgroupMemory(1, leaf, 600 * MIB, leaf / "memory.stat", 100 * MIB, MIB)
        assert found.working_set_bytes == 99 * MIB

    def test_an_ancestor_limit_is_found_without_memory_stat(self, tmp_path: Path) -> None:
        """Without memory.stat each level's limit_in_bytes up to the mount point is read."""
        v1_host(tmp_path, "/ci/job")
        parent = v1_group(tmp_path, "/ci", limit=str(800 * MIB))
        v1_group(tmp_path, "/ci/job")
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert (found.limit_bytes, found.limit_from) == (
            800 * MIB,
            parent / "memory.limit_in_bytes",
        )

    def test_unlimited_everywhere_is_no_limit(self, tmp_path: Path) -> None:
        """The top level's 9223372036854771712 means no limit."""
        v1_host(tmp_path, "/ci/job")
        v1_group(tmp_path, "/ci/job", hier=V1_UNLIMITED)
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.limit_bytes is None

    def test_the_mount_root_maps_the_path_onto_the_mount_point(self, tmp_path: Path) -> None:
        """A container's mount of /docker/abc at the mount point: /docker/abc/x is <mount>/x."""
        v1_host(tmp_path, "/docker/abc/x", mount_root="/docker/abc")
        leaf = v1_group(tmp_path, "/x", hier=str(300 * MIB))
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert (found.path, found.limit_bytes) == (leaf, 300 * MIB)

    def test_a_path_outside_the_mount_falls_back_to_the_mount_point(self, tmp_path: Path) -> None:
        """Host paths seen from a container without a cgroup namespace: the mount is the group."""
        v1_host(tmp_path, "/kubepods/pod1/c1", mount_root="/kubepods/pod1/c1-other")
        top = v1_group(tmp_path, "/", hier=str(2048 * MIB))
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert (found.path, found.limit_bytes) == (top, 2048 * MIB)

    def test_another_pid_is_read_from_its_own_proc_entry(self, tmp_path: Path) -> None:
        """find_memory_cgroup(pid) reads /proc/<pid>/cgroup."""
        v1_host(tmp_path, "/w", pid="4242")
        v1_group(tmp_path, "/w", hier=str(100 * MIB))
        assert find_memory_cgroup(root=tmp_path) is None
        found = find_memory_cgroup(4242, root=tmp_path)
        assert found is not None
        assert found.limit_bytes == 100 * MIB

    def test_v1_wins_on_a_hybrid_host(self, tmp_path: Path) -> None:
        """Both a memory line and 0:: : the v1 memory hierarchy is the one that limits."""
        v1_host(tmp_path, "/a")
        v1_group(tmp_path, "/a", hier=str(64 * MIB))
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.version == 1


class TestCgroupV2:
    def test_the_smallest_memory_max_up_the_tree_wins(self, tmp_path: Path) -> None:
        """Leaf "max", parent 1 GiB, grandparent 2 GiB: 1 GiB, from the parent's file."""
        limits = {
            "/": "max",
            "/ci": str(2048 * MIB),
            "/ci/job": str(1024 * MIB),
            "/ci/job/run": "max",
        }
        v2_host(tmp_path, "/ci/job/run", limits)
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.version == 2
        assert found.limit_bytes == 1024 * MIB
        assert found.limit_from == tmp_path / "sys/fs/cgroup/ci/job/memory.max"
        assert found.usage_bytes == 50 * MIB
        assert found.working_set_bytes == 50 * MIB  # no memory.stat: no cache known

    def test_the_working_set_leaves_out_inactive_file_cache(self, tmp_path: Path) -> None:
        v2_host(tmp_path, "/a", {"/a": str(900 * MIB)})
        write(tmp_path / "sys/fs/cgroup/a/memory.stat", f"anon 1\ninactive_file {20 * MIB}\n")
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.working_set_bytes == 30 * MIB

    def test_nested_limits_take_the_minimum(self, tmp_path: Path) -> None:
        """A tighter leaf under a looser parent: the leaf's."""
        v2_host(tmp_path, "/a/b/c", {"/a": str(900 * MIB), "/a/b": "max", "/a/b/c": str(700 * MIB)})
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.limit_bytes == 700 * MIB
        assert found.limit_from == tmp_path / "sys/fs/cgroup/a/b/c/memory.max"

    def test_max_everywhere_is_no_limit(self, tmp_path: Path) -> None:
        v2_host(tmp_path, "/a", {"/a": "max"})
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.limit_bytes is None

    def test_no_memory_controller_is_no_cgroup(self, tmp_path: Path) -> None:
        """A cgroup2 subtree without memory.* files tells nothing."""
        v2_host(tmp_path, "/a", {})
        (tmp_path / "sys/fs/cgroup/a").mkdir(parents=True)
        assert find_memory_cgroup(root=tmp_path) is None

    def test_an_escaped_mount_point_is_read(self, tmp_path: Path) -> None:
        r"""mountinfo writes a space as \040."""
        write(tmp_path / "proc/self/cgroup", "0::/g\n")
        write(
            tmp_path / "proc/self/mountinfo",
            "41 31 0:38 / /sys/fs/my\\040cg rw - cgroup2 cgroup2 rw\n",
        )
        write(tmp_path / "sys/fs/my cg/g/memory.max", str(5 * MIB))
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.limit_bytes == 5 * MIB


class TestUnreadable:
    def test_no_proc_is_no_cgroup(self, tmp_path: Path) -> None:
        assert find_memory_cgroup(root=tmp_path) is None

    def test_garbage_files_are_unknown_not_errors(self, tmp_path: Path) -> None:
        """Garbage in cgroup, mountinfo and the limit files: no limit, no exception."""
        write(tmp_path / "proc/self/cgroup", "nonsense\n4:memory:/x\n")
        write(tmp_path / "proc/self/mountinfo", "short line\n" + V1_MOUNT.format(root="/"))
        v1_group(tmp_path, "/x", limit="lots", hier="many")
        found = find_memory_cgroup(root=tmp_path)
        assert found is not None
        assert found.limit_bytes is None

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cgroups are Linux")
    def test_this_host_answers_without_raising(self) -> None:
        """The real /proc: a cgroup or None, never an exception."""
        found = find_memory_cgroup()
        assert found is None or found.version in (1, 2)


class TestPressure:
    PSI = (
        "some avg10=12.50 avg60=3.00 avg300=1.00 total=5\n"
        "full avg10=4.00 avg60=1 avg300=0 total=2\n"
    )

    def test_a_v2_cgroup_reads_its_own_pressure(self, tmp_path: Path) -> None:
        v2_host(tmp_path, "/a", {"/a": "max"})
        write(tmp_path / "sys/fs/cgroup/a/memory.pressure", self.PSI)
        found = find_memory_cgroup(root=tmp_path)
        pressure = read_pressure(found, root=tmp_path)
        assert pressure is not None
        assert (pressure.some_avg10, pressure.full_avg10) == (12.5, 4.0)

    def test_else_the_host_pressure(self, tmp_path: Path) -> None:
        write(tmp_path / "proc/pressure/memory", self.PSI.splitlines()[0])
        pressure = read_pressure(None, root=tmp_path)
        assert pressure is not None
        assert (pressure.some_avg10, pressure.full_avg10) == (12.5, None)

    def test_unreadable_pressure_is_none(self, tmp_path: Path) -> None:
        assert read_pressure(None, root=tmp_path) is None


class TestMemoryCeiling:
    CG = CgroupMemory(1, Path("/cg"), 600 * MIB, Path("/cg/memory.stat"), 0)

    def test_the_override_wins(self) -> None:
        ceiling = memory_ceiling(cgroup=self.CG, available_bytes=10**12, override=300 * MIB)
        assert (ceiling.bytes, ceiling.kind) == (300 * MIB, "override")
        assert "--sf-memory-limit 300 MiB" in ceiling.describe()

    def test_a_cgroup_limit_below_the_ram_wins(self) -> None:
        ceiling = memory_ceiling(cgroup=self.CG, available_bytes=8 << 30)
        assert (ceiling.bytes, ceiling.kind) == (600 * MIB, "cgroup")
        assert "cgroup v1 limit" in ceiling.source

    def test_less_ram_than_the_cgroup_allows_wins(self) -> None:
        """Available RAM plus what the run already holds, when that is smaller."""
        ceiling = memory_ceiling(cgroup=self.CG, available_bytes=200 * MIB, held_bytes=100 * MIB)
        assert (ceiling.bytes, ceiling.kind) == (300 * MIB, "ram")

    def test_no_cgroup_is_the_ram(self) -> None:
        ceiling = memory_ceiling(cgroup=None, available_bytes=4 << 30, held_bytes=1 << 30)
        assert ceiling.bytes == 5 << 30
        assert ceiling.describe() == "5.0 GiB (available RAM)"


class TestSizes:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("600M", 600 * MIB),
            ("600m", 600 * MIB),
            ("600MiB", 600 * MIB),
            ("600 MB", 600 * MIB),
            ("1.5GiB", 3 << 29),
            ("2G", 2 << 30),
            ("512k", 512 << 10),
            ("4096", 4096),
            ("4096B", 4096),
            ("1T", 1 << 40),
        ],
    )
    def test_sizes_parse_in_binary_units(self, text: str, expected: int) -> None:
        assert parse_size(text) == expected

    @pytest.mark.parametrize("text", ["", "lots", "-5M", "5X", "M", "0", "0.1", "1.2.3G", "5i"])
    def test_a_bad_size_names_its_source_and_the_fix(self, text: str) -> None:
        with pytest.raises(ConfigError, match=r"^\[tool.shadowfarm\] memory_limit: .*e\.g\. 600M"):
            parse_size(text, source="[tool.shadowfarm] memory_limit")

    @given(st.integers(min_value=1, max_value=1 << 50))
    def test_plain_bytes_and_mebibytes_parse_exactly(self, n: int) -> None:
        assert parse_size(str(n)) == n
        assert parse_size(f"{n}M") == n * MIB

    @given(st.integers(min_value=1024, max_value=1 << 45))
    def test_a_printed_size_parses_back_within_its_rounding(self, n: int) -> None:
        """format_size keeps three significant figures: parsing its text is within 5%."""
        text = format_size(n).replace(" ", "")
        assert abs(parse_size(text) - n) <= 0.05 * n

    def test_unlimited_is_far_above_any_machine(self) -> None:
        assert int(V1_UNLIMITED) >= UNLIMITED
