"""What makes tests one dispatch unit under each ``--dist`` mode, and how collections differ.

xdist's own modes, with the same grouping rules: ``load`` and ``worksteal`` dispatch each
test alone, ``loadscope`` a class or module, ``loadfile`` a file, ``loadgroup`` an
``xdist_group``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["SCOPES", "collection_diff", "single"]


def _loadscope(nodeid: str) -> str | None:
    return nodeid.rsplit("::", 1)[0]


def _loadfile(nodeid: str) -> str | None:
    return nodeid.split("::", 1)[0]


def _loadgroup(nodeid: str) -> str | None:
    # xdist's worker appends "@<group>" to the node ids of xdist_group tests; an "@"
    # inside the parameter brackets is not a group (xdist/scheduler/loadgroup.py).
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return "@" + nodeid.split("@")[-1]
    return None


def single(nodeid: str) -> str | None:
    return None


#: ``--dist`` mode -> what makes tests one unit (None: each test alone)
SCOPES: dict[str, Callable[[str], str | None]] = {
    "load": single,
    "worksteal": single,
    "loadscope": _loadscope,
    "loadfile": _loadfile,
    "loadgroup": _loadgroup,
}


def collection_diff(reference: Sequence[str], other: Sequence[str], ref: str, node: str) -> str:
    """A short unified diff between two collections (xdist's own formatting when present)."""
    try:
        from xdist.report import report_collection_diff
    except ImportError:  # pragma: no cover - xdist is a dependency
        return f"{node} collected {len(other)} items, {ref} collected {len(reference)}"
    return str(report_collection_diff(reference, other, ref, node))
