"""Tests for the GitHub Actions job summary and annotations (report/github*.py)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from pytest_shadowfarm.report.github import (
    MAX_ANNOTATIONS,
    MAX_SUMMARY_BYTES,
    Failure,
    annotation_lines,
    build_summary,
    escape_data,
    escape_property,
)
from pytest_shadowfarm.report.github_plugin import github_enabled, relative_to
from pytest_shadowfarm.report.terminal import Anomaly


def failure(nodeid="tests/test_a.py::test_x", at_s=1.5, **kw):
    fields = {"outcome": "failed", "when": "call", "message": "assert 1 == 2", "at_s": at_s}
    return Failure(nodeid=nodeid, **{**fields, **kw})


def run_report(**extra):
    tests = [
        {"nodeid": "tests/test_a.py::test_ok", "outcome": "passed", "duration_s": 0.5,
         "start_s": 0.1, "worker": "gw0", "etc_s": 0.4, "order": 0},
        {"nodeid": "tests/test_a.py::test_x", "outcome": "failed", "duration_s": 1.25,
         "start_s": 0.2, "worker": "gw1", "etc_s": 1.0, "order": 1},
        {"nodeid": "tests/test_b.py::test_slow", "outcome": "passed", "duration_s": 4.0,
         "start_s": 0.7, "worker": "gw0", "etc_s": 3.0, "order": 2},
    ]  # fmt: skip
    return {
        "version": 1,
        "wall_s": 5.0,
        "predicted_total_s": 4.4,
        "actual_total_s": 5.75,
        "first_failure_s": 1.5,
        "counts": {"passed": 2, "failed": 1},
        "tests": tests,
        "workers": [],
        "events": [],
        **extra,
    }


class TestEscaping:
    def test_data_escapes_percent_and_newlines(self):
        """A message keeps its lines as %0A and its percent signs as %25."""
        assert escape_data("50%\r\nnext") == "50%25%0D%0Anext"

    def test_properties_also_escape_colon_and_comma(self):
        """A node id in title= cannot end the property list early."""
        assert escape_property("t.py::test[a,b]") == "t.py%3A%3Atest[a%2Cb]"


class TestAnnotations:
    def test_an_annotation_names_file_line_and_test(self):
        """::error file=...,line=...,title=<nodeid> failed::<message>."""
        line = annotation_lines([failure(file="tests/test_a.py", line=12)])[0]
        assert line == (
            "::error file=tests/test_a.py,line=12,"
            "title=tests/test_a.py%3A%3Atest_x failed::assert 1 == 2"
        )

    def test_an_error_says_which_phase(self):
        """A setup error is titled as an error in setup."""
        line = annotation_lines([failure(outcome="error", when="setup")])[0]
        assert "title=tests/test_a.py%3A%3Atest_x error in setup::" in line

    def test_without_a_file_there_is_no_file_property(self):
        """A failure outside the repository is annotated without file=."""
        assert annotation_lines([failure()])[0].startswith("::error title=")

    def test_past_the_limit_one_notice_tells_how_many_more(self):
        """GitHub shows 10 errors per step: the rest are counted in one notice."""
        lines = annotation_lines([failure(nodeid=f"t.py::test_{i}") for i in range(13)])
        assert len(lines) == MAX_ANNOTATIONS + 1
        assert lines[-1].startswith("::notice ")
        assert "3 more failures not annotated" in lines[-1]

    def test_multi_line_messages_stay_one_command(self):
        """A message with newlines is one line of output."""
        line = annotation_lines([failure(message="a\nb")])[0]
        assert "\n" not in line
        assert line.endswith("::a%0Ab")


class TestSummary:
    def test_failures_come_first(self):
        """The failures section is the first after the headline."""
        text = build_summary(run_report(), [failure(file="tests/test_a.py", line=12)])
        headings = re.findall(r"(?m)^###? .*$", text)
        assert headings[0].startswith("## ❌ pytest-shadowfarm: 1 failed, 2 passed in 5.00s")
        assert headings[1] == "### Failures, in the order they happened (1)"
        assert text.index("### Failures") < text.index("### Predicted vs actual")

    def test_a_failure_shows_its_order_position_and_time(self):
        """Position among started tests, the time it failed, its duration and location."""
        text = build_summary(run_report(), [failure(file="tests/test_a.py", line=12)])
        assert (
            "| 1 | `tests/test_a.py::test_x` | 2 of 3 | 1.50s | 1.25s | tests/test_a.py:12 |"
            in text
        )
        assert "**First failure after 1.50s** (test 2 of 3 to start)." in text

    def test_failure_messages_are_in_a_collapsed_block(self):
        """Messages go in <details>, as text code blocks."""
        text = build_summary(run_report(), [failure(message="boom\n```x")])
        block = text.split("<details><summary>Failure messages</summary>", 1)[1]
        assert "```text\nboom\n'''x\n```" in block

    def test_predicted_vs_actual_has_the_error(self):
        """Predicted and actual test time with the relative error."""
        text = build_summary(run_report(), [])
        assert "| test time (sum of all tests) | 4.40s | 5.75s | +31 % |" in text
        assert "Predicted 4.40s of test time, actual 5.75s (+31 %); wall 5.00s." in text

    def test_a_first_run_says_there_is_no_prediction_yet(self):
        """Without history the summary says the run teaches it."""
        text = build_summary(run_report(predicted_total_s=None), [])
        assert "no prediction yet" in text

    def test_the_slowest_tests_are_listed_slowest_first(self):
        """Slowest tests with actual and predicted time."""
        text = build_summary(run_report(), [])
        slow = text.split("### Slowest 3 tests", 1)[1]
        assert slow.index("test_slow") < slow.index("test_x") < slow.index("test_ok")
        assert "| `tests/test_b.py::test_slow` | 4.00s | 3.00s | gw0 |" in slow

    def test_anomalies_are_listed_with_their_ratio(self):
        """An anomaly shows actual, expected and the ratio."""
        text = build_summary(run_report(), [], [Anomaly("tests/test_b.py::test_slow", 4.0, 1.0)])
        assert "| `tests/test_b.py::test_slow` | 4.00s | 1.00s | 4.0x |" in text

    def test_flaky_tests_appear_when_the_report_marks_them(self):
        """Tests with "flaky": true get their own section; none, no section."""
        report = run_report()
        assert "Flaky" not in build_summary(report, [])
        report["tests"][0]["flaky"] = True
        assert "### Flaky tests (1)" in build_summary(report, [])

    def test_workers_are_counted_warm_and_cold(self):
        """Workers table: warm/cold, tests run and busy time."""
        report = run_report(
            workers=[
                {"id": "gw0", "warm": True, "joined_s": 0.0, "left_s": 5.0},
                {"id": "gw1", "warm": False, "joined_s": 0.1, "left_s": 4.0},
            ]
        )
        text = build_summary(report, [])
        assert "### Workers: 2 (1 warm, 1 cold)" in text
        assert "| gw0 | warm | 0.00s | 5.00s | 2 | 4.50s |" in text

    def test_events_of_any_shape_are_shown(self):
        """Scaling events: time, kind and the remaining fields."""
        report = run_report(
            events=[
                {"t_s": 2.0, "kind": "add_worker", "worker": "gw2"},
                {"t": 3.5, "kind": "scale", "from": 2, "to": 3, "workers": ["gw2", "gw3"]},
                {"event": "scheduler", "t": 5.0, "tests": 3},
            ]
        )
        text = build_summary(report, [])
        assert "| 2.00s | add_worker | worker=gw2 |" in text
        assert "| 3.50s | scale | from=2, to=3, workers=[gw2 gw3] |" in text
        assert "| 5.00s | scheduler | tests=3 |" in text

    def test_a_shard_is_named_in_the_headline_and_its_prediction(self):
        """A sharded run says which shard and how the shards were predicted."""
        shard = {
            "index": 2,
            "count": 4,
            "tests": 3,
            "total_tests": 12,
            "predicted_s": 4.4,
            "shard_predicted_s": [4.3, 4.4, 4.4, 4.5],
            "cut_modules": 1,
            "plan": "ab12",
        }
        text = build_summary(run_report(shard=shard), [])
        assert "pytest-shadowfarm (shard 2/4):" in text
        assert "| shard 2/4: 3 of 12 tests | 4.40s | | |" in text
        assert "predicted at 4.30s to 4.50s (1 modules cut; plan `ab12`" in text

    def test_the_timeline_is_a_mermaid_chart_with_the_svg_path(self):
        """The summary embeds the Mermaid Gantt chart and names the SVG file."""
        text = build_summary(run_report(), [], svg_path=".shadowfarm/report.timeline.svg")
        assert "```mermaid\n" in text
        assert "`.shadowfarm/report.timeline.svg`" in text

    def test_pipes_in_node_ids_do_not_break_tables(self):
        """A | inside a parametrized id is escaped in table cells."""
        report = run_report()
        report["tests"][2]["nodeid"] = "tests/test_b.py::test_slow[a|b]"
        assert "`tests/test_b.py::test_slow[a\\|b]`" in build_summary(report, [])

    def test_a_huge_summary_drops_the_messages_first(self):
        """Past GitHub's size limit the messages go, the tables stay."""
        failures = [failure(nodeid=f"t.py::test_{i}", message="x" * 2000) for i in range(50)]
        report = run_report(tests=[])
        text = build_summary(report, failures, max_failures=50)
        assert len(text.encode()) < MAX_SUMMARY_BYTES  # 50 x 2000 fits: messages kept
        big = build_summary(report, failures * 20, max_failures=1000)
        assert len(big.encode()) < MAX_SUMMARY_BYTES
        assert "failure messages left out" in big
        assert "| 1000 | `t.py::test_49` |" in big


