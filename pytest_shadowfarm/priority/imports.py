"""The project's static import graph, read from the source with :mod:`ast`.

Which project files does a test module execute when it is imported? Every ``import`` and
``from ... import`` anywhere in a file (also inside functions and ``try``) is an edge, as
are ``importlib.import_module("a.b")`` and ``__import__("a.b")`` with a literal name, and
the package ``__init__.py`` files that importing a dotted name runs. A name computed at
run time cannot be read from the source and is not followed. Names are
resolved like the interpreter would under pytest's default ``prepend`` import mode:
against the importing file's *basedir* (its first ancestor directory without an
``__init__.py``, which pytest puts on ``sys.path``), then the roots passed in (rootdir,
``rootdir/src``, the ini ``pythonpath`` entries). A name found in none of them is a third
party or stdlib module and not part of the graph: only project files can be "changed".

Parsing is the costly part, so parsed imports are cached by the SHA-1 of the file
content (:class:`ImportCache`, a small JSON file); resolution depends on where a file
lives and is redone each run, which costs a few ``stat`` calls per import.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CACHE_VERSION", "ImportCache", "ImportGraph", "ImportSpec", "parse_imports"]

#: 2: literal import_module/__import__ calls are edges too
CACHE_VERSION = 2


@dataclass(frozen=True)
class ImportSpec:
    """One imported name as written: ``from ..a.b import c, d`` is ("a.b", 2, ("c", "d"))."""

    module: str
    level: int = 0
    names: tuple[str, ...] = ()


def parse_imports(source: bytes) -> tuple[ImportSpec, ...]:
    """Every import statement of a Python source, in source order; () if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # NUL bytes; deep nesting
        return ()
    specs: list[ImportSpec] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            specs.extend(ImportSpec(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            specs.append(ImportSpec(node.module or "", node.level, names))
        elif isinstance(node, ast.Call) and (name := _literal_import(node)):
            specs.append(ImportSpec(name))
    return tuple(specs)


def _literal_import(call: ast.Call) -> str | None:
    """ "a.b" of ``import_module("a.b")`` / ``importlib.import_module("a.b")`` / ``__import__``."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    value = first.value if isinstance(first, ast.Constant) else None
    # a relative name needs package= to resolve: not followed
    if isinstance(value, str) and value and not value.startswith("."):
        return value
    return None


class ImportCache:
    """Parsed imports by content hash, kept in a JSON file between runs.

    The file is an optimisation only: unreadable, foreign or from another version means
    an empty cache; a failed write is ignored. :meth:`save` keeps only the entries used
    in this run, so the file does not grow with every edit.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, tuple[ImportSpec, ...]] = {}
        self._used: set[str] = set()
        self._dirty = False
        self.hits = self.misses = 0
        if path is not None:
            self._entries = self._load(path)

    @staticmethod
    def _load(path: Path) -> dict[str, tuple[ImportSpec, ...]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION:
                return {}
            return {
                key: tuple(ImportSpec(str(m), int(lv), tuple(map(str, ns))) for m, lv, ns in specs)
                for key, specs in data["files"].items()
            }
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def specs(self, source: bytes) -> tuple[ImportSpec, ...]:
        key = hashlib.sha1(source, usedforsecurity=False).hexdigest()
        self._used.add(key)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        self._dirty = True
        parsed = self._entries[key] = parse_imports(source)
        return parsed

    def save(self) -> bool:
        """Write the entries used since loading; True when the file was (re)written."""
        if self.path is None or not self._used:
            return False  # nothing was looked up: keep the file as it is
        if not (self._dirty or set(self._entries) - self._used):
            return False
        data: dict[str, Any] = {
            "version": CACHE_VERSION,
            "files": {
                key: [[s.module, s.level, list(s.names)] for s in self._entries[key]]
                for key in sorted(self._used)
            },
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError:
            return False
        self._dirty = False
        return True


class _Tree:
    """Directory listings, read once each: resolution asks "is there a.py here?" a lot."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str] | None] = {}
        self._basedirs: dict[str, str] = {}

    def names(self, directory: str) -> frozenset[str] | None:
        """The entries of ``directory``, or None when it is no directory."""
        try:
            return self._names[directory]
        except KeyError:
            pass
        try:
            found: frozenset[str] | None = frozenset(os.listdir(directory))
        except OSError:
            found = None
        self._names[directory] = found
        return found

    def has(self, directory: str, name: str) -> bool:
        names = self.names(directory)
        return names is not None and name in names

    def basedir(self, directory: str) -> str:
        """The first of ``directory`` and its ancestors that is not a package."""
        found = self._basedirs.get(directory)
        if found is None:
            parent = os.path.dirname(directory)
            if self.has(directory, "__init__.py") and parent != directory:
                found = self.basedir(parent)
            else:
                found = directory
            self._basedirs[directory] = found
        return found


def basedir(path: Path) -> Path:
    """The first ancestor directory of ``path`` that is not a package (pytest's basedir)."""
    return Path(_Tree().basedir(str(path.parent)))


class ImportGraph:
    """Direct and transitive project-file dependencies, built lazily from the files.

    Paths are absolute; internally they are plain strings, since building ``Path``
    objects costs more than the resolution itself on a large project.
    """

    def __init__(self, roots: Sequence[Path], cache: ImportCache | None = None) -> None:
        self.roots = tuple(dict.fromkeys(str(Path(r).resolve()) for r in roots))
        self.cache = cache if cache is not None else ImportCache()
        self._tree = _Tree()
        self._deps: dict[str, frozenset[str]] = {}
        self._extra: dict[str, set[str]] = defaultdict(set)
        self._found: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[list[str], bool]] = {}

    def add_edges(self, source: Path, targets: Iterable[Path]) -> None:
        """Dependencies that are not imports (a test module on its conftest.py files)."""
        key = str(source.resolve())
        self._extra[key].update(str(t.resolve()) for t in targets)
        self._deps.pop(key, None)

    # --- resolution -----------------------------------------------------------------------

    def _find(self, parts: tuple[str, ...], roots: tuple[str, ...]) -> tuple[list[str], bool]:
        """Files run by importing the dotted ``parts``, and whether the full name resolved."""
        key = (parts, roots)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._search(parts, roots)
        return found

    def _search(self, parts: tuple[str, ...], roots: tuple[str, ...]) -> tuple[list[str], bool]:
        has = self._tree.has
        partial: list[str] = []
        for root in roots:
            files: list[str] = []
            directory = root
            resolved = True
            for i, part in enumerate(parts):
                package = os.path.join(directory, part)
                if has(package, "__init__.py"):
                    files.append(os.path.join(package, "__init__.py"))
                    directory = package
                elif has(directory, part + ".py"):
                    files.append(os.path.join(directory, part + ".py"))
                    resolved = i == len(parts) - 1  # a module has no submodules
                    break
                elif self._tree.names(package) is not None:  # a namespace package
                    directory = package
                else:
                    resolved = False
                    break
            if resolved:
                return files, True
            if files and not partial:
                partial = files
        return partial, False

    def _resolve(self, spec: ImportSpec, importer: str) -> list[str]:
        parts = tuple(p for p in spec.module.split(".") if p)
        directory = os.path.dirname(importer)
        if spec.level:
            anchor = directory
            for _ in range(spec.level - 1):
                anchor = os.path.dirname(anchor)
            roots: tuple[str, ...] = (anchor,)
            found = (
                [os.path.join(anchor, "__init__.py")]
                if self._tree.has(anchor, "__init__.py")
                else []
            )
            if parts:
                files, _ = self._find(parts, roots)
                found += files
        else:
            if not parts:
                return []
            roots = (self._tree.basedir(directory), *self.roots)
            found = list(self._find(parts, roots)[0])  # a copy: the memo must not grow
        for name in spec.names:  # `from package import submodule`
            files, ok = self._find((*parts, name), roots)
            if ok:
                found += files
        return found

    def _dependencies(self, path: str) -> frozenset[str]:
        deps = self._deps.get(path)
        if deps is None:
            found: set[str] = set(self._extra.get(path, ()))
            if path.endswith(".py"):
                try:
                    with open(path, "rb") as fh:
                        source = fh.read()
                except OSError:
                    source = b""
                for spec in self.cache.specs(source):
                    found.update(self._resolve(spec, path))
            found.discard(path)
            deps = self._deps[path] = frozenset(found)
        return deps

    def dependencies(self, path: Path) -> frozenset[Path]:
        """The project files ``path`` imports directly (plus edges from :meth:`add_edges`)."""
        return frozenset(Path(d) for d in self._dependencies(str(path.resolve())))

    # --- traversal ------------------------------------------------------------------------

    def _reachable(self, starts: Iterable[str]) -> dict[str, frozenset[str]]:
        seen: dict[str, frozenset[str]] = {}
        queue = deque(starts)
        while queue:
            path = queue.popleft()
            if path in seen:
                continue
            deps = seen[path] = self._dependencies(path)
            queue.extend(d for d in deps if d not in seen)
        return seen

    def reachable(self, starts: Iterable[Path]) -> dict[Path, frozenset[Path]]:
        """Every file reachable from ``starts``, with its direct dependencies."""
        graph = self._reachable(str(p.resolve()) for p in starts)
        return {Path(p): frozenset(Path(d) for d in deps) for p, deps in graph.items()}

    def nearest(
        self, starts: Iterable[Path], targets: Iterable[Path]
    ) -> dict[Path, tuple[int, Path]]:
        """For each start that reaches a target: (import hops, the nearest target).

        0 hops means the start is a target itself. One breadth-first search backwards
        from all targets at once, so the cost is one pass over the graph, not one per
        start; ties between targets go to the one first in sorted order.
        """
        start_list = [str(p.resolve()) for p in starts]
        graph = self._reachable(start_list)
        importers: dict[str, list[str]] = defaultdict(list)
        for source, deps in graph.items():
            for dep in deps:
                importers[dep].append(source)
        found: dict[str, tuple[int, str]] = {}
        queue: deque[str] = deque()
        for target in sorted({str(t.resolve()) for t in targets}):
            if target in graph and target not in found:
                found[target] = (0, target)
                queue.append(target)
        while queue:
            path = queue.popleft()
            hops, origin = found[path]
            for importer in sorted(importers.get(path, ())):
                if importer not in found:
                    found[importer] = (hops + 1, origin)
                    queue.append(importer)
        return {Path(s): (found[s][0], Path(found[s][1])) for s in start_list if s in found}
