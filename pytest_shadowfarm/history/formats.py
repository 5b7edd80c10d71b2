"""Other tools' history files: pytest-split's ``.test_durations``, JUnit XML and ``lastfailed``.

Each reader turns one file into an :class:`Imported` pair (a :class:`RunRecord` and its
results) for :meth:`HistoryStore.record_run`. The whole file is checked before anything
is returned, so a bad file raises :class:`ImportFormatError` (naming the file, what is
wrong and what was expected) and nothing reaches the history. The writers render what a
store knows in the same formats, so other tools and CI dashboards can read our history.

JUnit XML names a test by ``classname`` + ``name`` (``tests.test_mod.TestCls`` +
``test_x[1]``), not by node id. To get the node id back (``tests/test_mod.py::TestCls::
test_x[1]``) we find where the module ends in the dotted classname, in this order:

1. the ``file`` attribute (``junit_family=xunit1``), when its dotted form starts the
   classname (it does not for a test inherited from a base class in another file: the
   file is then the base class's, and the next rules apply);
2. the longest dotted prefix that is an existing ``.py`` file under ``rootdir``;
3. a heuristic: the trailing parts that start with an uppercase letter are classes,
   the rest is the module path. It guesses wrong for modules or packages whose names
   start with an uppercase letter and for directories with dots in their names; pass
   the right ``rootdir`` (or use xunit1) for those.

``--junit-prefix`` classnames are recognised with rule 1 only.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from pytest_shadowfarm.errors import ImportFormatError
from pytest_shadowfarm.history.junit_export import dotted as dotted_module
from pytest_shadowfarm.history.junit_export import dumps_junit
from pytest_shadowfarm.history.records import FAILING, ResultRecord, RunRecord
from pytest_shadowfarm.history.store import HistoryStore

__all__ = [
    "FORMATS",
    "Imported",
    "detect_format",
    "dumps_junit",
    "dumps_lastfailed",
    "dumps_test_durations",
    "export_history",
    "read_history_file",
    "read_junit",
    "read_lastfailed",
    "read_test_durations",
]

FORMATS = ("test-durations", "junit", "lastfailed")

#: the ``<testsuite name=...>`` of exported JUnit XML

_EXPECT_DURATIONS = 'a JSON object {"nodeid": seconds} or a list of ["nodeid", seconds] pairs'
_EXPECT_LASTFAILED = 'a JSON object {"nodeid": true} (pytest\'s .pytest_cache/v/cache/lastfailed)'
_EXPECT_JUNIT = "JUnit XML as pytest --junitxml writes it (<testsuites> or <testsuite> root)"

#: when one node id has several <testcase> elements (pytest writes two for a failing
#: call followed by a teardown error), the outcome with the highest rank is kept
_RANK = {"passed": 0, "xpassed": 0, "skipped": 1, "xfailed": 1, "error": 2, "failed": 3}


class Imported(NamedTuple):
    """One imported file: the run to record and its results."""

    run: RunRecord
    results: list[ResultRecord]


def _bad(path: Path, what: str, expected: str) -> ImportFormatError:
    return ImportFormatError(f"{path}: {what}; expected {expected}")


def _counts(results: Sequence[ResultRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return counts


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


# --- reading ------------------------------------------------------------------------------


def read_history_file(path: Path, *, fmt: str = "auto", rootdir: Path | None = None) -> Imported:
    """Read ``path`` in format ``fmt`` (one of :data:`FORMATS`, or "auto" to detect it).

    ``rootdir`` is where JUnit classnames are resolved to test files (see the module
    docstring). Raises :class:`OSError` if the file cannot be read and
    :class:`ImportFormatError` if it is not in the format.
    """
    data = path.read_bytes()
    if fmt == "auto":
        fmt = detect_format(path, data)
    if fmt == "junit":
        return _parse_junit(path, data, rootdir)
    if fmt == "test-durations":
        return _parse_test_durations(path, _load_json(path, data, _EXPECT_DURATIONS))
    if fmt == "lastfailed":
        return _parse_lastfailed(path, _load_json(path, data, _EXPECT_LASTFAILED))
    msg = f"unknown history file format {fmt!r}; expected auto or one of {', '.join(FORMATS)}"
    raise ImportFormatError(msg)


def read_test_durations(path: Path) -> Imported:
    """Read a pytest-split ``.test_durations`` file (either JSON form)."""
    return read_history_file(path, fmt="test-durations")


def read_junit(path: Path, *, rootdir: Path | None = None) -> Imported:
    """Read JUnit XML (xunit1 or xunit2) written by pytest's ``--junitxml``."""
    return read_history_file(path, fmt="junit", rootdir=rootdir)


def read_lastfailed(path: Path) -> Imported:
    """Read pytest's ``lastfailed`` cache file."""
    return read_history_file(path, fmt="lastfailed")


