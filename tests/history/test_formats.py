"""Tests for pytest_shadowfarm.history.formats: other tools' files in and out of the history."""

from __future__ import annotations

import json
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_shadowfarm.errors import ImportFormatError
from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord
from pytest_shadowfarm.history.formats import (
    detect_format,
    dumps_junit,
    export_history,
    read_history_file,
    read_junit,
    read_lastfailed,
    read_test_durations,
)

#: a test module whose test names say how each one ends
TEST_MOD = """
    import pytest

    class TestCls:
        @pytest.mark.parametrize("x", [1, "a.b::c"])
        def test_passes(self, x):
            pass

        class TestInner:
            def test_nested_passes(self):
                pass

    def test_fails():
        assert False

    @pytest.fixture
    def broken():
        raise RuntimeError("setup")

    def test_errors(broken):
        pass

    @pytest.fixture
    def broken_teardown():
        yield
        raise RuntimeError("teardown")

    def test_fails_then_teardown_errors(broken_teardown):
        assert False

    def test_is_skipped():
        pytest.skip("not here")

    @pytest.mark.xfail(reason="known")
    def test_is_xfailed():
        assert False
"""

EXPECTED_OUTCOMES = {
    "tests/test_mod.py::TestCls::test_passes[1]": "passed",
    "tests/test_mod.py::TestCls::test_passes[a.b::c]": "passed",
    "tests/test_mod.py::TestCls::TestInner::test_nested_passes": "passed",
    "tests/test_mod.py::test_fails": "failed",
    "tests/test_mod.py::test_errors": "error",
    "tests/test_mod.py::test_fails_then_teardown_errors": "failed",
    "tests/test_mod.py::test_is_skipped": "skipped",
    "tests/test_mod.py::test_is_xfailed": "xfailed",
}


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def outcomes(results: list[ResultRecord]) -> dict[str, str]:
    return {r.nodeid: r.outcome for r in results}


def by_id(result: ResultRecord) -> str:
    return result.nodeid


def collected(pytester: pytest.Pytester) -> set[str]:
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    return {line for line in result.outlines if "::" in line}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**{"tests/test_mod": textwrap.dedent(TEST_MOD)})
    return pytester


def junit_of(pytester: pytest.Pytester, family: str, *args: str) -> Path:
    xml = pytester.path / f"junit-{family}.xml"
    pytester.runpytest(f"--junitxml={xml}", "-o", f"junit_family={family}", *args)
    assert xml.is_file()
    return xml


def store_of(path: Path, *runs: tuple[RunRecord, list[ResultRecord]]) -> HistoryStore:
    store = HistoryStore.open(path)
    for run, results in runs:
        store.record_run(run, results)
    return store


class TestTestDurations:
    def test_the_object_form_imports_as_one_passed_run(self, tmp_path):
        """{nodeid: seconds} becomes one run of passed results with call_s = seconds."""
        path = write(tmp_path / ".test_durations", '{"t.py::a": 1.5, "t.py::b": 0}')
        run, results = read_test_durations(path)
        assert run.source == "import:test_durations"
        assert run.counts == {"passed": 2}
        assert results == [
            ResultRecord("t.py::a", "passed", setup_s=0.0, call_s=1.5, teardown_s=0.0),
            ResultRecord("t.py::b", "passed", setup_s=0.0, call_s=0.0, teardown_s=0.0),
        ]

    def test_the_list_of_pairs_form_reads_like_the_object_form(self, tmp_path):
        """The older [[nodeid, seconds], ...] form gives the same results."""
        as_object = write(tmp_path / "a.test_durations", '{"t.py::a": 1.5, "t.py::b": 2}')
        as_list = write(tmp_path / "b.test_durations", '[["t.py::a", 1.5], ["t.py::b", 2]]')
        assert read_test_durations(as_list).results == read_test_durations(as_object).results

    def test_export_writes_each_tests_median_with_sorted_keys(self, tmp_path):
        """The exported value is the median of the kept durations, as pytest-split reads it."""
        runs = [
            (RunRecord(n, n), [ResultRecord("t.py::z", "passed", 0.0, s, 0.0)])
            for n, s in enumerate([1.0, 5.0, 2.0])
        ]
        runs.append((RunRecord(9, 9), [ResultRecord("t.py::a", "failed", None, None, None)]))
        out = tmp_path / "out" / ".test_durations"
        with store_of(tmp_path / "h.sqlite", *runs) as store:
            assert export_history(store, out, "test-durations") == 1
        assert out.read_text() == json.dumps({"t.py::z": 2.0}, indent=2, sort_keys=True) + "\n"

    def test_import_export_import_gives_the_same_results(self, tmp_path):
        """A .test_durations file survives a trip through the history unchanged."""
        data = {"tests/test_a.py::test_x[1-2]": 0.125, "tests/test_b.py::TestC::test_y": 3.0}
        source = write(tmp_path / ".test_durations", json.dumps(data))
        first = read_test_durations(source)
        out = tmp_path / "again.test_durations"
        with store_of(tmp_path / "h.sqlite", first) as store:
            export_history(store, out, "test-durations")
        assert json.loads(out.read_text()) == data
        assert read_test_durations(out).results == first.results