class TestSwitch:
    @pytest.mark.parametrize(
        ("setting", "env", "on"),
        [
            ("auto", {"GITHUB_ACTIONS": "true"}, True),
            ("auto", {}, False),
            ("auto", {"GITHUB_ACTIONS": "false"}, False),
            ("on", {}, True),
            ("off", {"GITHUB_ACTIONS": "true"}, False),
        ],
    )
    def test_auto_means_inside_github_actions(self, setting, env, on):
        """auto follows GITHUB_ACTIONS=true; on and off are forced."""
        assert github_enabled(setting, env) is on


class TestRelativeTo:
    def test_paths_inside_the_workspace_become_relative(self, tmp_path):
        """An absolute path under the workspace is given relative to it, POSIX style."""
        assert relative_to(str(tmp_path / "a" / "b.py"), tmp_path, tmp_path) == "a/b.py"

    def test_relative_paths_are_read_from_the_base(self, tmp_path):
        """A path relative to the invocation dir is resolved from there first."""
        assert relative_to("b.py", tmp_path / "sub", tmp_path) == "sub/b.py"

    @pytest.mark.parametrize("inside", [".venv/lib/x.py", "env/lib/site-packages/x.py"])
    def test_installed_code_is_not_the_repository(self, tmp_path, inside):
        """Frames in a virtualenv inside the repository are not annotated."""
        assert relative_to(str(tmp_path / inside), tmp_path, tmp_path) is None

    def test_paths_outside_the_workspace_are_none(self, tmp_path):
        """A path elsewhere cannot be annotated."""
        assert relative_to("/usr/lib/python3/x.py", tmp_path, tmp_path / "repo") is None