def detect_format(path: Path, data: bytes) -> str:
    """Tell the format of a file from its content, and from its name where content is silent."""
    text = data.lstrip()
    if text.startswith(b"<"):
        return "junit"
    by_name = _format_by_name(path)
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        if by_name is not None:
            return by_name  # its reader says what exactly is wrong
        if text.startswith((b"{", b"[")) or path.suffix.lower() == ".json":
            what = f"is not valid JSON ({exc})"
            raise _bad(path, what, f"{_EXPECT_DURATIONS} or {_EXPECT_LASTFAILED}") from None
        expected = f"{_EXPECT_DURATIONS}, {_EXPECT_LASTFAILED} or {_EXPECT_JUNIT}"
        raise _bad(path, "is neither JSON nor XML", expected) from None
    if isinstance(parsed, list):
        return "test-durations"
    if isinstance(parsed, dict) and parsed:
        first = next(iter(parsed.values()))
        return "lastfailed" if isinstance(first, bool) else "test-durations"
    return by_name or "test-durations"


def _format_by_name(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".xml"):
        return "junit"
    if "lastfailed" in name:
        return "lastfailed"
    if "test_durations" in name:
        return "test-durations"
    return None


def _load_json(path: Path, data: bytes, expected: str) -> object:
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise _bad(path, f"is not UTF-8 text ({exc.reason})", expected) from None
    except json.JSONDecodeError as exc:
        what = f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise _bad(path, what, expected) from None


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _check_nodeid(path: Path, nodeid: object, expected: str) -> str:
    if not isinstance(nodeid, str) or not nodeid.strip():
        raise _bad(path, f"node id {nodeid!r} is not a non-empty string", expected)
    return nodeid


def _seconds(path: Path, where: str, raw: object, *, text: bool = False) -> float:
    """A duration from a file: a finite number >= 0, else ImportFormatError.

    ``text``: the value is an XML attribute, so a numeric string is what it should be.
    """
    if isinstance(raw, str) and text:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise _bad(path, f"{where} has duration {raw!r}", "a number of seconds >= 0")
    return value


def _parse_test_durations(path: Path, data: object) -> Imported:
    pairs: list[tuple[object, object]]
    if isinstance(data, dict):
        pairs = list(data.items())
    elif isinstance(data, list):
        pairs = []
        for index, item in enumerate(data):
            if not (isinstance(item, list) and len(item) == 2):
                what = f"item {index} of the list is {json.dumps(item)[:80]}"
                raise _bad(path, what, _EXPECT_DURATIONS)
            pairs.append((item[0], item[1]))
    else:
        raise _bad(path, f"the top level is a JSON {_json_kind(data)}", _EXPECT_DURATIONS)
    durations: dict[str, float] = {}
    for raw_id, raw_seconds in pairs:
        nodeid = _check_nodeid(path, raw_id, _EXPECT_DURATIONS)
        # A later duplicate wins, as it does when pytest-split reads the list form.
        durations[nodeid] = _seconds(path, f"test {nodeid!r}", raw_seconds)
    results = [
        ResultRecord(nodeid, "passed", setup_s=0.0, call_s=seconds, teardown_s=0.0)
        for nodeid, seconds in durations.items()
    ]
    when = _mtime(path)
    run = RunRecord(when, when, counts=_counts(results), source="import:test_durations")
    return Imported(run, results)


def _parse_lastfailed(path: Path, data: object) -> Imported:
    if not isinstance(data, dict):
        raise _bad(path, f"the top level is a JSON {_json_kind(data)}", _EXPECT_LASTFAILED)
    results = []
    for raw_id, flag in data.items():
        nodeid = _check_nodeid(path, raw_id, _EXPECT_LASTFAILED)
        if flag is not True:
            raise _bad(path, f"test {nodeid!r} maps to {json.dumps(flag)}", _EXPECT_LASTFAILED)
        results.append(ResultRecord(nodeid, "failed", setup_s=None, call_s=None, teardown_s=None))
    when = _mtime(path)
    return Imported(
        RunRecord(when, when, counts=_counts(results), source="import:lastfailed"), results
    )


# --- JUnit XML ------------------------------------------------------------------------------


class _ModuleFinder:
    """Splits a dotted classname into (module path, classes); see the module docstring."""

    def __init__(self, rootdir: Path | None) -> None:
        self.rootdir = rootdir
        self._cache: dict[str, tuple[str, list[str]]] = {}

    def split(self, classname: str, file: str | None) -> tuple[str, list[str]]:
        if file:
            dotted = dotted_module(file)
            padded = f".{classname}."
            at = padded.find(f".{dotted}.")
            if at >= 0:
                rest = padded[at + len(dotted) + 2 : -1]
                return file, rest.split(".") if rest else []
        if classname not in self._cache:
            self._cache[classname] = self._resolve(classname.split("."))
        return self._cache[classname]

    def _resolve(self, parts: list[str]) -> tuple[str, list[str]]:
        if self.rootdir is not None:
            for end in range(len(parts), 0, -1):
                candidate = "/".join(parts[:end]) + ".py"
                if (self.rootdir / candidate).is_file():
                    return candidate, parts[end:]
        end = len(parts)
        while end > 1 and parts[end - 1][:1].isupper():
            end -= 1
        return "/".join(parts[:end]) + ".py", parts[end:]


