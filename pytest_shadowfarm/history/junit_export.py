"""Writing a history as JUnit XML, the way pytest's ``--junitxml`` writes a run.

Each test's newest result becomes one ``<testcase>``; ``shadowfarm history import`` reads
the file back to the same node ids and durations (see :mod:`.formats`).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime

from pytest_shadowfarm.history.records import ResultRecord

__all__ = ["JUNIT_SUITE_NAME", "dotted", "dumps_junit"]

JUNIT_SUITE_NAME = "shadowfarm-history"


def dotted(file: str) -> str:
    """A test file path as pytest's junitxml writes it into ``classname``."""
    return re.sub(r"\.py$", "", file.replace("/", "."))


#: characters XML 1.0 cannot carry at all (pytest's junitxml escapes them the same way)
_ILLEGAL_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _ILLEGAL_XML.sub(lambda m: f"#x{ord(m.group()):02X}", text)


def _junit_case(nodeid: str, result: ResultRecord) -> ET.Element:
    # The inverse of pytest's junitxml.mangle_test_address (split at the first "::",
    # then the params bracket off the last name).
    file, sep, rest = nodeid.partition("::")
    if sep:
        name_part, bracket, params = rest.partition("[")
        names = name_part.split("::")
        classname = ".".join([dotted(file), *names[:-1]])
        name = names[-1] + bracket + params
    else:  # a file-level node id (a collection error): pytest leaves classname empty
        classname, name = "", file
    case = ET.Element(
        "testcase",
        classname=_xml_text(classname),
        name=_xml_text(name),
        file=_xml_text(file),
        # repr: the exact float, so importing the file gives the same number back
        time=repr(float(result.duration_s or 0.0)),
    )
    if result.outcome == "failed":
        ET.SubElement(case, "failure", message="failed (from pytest-shadowfarm history)")
    elif result.outcome == "error":
        ET.SubElement(case, "error", message="error (from pytest-shadowfarm history)")
    elif result.outcome == "skipped":
        ET.SubElement(case, "skipped", type="pytest.skip", message="skipped")
    elif result.outcome == "xfailed":
        ET.SubElement(case, "skipped", type="pytest.xfail", message="xfailed")
    # xpassed is written as passed, as pytest does for a non-strict xpass.
    return case


def dumps_junit(last: Mapping[str, ResultRecord], *, timestamp: float | None = None) -> str:
    """One ``<testsuite name="shadowfarm-history">`` with each test's newest result."""
    cases = [_junit_case(nodeid, result) for nodeid, result in sorted(last.items())]
    outcomes = [r.outcome for r in last.values()]
    suite = ET.Element(
        "testsuite",
        name=JUNIT_SUITE_NAME,
        tests=str(len(cases)),
        failures=str(outcomes.count("failed")),
        errors=str(outcomes.count("error")),
        skipped=str(outcomes.count("skipped") + outcomes.count("xfailed")),
        time=repr(math.fsum(r.duration_s or 0.0 for r in last.values())),
    )
    if timestamp is not None:
        suite.set("timestamp", datetime.fromtimestamp(timestamp).astimezone().isoformat())
    suite.extend(cases)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"
