"""Change impact: how close each test module is, through imports, to a changed file.

A changed (or new, untracked) test file gives its tests the full signal; a test module
that imports a changed project module gets :data:`DIRECT_IMPORT`, halved for every
further hop (``test_cart.py`` → ``cart.py`` → ``pricing.py`` is two hops from
``pricing.py``). A ``conftest.py`` counts as imported by every test module below it, so
a change in code a conftest imports reaches those tests one hop later. The nearest
changed file wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_shadowfarm.estimate import module_key
from pytest_shadowfarm.priority.changes import changed_files
from pytest_shadowfarm.priority.imports import ImportCache, ImportGraph

__all__ = [
    "CHANGED_TEST_FILE",
    "DECAY_PER_HOP",
    "DIRECT_IMPORT",
    "ChangeImpact",
    "Impact",
    "analyze_changes",
    "conftest_chain",
    "impact_value",
    "test_file_impacts",
]

#: the signal of a test whose own file changed
CHANGED_TEST_FILE = 1.0
#: … of a test whose module imports a changed file directly
DIRECT_IMPORT = 0.6
#: … multiplied by this for each further hop
DECAY_PER_HOP = 0.5


def impact_value(hops: int) -> float:
    """The change signal of a test module ``hops`` imports away from a changed file."""
    if hops <= 0:
        return CHANGED_TEST_FILE
    return DIRECT_IMPORT * DECAY_PER_HOP ** (hops - 1)


@dataclass(frozen=True)
class Impact:
    """Why and how much one test module is affected by the changes."""

    hops: int
    #: the nearest changed file, relative to rootdir when it is inside it
    via: str

    @property
    def value(self) -> float:
        return impact_value(self.hops)

    @property
    def reason(self) -> str:
        if self.hops == 0:
            return "test file changed"
        suffix = "" if self.hops == 1 else f" ({self.hops} imports away)"
        return f"imports changed {self.via}{suffix}"


@dataclass(frozen=True)
class ChangeImpact:
    """The change signal of a run: the base compared against and the impact per test file."""

    base: str
    #: how many files differ from the base
    changed: int
    #: nodeid file part ("tests/test_cart.py") -> impact; unaffected files are absent
    by_file: Mapping[str, Impact] = field(default_factory=dict)

    def for_nodeid(self, nodeid: str) -> Impact | None:
        return self.by_file.get(module_key(nodeid))


def conftest_chain(test_file: Path, rootdir: Path) -> list[Path]:
    """The conftest.py files pytest loads for ``test_file``: its directory up to rootdir."""
    found = []
    directory = test_file.parent
    while True:
        candidate = directory / "conftest.py"
        if candidate.is_file():
            found.append(candidate)
        if directory == rootdir or directory.parent == directory:
            break
        if not directory.is_relative_to(rootdir):
            break
        directory = directory.parent
    return found


def _label(path: Path, rootdir: Path) -> str:
    return path.relative_to(rootdir).as_posix() if path.is_relative_to(rootdir) else str(path)


def test_file_impacts(
    test_files: Mapping[str, Path],
    changed: Iterable[Path],
    graph: ImportGraph,
    rootdir: Path,
) -> dict[str, Impact]:
    """Impact per test file key (``test_files`` maps nodeid file parts to paths)."""
    rootdir = rootdir.resolve()
    targets = {p.resolve() for p in changed}
    if not targets:
        return {}
    resolved = {key: path.resolve() for key, path in test_files.items()}
    if not any(t.suffix == ".py" for t in targets) and not targets & set(resolved.values()):
        return {}  # only data or docs changed: nothing an import can reach
    for path in resolved.values():
        graph.add_edges(path, conftest_chain(path, rootdir))
    nearest = graph.nearest(resolved.values(), targets)
    impacts = {}
    for key, path in sorted(resolved.items()):
        if path in targets:  # also a non-Python test file (a doctest .txt)
            impacts[key] = Impact(0, _label(path, rootdir))
        elif path in nearest:
            hops, origin = nearest[path]
            impacts[key] = Impact(hops, _label(origin, rootdir))
    return impacts


def analyze_changes(
    rootdir: Path,
    nodeids: Iterable[str],
    *,
    base: str | None = None,
    search_paths: Sequence[Path] = (),
    cache_path: Path | None = None,
) -> ChangeImpact:
    """The change impact for these tests; raises ChangeDetectionError when git cannot tell.

    ``search_paths`` are the ini ``pythonpath`` entries (absolute paths); rootdir and
    ``rootdir/src`` are always searched. The parsed imports are cached in ``cache_path``.
    """
    rootdir = rootdir.resolve()
    changes = changed_files(rootdir, base)
    files = {key: rootdir / key for key in dict.fromkeys(module_key(n) for n in nodeids)}
    cache = ImportCache(cache_path)
    roots = [rootdir, rootdir / "src", *search_paths]
    graph = ImportGraph([r for r in roots if r.is_dir()], cache)
    by_file = test_file_impacts(files, changes.paths, graph, rootdir)
    cache.save()
    return ChangeImpact(base=changes.base, changed=len(changes.paths), by_file=by_file)