def _outcome(case: ET.Element) -> str:
    tags = {child.tag: child for child in case}
    if "failure" in tags:
        return "failed"
    if "error" in tags:
        return "error"
    if "skipped" in tags:
        return "xfailed" if tags["skipped"].get("type") == "pytest.xfail" else "skipped"
    return "passed"


def _suite_start(suite: ET.Element) -> float | None:
    stamp = suite.get("timestamp")
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()  # naive stamps are local time
    except ValueError:
        return None  # metadata only: a tool's odd timestamp is no reason to refuse the file


def _parse_junit(path: Path, data: bytes, rootdir: Path | None) -> Imported:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise _bad(path, f"is not well-formed XML ({exc})", _EXPECT_JUNIT) from None
    if root.tag not in ("testsuites", "testsuite"):
        raise _bad(path, f"the root element is <{root.tag}>", _EXPECT_JUNIT)
    finder = _ModuleFinder(rootdir)
    found: dict[str, tuple[str, float | None]] = {}
    for index, case in enumerate(root.iter("testcase")):
        name = case.get("name")
        classname = case.get("classname", "")
        if not name:
            raise _bad(path, f"<testcase> number {index + 1} has no name", _EXPECT_JUNIT)
        # pytest writes collection errors with an empty classname and internal errors as
        # pytest.internal: neither is a test with a node id.
        if not classname or (classname, name) == ("pytest", "internal"):
            continue
        where = f"<testcase classname={classname!r} name={name!r}>"
        raw_time = case.get("time")
        seconds = None if raw_time is None else _seconds(path, where, raw_time, text=True)
        module, classes = finder.split(classname, case.get("file"))
        nodeid = "::".join([module, *classes, name])
        outcome = _outcome(case)
        if nodeid in found:
            old_outcome, old_seconds = found[nodeid]
            outcome = max(outcome, old_outcome, key=_RANK.__getitem__)
            if old_seconds is not None:
                seconds = old_seconds + (seconds or 0.0)
        found[nodeid] = (outcome, seconds)
    # pytest's testcase time is setup + call + teardown (junit_duration_report=total);
    # it goes to call_s. Without a time, no phase is known (all None, like lastfailed).
    results = [
        ResultRecord(nodeid, outcome, 0.0, seconds, 0.0)
        if seconds is not None
        else ResultRecord(nodeid, outcome, None, None, None)
        for nodeid, (outcome, seconds) in found.items()
    ]
    starts, ends = [], []
    for suite in root.iter("testsuite"):
        start = _suite_start(suite)
        if start is not None:
            starts.append(start)
            try:
                ends.append(start + max(0.0, float(suite.get("time", "0"))))
            except ValueError:
                ends.append(start)
    started = min(starts) if starts else _mtime(path)
    finished = max(ends) if ends else started
    run = RunRecord(started, finished, counts=_counts(results), source="import:junit")
    return Imported(run, results)


# --- writing ------------------------------------------------------------------------------


def dumps_test_durations(durations: Mapping[str, Sequence[float]]) -> str:
    """pytest-split's ``.test_durations``: each test's median kept duration."""
    medians = {nodeid: statistics.median(ds) for nodeid, ds in durations.items() if ds}
    return json.dumps(medians, indent=2, sort_keys=True) + "\n"


def dumps_lastfailed(last: Mapping[str, ResultRecord]) -> str:
    """pytest's ``lastfailed``: the tests whose newest result failed or errored."""
    failed = {nodeid: True for nodeid, r in last.items() if r.outcome in FAILING}
    # The same dump options as pytest's Cache.set, so the files diff cleanly.
    return json.dumps(failed, ensure_ascii=False, indent=2, sort_keys=True)


def export_history(store: HistoryStore, path: Path, fmt: str, *, now: float | None = None) -> int:
    """Write ``store`` to ``path`` in format ``fmt``; return how many tests were written."""
    if fmt == "test-durations":
        durations = store.durations()
        text, count = dumps_test_durations(durations), len(durations)
    elif fmt == "junit":
        last = store.last_results()
        text, count = dumps_junit(last, timestamp=now), len(last)
    elif fmt == "lastfailed":
        last = store.last_results()
        text = dumps_lastfailed(last)
        count = sum(r.outcome in FAILING for r in last.values())
    else:
        msg = f"unknown history file format {fmt!r}; expected one of {', '.join(FORMATS)}"
        raise ImportFormatError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename, so a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return count
