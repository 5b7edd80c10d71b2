"""Code shipping: the project's files as one zip, named by the hash of its content.

A cluster host has none of the run's files (no shared filesystem is assumed), so the
controller packs what the run needs — its rootdir and the ``pythonpath`` entries that
lie outside it — and each host unpacks it once under its own directory. The name is
the SHA-256 of the sorted (path, mode, content) entries: an unchanged tree has the same
name and a host that has it is not sent it again.

Which files: inside a git work tree, what git would track (``git ls-files --cached
--others --exclude-standard``: committed, plus new files that ``.gitignore`` does not
exclude); elsewhere every file but caches and virtual environments. Nothing here
imports Dask or pytest.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAX_BUNDLE_BYTES", "Bundle", "bundle", "project_files"]

#: a tree over this many bytes (zipped) is refused: a cluster is no place for data sets
MAX_BUNDLE_BYTES = 256 << 20
#: never shipped, whatever .gitignore says (outside git: the only rule)
SKIP_DIRS = frozenset(
    {
        ".git",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".shadowfarm",
        "node_modules",
        ".hypothesis",
    }
)
# A fixed timestamp: the same tree gives the same zip bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _git_files(root: Path) -> list[str] | None:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def _walk(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            if not name.endswith((".pyc", ".pyo")):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def project_files(root: Path) -> list[str]:
    """The files under ``root`` to ship, relative and sorted."""
    names = _git_files(root)
    if names is None:
        names = list(_walk(root))
    keep = []
    for name in names:
        parts = Path(name).parts
        if any(part in SKIP_DIRS for part in parts[:-1]) or name.endswith((".pyc", ".pyo")):
            continue
        if (root / name).is_file():  # a deleted but tracked file, a submodule: skip
            keep.append(name)
    return sorted(set(keep))


@dataclass(frozen=True)
class Bundle:
    """The zip of a run's trees: ``roots[i]`` is unpacked as ``tree<i>/`` on a host."""

    digest: str
    data: bytes
    roots: tuple[str, ...]
    files: int
    #: per root: the top-level names it holds (tests check what was left out)
    names: tuple[tuple[str, ...], ...] = field(default=(), repr=False)

    def host_path(self, base: str, path: str) -> str | None:
        """Where ``path`` (on the controller) lies in the copy unpacked at ``base``."""
        for index, root in enumerate(self.roots):
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                rel = os.path.relpath(path, root)
                tree = os.path.join(base, f"tree{index}")
                return tree if rel == "." else os.path.join(tree, rel)
        return None


def _roots(rootdir: Path, extra: Iterable[Path]) -> list[Path]:
    """rootdir first, then the extra directories not already inside a root."""
    roots = [rootdir.resolve()]
    for path in extra:
        path = path.resolve()
        if path.is_dir() and not any(path == r or r in path.parents for r in roots):
            roots.append(path)
    return roots


def bundle(rootdir: Path, extra: Sequence[Path] = (), *, limit: int = MAX_BUNDLE_BYTES) -> Bundle:
    """Pack ``rootdir`` and ``extra`` directories; ValueError if the zip is over ``limit``."""
    roots = _roots(rootdir, extra)
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    count = 0
    names = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for index, root in enumerate(roots):
            files = project_files(root)
            names.append(tuple(sorted({Path(f).parts[0] for f in files})))
            for name in files:
                path = root / name
                data = path.read_bytes()
                mode = path.stat().st_mode & 0o777
                arcname = f"tree{index}/{Path(name).as_posix()}"
                digest.update(f"{arcname}\0{mode:o}\0{len(data)}\0".encode())
                digest.update(data)
                info = zipfile.ZipInfo(arcname, _EPOCH)
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
                count += 1
                if buffer.tell() > limit:
                    msg = (
                        f"{root}: the project's files are over {limit >> 20} MB zipped; "
                        "list the large ones in .gitignore (they are not shipped then)"
                    )
                    raise ValueError(msg)
    return Bundle(
        digest=digest.hexdigest()[:24],
        data=buffer.getvalue(),
        roots=tuple(str(r) for r in roots),
        files=count,
        names=tuple(names),
    )