class TestJunit:
    @pytest.mark.parametrize("family", ["xunit1", "xunit2"])
    def test_real_pytest_xml_maps_to_the_real_node_ids(self, project, family):
        """Both junit families of a real run import with pytest's own node ids and outcomes."""
        xml = junit_of(project, family)
        run, results = read_junit(xml, rootdir=project.path)
        assert outcomes(results) == EXPECTED_OUTCOMES
        assert set(EXPECTED_OUTCOMES) == collected(project)
        assert run.source == "import:junit"
        assert run.counts == {"passed": 3, "failed": 2, "error": 1, "skipped": 1, "xfailed": 1}
        assert 0 <= run.wall_s < 60

    def test_xunit2_without_a_rootdir_uses_the_uppercase_heuristic(self, project):
        """Conventional names (lowercase modules, TestX classes) resolve with no rootdir."""
        _, results = read_junit(junit_of(project, "xunit2"), rootdir=None)
        assert outcomes(results) == EXPECTED_OUTCOMES

    def test_an_xunit1_junit_prefix_is_dropped_from_the_node_id(self, project):
        """With --junit-prefix, xunit1's file= still finds the module in the classname."""
        xml = junit_of(project, "xunit1", "--junit-prefix=ci.linux")
        assert 'classname="ci.linux.tests.test_mod.TestCls"' in xml.read_text()
        _, results = read_junit(xml, rootdir=project.path)
        assert outcomes(results) == EXPECTED_OUTCOMES

    def test_a_testsuite_root_imports_like_testsuites(self, tmp_path):
        """A bare <testsuite> root (other tools write one) is read as well."""
        xml = write(
            tmp_path / "j.xml",
            '<testsuite name="x"><testcase classname="a.test_b" name="test_c" time="1"/>'
            "</testsuite>",
        )
        assert outcomes(read_junit(xml).results) == {"a/test_b.py::test_c": "passed"}

    def test_times_become_call_seconds_and_duplicates_add_up(self, project):
        """time= is the call time; the two testcases of fail + teardown error are summed."""
        xml = junit_of(project, "xunit1")
        times: dict[str, float] = {}
        for case in ET.parse(xml).iter("testcase"):
            times[case.get("name", "")] = times.get(case.get("name", ""), 0.0) + float(
                case.get("time", "")
            )
        by_id = {r.nodeid: r for r in read_junit(xml, rootdir=project.path).results}
        twice = by_id["tests/test_mod.py::test_fails_then_teardown_errors"]
        assert twice.call_s == pytest.approx(times["test_fails_then_teardown_errors"])
        assert (twice.setup_s, twice.teardown_s) == (0.0, 0.0)

    def test_an_inherited_test_resolves_to_the_module_that_collects_it(self, pytester):
        """xunit1's file= names the base class's file; the classname's module wins."""
        pytester.makepyfile(
            **{
                "tests/base": "class Base:\n    def test_inherited(self):\n        pass\n",
                "tests/test_child": "from base import Base\n\nclass TestChild(Base):\n    pass\n",
            }
        )
        xml = junit_of(pytester, "xunit1")
        assert 'file="tests/base.py"' in xml.read_text()
        _, results = read_junit(xml, rootdir=pytester.path)
        assert outcomes(results) == {"tests/test_child.py::TestChild::test_inherited": "passed"}
        assert set(outcomes(results)) == collected(pytester)

    def test_the_rootdir_decides_where_the_heuristic_would_guess_wrong(self, tmp_path):
        """An existing file under rootdir beats the uppercase-means-class rule."""
        write(tmp_path / "tests" / "CamelCase.py", "")
        xml = write(
            tmp_path / "j.xml",
            '<testsuites><testsuite><testcase classname="tests.CamelCase.TestA" name="test_b"/>'
            "</testsuite></testsuites>",
        )
        with_root = read_junit(xml, rootdir=tmp_path).results
        without = read_junit(xml, rootdir=None).results
        assert [r.nodeid for r in with_root] == ["tests/CamelCase.py::TestA::test_b"]
        assert [r.nodeid for r in without] == ["tests.py::CamelCase::TestA::test_b"]

    def test_a_testcase_without_time_has_no_duration(self, tmp_path):
        """A missing time= means unknown phases, not zero seconds."""
        xml = write(
            tmp_path / "j.xml", '<testsuite><testcase classname="t" name="test_a"/></testsuite>'
        )
        (result,) = read_junit(xml).results
        assert (result.duration_s, result.outcome) == (None, "passed")

    def test_collection_and_internal_errors_are_not_imported_as_tests(self, tmp_path):
        """Empty classnames (collection errors) and pytest.internal have no node id."""
        xml = write(
            tmp_path / "j.xml",
            "<testsuite>"
            '<testcase classname="" name="tests.test_bad" time="0"><error message="x"/></testcase>'
            '<testcase classname="pytest" name="internal"><error message="x"/></testcase>'
            '<testcase classname="tests.test_ok" name="test_ok" time="0.5"/>'
            "</testsuite>",
        )
        assert outcomes(read_junit(xml).results) == {"tests/test_ok.py::test_ok": "passed"}

    def test_export_writes_one_suite_of_each_tests_newest_result(self, tmp_path):
        """The exported XML has one shadowfarm-history testsuite and per-outcome children."""
        results = [
            ResultRecord("t/test_a.py::test_ok", "passed", 0.5, 1.0, 0.5),
            ResultRecord("t/test_a.py::TestX::test_bad[1]", "failed", 0.0, 2.0, 0.0),
            ResultRecord("t/test_a.py::test_err", "error", 0.5, None, None),
            ResultRecord("t/test_a.py::test_skip", "skipped", 0.0, 0.0, 0.0),
            ResultRecord("t/test_a.py::test_xf", "xfailed", 0.0, 0.25, 0.0),
        ]
        out = tmp_path / "history.xml"
        with store_of(tmp_path / "h.sqlite", (RunRecord(1, 2), results)) as store:
            assert export_history(store, out, "junit", now=1.7e9) == 5
        root = ET.parse(out).getroot()
        (suite,) = root.findall("testsuite")
        assert suite.get("name") == "shadowfarm-history"
        attrs = {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "time")}
        assert attrs == {
            "tests": "5",
            "failures": "1",
            "errors": "1",
            "skipped": "2",
            "time": "4.75",
        }
        bad = suite.find("testcase[@name='test_bad[1]']")
        assert bad is not None
        assert (bad.get("classname"), bad.get("file")) == ("t.test_a.TestX", "t/test_a.py")
        assert bad.find("failure") is not None
        xf = suite.find("testcase[@name='test_xf']/skipped")
        assert xf is not None
        assert xf.get("type") == "pytest.xfail"

    def test_real_xml_survives_import_export_import(self, project, tmp_path):
        """Real pytest XML → history → exported XML → import gives the same results."""
        first = read_junit(junit_of(project, "xunit2"), rootdir=project.path)
        out = tmp_path / "exported.xml"
        with store_of(tmp_path / "h.sqlite", first) as store:
            export_history(store, out, "junit")
        again = read_junit(out, rootdir=tmp_path / "elsewhere")
        assert sorted(again.results, key=by_id) == sorted(first.results, key=by_id)

    @given(
        dirs=st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), max_size=3),
        module=st.from_regex(r"test_[a-z0-9_]{0,6}", fullmatch=True),
        classes=st.lists(st.from_regex(r"Test[A-Za-z0-9]{0,5}", fullmatch=True), max_size=2),
        name=st.from_regex(r"test_[a-z0-9_]{0,6}", fullmatch=True),
        params=st.none() | st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12),
    )
    def test_any_python_node_id_survives_export_and_import(
        self, dirs, module, classes, name, params
    ):
        """Export writes classname/name/file so that import rebuilds the exact node id."""
        nodeid = "::".join(["/".join([*dirs, f"{module}.py"]), *classes, name])
        if params is not None:
            nodeid += f"[{params}]"
        result = ResultRecord(nodeid, "passed", 0.0, 0.5, 0.0)
        with tempfile.TemporaryDirectory() as tmp:
            xml = write(Path(tmp) / "j.xml", dumps_junit({nodeid: result}))
            assert [r.nodeid for r in read_junit(xml).results] == [nodeid]


