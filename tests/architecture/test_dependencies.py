"""The structure rules of the code base, read from the source (AST only, nothing imported).

- no import cycle between modules, imports inside functions and ``TYPE_CHECKING`` blocks
  included (two modules that name each other know each other: pass a Protocol or a value);
- the top-level packages form a one-way graph: ``shadowfarm_wire`` <- ``pytest_shadowfarm``
  and ``farm_server``, which never import each other (the admin CLI,
  ``pytest_shadowfarm.cli``, is the one composition root that may import both);
- the subpackages of the plugin form a one-way graph too;
- no module over 450 lines;
- no feature looks another up by name (``getplugin("shadowfarm-...")``), and xdist's
  DSession is looked up in one module;
- the logic that must be testable without pytest imports no pytest.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("shadowfarm_wire", "pytest_shadowfarm", "farm_server")
MAX_LINES = 450
#: modules and packages whose logic is tested without pytest: they must not import it
PYTEST_FREE = (
    "shadowfarm_wire",
    "pytest_shadowfarm.run",
    "pytest_shadowfarm.estimate",
    "pytest_shadowfarm.history",
    "pytest_shadowfarm.priority",
    "pytest_shadowfarm.registry",
    "pytest_shadowfarm.workers.health",
    "pytest_shadowfarm.workers.ceiling",
    "pytest_shadowfarm.workers.trend",
    "pytest_shadowfarm.sizes",
    "pytest_shadowfarm.workers.source",
    "pytest_shadowfarm.farm.source",
    "pytest_shadowfarm.swarm.policy",
    "pytest_shadowfarm.swarm.progress",
    "pytest_shadowfarm.sched.policy",
    "pytest_shadowfarm.recorder",
    "pytest_shadowfarm.report.runreport",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(f for pkg in PACKAGES for f in (REPO / pkg).rglob("*.py"))


def imported(path: Path, known: set[str]) -> set[str]:
    """Our modules that ``path`` imports, anywhere in the file."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def resolve(name: str) -> None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                resolve(full if full in known else base)
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    files = source_files()
    known = {module_name(f) for f in files}
    out: dict[str, set[str]] = {}
    for f in files:
        me = module_name(f)
        deps = imported(f, known)
        if f.name == "__init__.py":  # a package's face may import its own modules
            deps = {d for d in deps if not d.startswith(me + ".")}
        # importing a name from one's own package's __init__ is not a cycle with it
        out[me] = {d for d in deps if not me.startswith(d + ".")}
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def collapse(edges: dict[str, set[str]], group: Iterable[str]) -> dict[str, set[str]]:
    """The graph between groups: ``group`` maps a module name to its group's name."""
    name_of = dict(zip(edges, group, strict=True))
    out: dict[str, set[str]] = {}
    for a, deps in edges.items():
        for b in deps:
            ga, gb = name_of[a], name_of.get(b, b)
            if ga != gb:
                out.setdefault(ga, set()).add(gb)
    return out


def top_level(module: str) -> str:
    if module.startswith("pytest_shadowfarm.cli"):
        return "pytest_shadowfarm.cli"
    return module.split(".")[0]


def subpackage(module: str) -> str:
    return ".".join(module.split(".")[:2])


class TestDependencies:
    def test_no_module_imports_a_module_that_imports_it_back(self) -> None:
        """No import cycle between modules, TYPE_CHECKING and function-level imports included."""
        assert cycles(graph()) == []

    def test_the_top_level_packages_form_a_one_way_graph(self) -> None:
        """shadowfarm_wire <- plugin, daemon; plugin and daemon never import each other."""
        edges = graph()
        between = collapse(edges, map(top_level, edges))
        assert cycles(between) == []
        assert "farm_server" not in between.get("pytest_shadowfarm", set())
        assert "pytest_shadowfarm" not in between.get("farm_server", set())
        assert between.get("shadowfarm_wire", set()) == set()

    def test_the_plugin_subpackages_form_a_one_way_graph(self) -> None:
        """history, priority, sched, swarm, farm, workers, report: no cycle between them."""
        edges = {m: d for m, d in graph().items() if m.startswith("pytest_shadowfarm.")}
        plugin_only = {m: {d for d in deps if d in edges} for m, deps in edges.items()}
        assert cycles(collapse(plugin_only, map(subpackage, plugin_only))) == []

    def test_the_logic_tested_without_pytest_imports_no_pytest(self) -> None:
        """History, estimate, priority, the run model and the policies never import pytest."""
        offenders = []
        for f in source_files():
            name = module_name(f)
            if not any(name == p or name.startswith(p + ".") for p in PYTEST_FREE):
                continue
            tree = ast.parse(f.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n == "pytest" or n.startswith(("pytest.", "_pytest")) for n in names):
                    offenders.append(f"{name}:{node.lineno}")
        assert offenders == []


class TestModules:
    def test_no_module_holds_more_than_450_lines(self) -> None:
        """One concept per module: none grows past 450 lines."""
        sizes = {
            module_name(f): len(f.read_text(encoding="utf-8").splitlines()) for f in source_files()
        }
        assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}

    def test_no_feature_looks_another_up_by_name_and_one_module_finds_the_dsession(self) -> None:
        """getplugin("shadowfarm-...") nowhere; getplugin("dsession") in compat.py alone."""
        by_name, dsession = [], set()
        for f in source_files():
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("getplugin", "get_plugin")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    name = str(node.args[0].value)
                    if name.startswith("shadowfarm"):
                        by_name.append(f"{module_name(f)}:{node.lineno}")
                    elif name == "dsession":
                        dsession.add(module_name(f))
        assert by_name == []
        assert dsession == {"pytest_shadowfarm.compat"}


class TestTheChecksThemselves:
    def test_a_cycle_is_found(self) -> None:
        """The cycle finder sees a three-module loop and ignores a one-way chain."""
        assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
        assert cycles({"a": {"b"}, "b": {"c"}}) == []

    def test_relative_and_type_checking_imports_count(self, tmp_path: Path) -> None:
        """An import under TYPE_CHECKING and a relative import are both edges."""
        mod = REPO / "pytest_shadowfarm" / "run.py"
        deps = imported(mod, {module_name(f) for f in source_files()})
        assert "pytest_shadowfarm.settings" in deps  # a TYPE_CHECKING import there
        assert "pytest_shadowfarm.registry" in deps