# --- real pytest runs in a fake GitHub Actions environment ---------------------------------

SAMPLE = """
import pytest

def helper():
    raise ValueError("boom in helper")

def test_ok():
    pass

def test_assert():
    x = 1
    assert x == 2

def test_calls_a_helper():
    helper()

@pytest.fixture
def broken():
    raise RuntimeError("setup broke")

def test_setup_error(broken):
    pass
"""
# makepyfile drops the leading newline: line numbers count from "import pytest"
SAMPLE_LINES = SAMPLE.lstrip("\n").splitlines()
ASSERT_LINE = SAMPLE_LINES.index("    assert x == 2") + 1
HELPER_CALL_LINE = SAMPLE_LINES.index("    helper()") + 1


@pytest.fixture
def github_env(pytester, monkeypatch):
    """A fake GitHub Actions environment; returns the step summary file."""
    summary = pytester.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.delenv("SHADOWFARM_GITHUB", raising=False)
    pytester.makepyfile(test_sample=SAMPLE)
    return summary


def run(pytester, *args):
    return pytester.runpytest_subprocess(
        "-p",
        "shadowfarm",
        "-p",
        "no:cacheprovider",
        f"--sf-history={pytester.path / 'h.sqlite'}",
        f"--sf-report-json={pytester.path / 'out' / 'report.json'}",
        *args,
    )