class TestLastfailed:
    def test_a_real_lastfailed_imports_as_failures_without_durations(self, project):
        """pytest's own cache file lists the failing tests; they import with no times."""
        project.runpytest("-p", "cacheprovider")
        path = project.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        run, results = read_lastfailed(path)
        assert run.source == "import:lastfailed"
        failing = {n for n, o in EXPECTED_OUTCOMES.items() if o in ("failed", "error")}
        assert outcomes(results) == dict.fromkeys(failing, "failed")
        assert all(r.duration_s is None for r in results)
        assert all((r.setup_s, r.call_s, r.teardown_s) == (None, None, None) for r in results)

    def test_export_lists_the_tests_whose_newest_result_failed_or_errored(self, tmp_path):
        """Only a failing or erroring newest result lands in the exported lastfailed."""
        old = [
            ResultRecord("t.py::fixed", "failed", 0, 1, 0),
            ResultRecord("t.py::broke", "passed", 0, 1, 0),
        ]
        new = [
            ResultRecord("t.py::fixed", "passed", 0, 1, 0),
            ResultRecord("t.py::broke", "error", 0, 1, 0),
            ResultRecord("t.py::fails", "failed", 0, 1, 0),
            ResultRecord("t.py::skips", "skipped", 0, 0, 0),
        ]
        out = tmp_path / "lastfailed"
        with store_of(tmp_path / "h.sqlite", (RunRecord(1, 1), old), (RunRecord(2, 2), new)) as s:
            assert export_history(s, out, "lastfailed") == 2
        assert json.loads(out.read_text()) == {"t.py::broke": True, "t.py::fails": True}

    def test_import_export_import_gives_the_same_results(self, tmp_path):
        """A lastfailed file survives a trip through the history unchanged."""
        data = {"tests/test_a.py::test_x[1]": True, "tests/test_b.py": True}
        first = read_lastfailed(write(tmp_path / "lastfailed", json.dumps(data)))
        out = tmp_path / "again" / "lastfailed"
        with store_of(tmp_path / "h.sqlite", first) as store:
            export_history(store, out, "lastfailed")
        assert json.loads(out.read_text()) == data
        assert read_lastfailed(out).results == first.results


class TestDetection:
    @pytest.mark.parametrize(
        ("name", "content", "expected"),
        [
            ("anything", "  <?xml version='1.0'?><testsuites/>", "junit"),
            ("anything", '[["t.py::a", 1]]', "test-durations"),
            ("anything", '{"t.py::a": 1.5}', "test-durations"),
            ("anything", '{"t.py::a": true}', "lastfailed"),
            ("lastfailed", "{}", "lastfailed"),
            (".test_durations", "{}", "test-durations"),
            ("report.xml", "not xml at all", "junit"),
        ],
    )
    def test_the_format_is_told_from_content_then_name(self, tmp_path, name, content, expected):
        """Content decides when it can; the file name decides for {} and unparsable files."""
        path = write(tmp_path / name, content)
        assert detect_format(path, path.read_bytes()) == expected

    def test_an_explicit_format_overrides_detection(self, tmp_path):
        """fmt= reads the file as told, and complains in that format's terms."""
        path = write(tmp_path / "lastfailed", '{"t.py::a": true}')
        with pytest.raises(ImportFormatError, match="has duration True"):
            read_history_file(path, fmt="test-durations")

    def test_an_unknown_format_name_is_refused(self, tmp_path):
        """A format that does not exist is an ImportFormatError listing the known ones."""
        path = write(tmp_path / "x.json", "{}")
        with pytest.raises(ImportFormatError, match="test-durations, junit, lastfailed"):
            read_history_file(path, fmt="csv")