class TestInGitHubActions:
    @pytest.mark.slow
    def test_the_summary_is_written_with_failures_first(self, pytester, github_env):
        """Two runs: the second summary has failures first, predicted vs actual, a timeline."""
        run(pytester)
        github_env.write_text("")
        result = run(pytester)
        result.assert_outcomes(passed=1, failed=2, errors=1)
        text = github_env.read_text()
        assert text.startswith("## ❌ pytest-shadowfarm: 2 failed, 1 error, 1 passed in ")
        assert text.index("### Failures, in the order they happened (3)") < text.index(
            "### Predicted vs actual"
        )
        assert "| `test_sample.py::test_assert` | " in text
        assert f"test_sample.py:{ASSERT_LINE} |" in text
        assert re.search(r"\| test time \(sum of all tests\) \| \d+\.\d\ds \| \d+\.\d\ds \|", text)
        assert "```mermaid\n" in text
        assert "`out/report.timeline.svg`" in text
        svg = ET.parse(pytester.path / "out" / "report.timeline.svg").getroot()
        assert svg.get("role") == "img"

    def test_failures_are_annotated_at_their_test_line(self, pytester, github_env):
        """::error lines name the test file and the failing line of the test."""
        result = run(pytester)
        errors = [line for line in result.outlines if line.startswith("::error ")]
        assert len(errors) == 3
        assert errors[0].startswith(
            f"::error file=test_sample.py,line={ASSERT_LINE},"
            "title=test_sample.py%3A%3Atest_assert failed::"
        )
        assert "assert 1 == 2" in errors[0]
        # raised inside helper(): pointed at the test's call, not at the raise
        assert errors[1].startswith(f"::error file=test_sample.py,line={HELPER_CALL_LINE},")
        assert errors[1].endswith("::ValueError: boom in helper")
        assert "title=test_sample.py%3A%3Atest_setup_error error in setup::" in errors[2]

    def test_a_project_below_the_workspace_gets_repository_paths(
        self, pytester, github_env, monkeypatch
    ):
        """With the rootdir in a subdirectory, annotation paths start at the repository root."""
        monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path.parent))
        result = run(pytester, "-k", "test_assert")
        error = next(line for line in result.outlines if line.startswith("::error "))
        assert error.startswith(f"::error file={pytester.path.name}/test_sample.py,line=")

    def test_off_writes_nothing_even_in_actions(self, pytester, github_env):
        """--sf-github=off: no summary file, no annotations."""
        result = run(pytester, "--sf-github=off")
        assert not github_env.exists()
        assert not [line for line in result.outlines if line.startswith("::")]

    def test_auto_outside_actions_writes_nothing(self, pytester, github_env, monkeypatch):
        """Without GITHUB_ACTIONS=true the default (auto) stays quiet."""
        monkeypatch.delenv("GITHUB_ACTIONS")
        result = run(pytester)
        assert not github_env.exists()
        assert not [line for line in result.outlines if line.startswith("::error")]

    @pytest.mark.slow
    def test_under_xdist_the_summary_and_annotations_still_work(self, pytester, github_env):
        """With -n 2 the locations come from the workers' reports: same annotations."""
        result = run(pytester, "-n", "2")
        result.assert_outcomes(passed=1, failed=2, errors=1)
        errors = sorted(line for line in result.outlines if line.startswith("::error "))
        assert any(f"file=test_sample.py,line={ASSERT_LINE}," in e for e in errors)
        assert any(f"file=test_sample.py,line={HELPER_CALL_LINE}," in e for e in errors)
        text = github_env.read_text()
        assert "### Workers: 2 (0 warm, 2 cold)" in text
        report = json.loads((pytester.path / "out" / "report.json").read_text())
        workers = {t["worker"] for t in report["tests"]}
        assert workers <= {"gw0", "gw1"}
        for worker in workers:  # the scheduler may give all four to one worker
            assert f"    section {worker}\n" in text

    def test_a_collection_error_is_annotated_on_its_file(self, pytester, github_env):
        """A module that fails to import gets an ::error on that file."""
        pytester.makepyfile(test_broken="import nonexistent_module_xyz\n")
        result = run(pytester, "test_broken.py")
        errors = [line for line in result.outlines if line.startswith("::error ")]
        assert errors
        assert errors[0].startswith("::error file=test_broken.py,line=1,")
        assert "nonexistent_module_xyz" in errors[0]