BAD_INPUTS = [
    pytest.param(
        "d.json", '{"t.py::a": ', "auto", "is not valid JSON", "JSON object", id="invalid-json"
    ),
    pytest.param(
        ".test_durations", '"t.py::a"', "auto", "top level is a JSON string", "{", id="scalar"
    ),
    pytest.param(
        ".test_durations", '[["t.py::a", 1, 2]]', "auto", "item 0 of the list", "pairs", id="triple"
    ),
    pytest.param(
        ".test_durations", '{"t.py::a": -1}', "auto", "'t.py::a' has duration -1", ">= 0", id="neg"
    ),
    pytest.param(
        ".test_durations", '{"t.py::a": "slow"}', "test-durations", "'slow'", ">= 0", id="text"
    ),
    pytest.param(".test_durations", '{"t.py::a": NaN}', "auto", "nan", ">= 0", id="nan"),
    pytest.param(".test_durations", '{"": 1}', "auto", "node id ''", "JSON object", id="no-id"),
    pytest.param("j.xml", "<testsuite><testcase", "auto", "not well-formed XML", "JUnit", id="xml"),
    pytest.param("j.xml", "<html><body/></html>", "auto", "root element is <html>", "<testsuites>"),
    pytest.param(
        "j.xml",
        '<testsuite><testcase classname="a" name="test_b" time="-1"/></testsuite>',
        "auto",
        "name='test_b'> has duration '-1'",
        ">= 0",
        id="xml-negative-time",
    ),
    pytest.param(
        "j.xml",
        '<testsuite><testcase classname="a" name="test_b" time="fast"/></testsuite>',
        "auto",
        "has duration 'fast'",
        ">= 0",
        id="xml-text-time",
    ),
    pytest.param(
        "j.xml", '<testsuite><testcase classname="a"/></testsuite>', "auto", "has no name", "JUnit"
    ),
    pytest.param(
        "lastfailed", '{"t.py::a": false}', "auto", "maps to false", '{"nodeid": true}', id="false"
    ),
    pytest.param("lastfailed", '["t.py::a"]', "lastfailed", "JSON array", "{", id="lf-list"),
    pytest.param("notes.txt", "hello", "auto", "neither JSON nor XML", "JUnit", id="neither"),
    pytest.param(
        "d.json", b'{"t.py::a": "\xff"}', "test-durations", "not UTF-8", "JSON", id="not-utf8"
    ),
]


class TestBadInput:
    @pytest.mark.parametrize(("name", "content", "fmt", "what", "expected"), BAD_INPUTS)
    def test_bad_input_names_the_file_the_fault_and_what_was_expected(
        self, tmp_path, name, content, fmt, what, expected
    ):
        """ImportFormatError says which file, what is wrong and what the format wants."""
        path = write(tmp_path / name, content)
        with pytest.raises(ImportFormatError) as info:
            read_history_file(path, fmt=fmt)
        message = str(info.value)
        assert message.startswith(f"{path}: ")
        fault, _, wanted = message.partition("; expected ")
        assert what in fault
        assert expected in wanted
