"""Tests for pytest_shadowfarm.report.timeline: the SVG and Mermaid pictures of a run."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from pytest_shadowfarm.report.timeline import (
    COLOURS,
    Bar,
    bars_from_tests,
    compress,
    nice_step,
    render_mermaid,
    render_svg,
)

SVG = "{http://www.w3.org/2000/svg}"


def entry_of(nodeid, worker, start, duration, outcome="passed"):
    return {
        "nodeid": nodeid,
        "worker": worker,
        "start_s": start,
        "duration_s": duration,
        "outcome": outcome,
    }


RUN = [
    entry_of("tests/test_a.py::test_one", "gw0", 0.5, 1.0),
    entry_of("tests/test_a.py::test_two", "gw0", 1.5, 0.5, "failed"),
    entry_of("tests/test_b.py::test_three", "gw1", 0.6, 2.0, "skipped"),
    entry_of("tests/test_b.py::test_<four>&", "gw10", 0.7, 0.2, "error"),
    entry_of("tests/test_b.py::test_five", "gw2", 0.8, 0.2),
]


class TestBars:
    def test_workers_are_in_natural_order(self):
        """gw2 comes before gw10."""
        assert [b.worker for b in bars_from_tests(RUN)] == ["gw0", "gw0", "gw1", "gw2", "gw10"]

    def test_outcomes_become_three_kinds(self):
        """error counts as failed, xfailed and skipped as skipped."""
        kinds = {b.label: b.kind for b in bars_from_tests(RUN)}
        assert kinds["tests/test_b.py::test_<four>&"] == "failed"
        assert kinds["tests/test_b.py::test_three"] == "skipped"

    def test_entries_without_a_start_are_left_out(self):
        """A test the report has no start time for draws nothing."""
        entry = {**RUN[0], "start_s": None}
        assert bars_from_tests([entry]) == []

    def test_a_test_without_a_worker_runs_on_main(self):
        """Without xdist the lane is called main."""
        assert bars_from_tests([{**RUN[0], "worker": None}])[0].worker == "main"


def many(n, fail_every=0):
    return [
        entry_of(
            f"tests/test_m{i // 10}.py::test_{i}",
            f"gw{i % 2}",
            i * 0.1,
            0.1,
            "failed" if fail_every and i % fail_every == 0 else "passed",
        )
        for i in range(n)
    ]


class TestCompress:
    def test_small_runs_are_left_alone(self):
        """Under the budget every test keeps its bar."""
        bars = bars_from_tests(RUN)
        assert compress(bars, 10) == bars

    def test_the_budget_is_kept(self):
        """1000 passing tests fit into a budget of 50 bars."""
        bars = compress(bars_from_tests(many(1000)), 50)
        assert len(bars) <= 50
        assert sum(b.tests for b in bars) == 1000

    def test_failures_keep_their_own_bar(self):
        """Merging never hides a failure inside a passing bar."""
        bars = compress(bars_from_tests(many(400, fail_every=37)), 40)
        failed = [b for b in bars if b.kind == "failed"]
        assert len(failed) == len(range(0, 400, 37))
        assert all(b.tests == 1 for b in failed)

    def test_merged_bars_stay_on_their_worker_and_span_their_tests(self):
        """A merged bar runs from its first test's start to its last test's end."""
        bars = compress(bars_from_tests(many(100)), 20)
        gw0 = [b for b in bars if b.worker == "gw0"]
        assert gw0[0].start_s == 0.0
        assert gw0[0].label.endswith("tests/test_m0.py")


class TestNiceStep:
    @pytest.mark.parametrize(("span", "step"), [(10, 2), (35, 5), (0.9, 0.2), (600, 100), (0, 1.0)])
    def test_steps_are_1_2_5_times_a_power_of_ten(self, span, step):
        """About eight ticks, at round numbers."""
        assert nice_step(span) == pytest.approx(step)


class TestSvg:
    def test_the_svg_is_well_formed_and_accessible(self):
        """It parses as XML, is role=img and has a title and a description."""
        root = ET.fromstring(render_svg(RUN, wall_s=3.0))
        assert root.tag == f"{SVG}svg"
        assert root.get("role") == "img"
        assert root.find(f"{SVG}title").text == "Which worker ran which test"
        desc = root.find(f"{SVG}desc").text
        assert desc == "5 tests on 4 workers over 3 seconds; 2 failed (red)."

    def test_there_is_one_lane_label_per_worker(self):
        """Each worker id is written once, left of its lane."""
        root = ET.fromstring(render_svg(RUN))
        labels = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
        assert labels == ["gw0", "gw1", "gw2", "gw10"]

    def test_failures_are_red_and_named_in_their_tooltip(self):
        """Failed and errored tests are drawn in red, their tooltip names them."""
        root = ET.fromstring(render_svg(RUN))
        red = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == COLOURS["failed"]]
        tips = sorted(r.find(f"{SVG}title").text for r in red if r.find(f"{SVG}title") is not None)
        assert tips[0].startswith("tests/test_a.py::test_two: failed")
        assert tips[1].startswith("tests/test_b.py::test_<four>&: failed")

    def test_the_axis_counts_seconds(self):
        """Tick labels run from 0 at round steps to the end of the run."""
        root = ET.fromstring(render_svg(RUN, wall_s=10.0))
        ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
        assert ticks[:6] == ["0", "2", "4", "6", "8", "10"]
        assert "seconds since the start of the run" in ticks

    def test_bars_sit_where_their_tests_ran(self):
        """A test's bar starts at its start time on the axis."""
        svg = render_svg([entry_of("t.py::a", "gw0", 5.0, 5.0)], wall_s=10.0, width=900)
        root = ET.fromstring(svg)
        bar = next(r for r in root.iter(f"{SVG}rect") if r.get("fill") == COLOURS["passed"])
        # plot from x=80 to x=876: 5 s of 10 s is the middle
        assert float(bar.get("x")) == pytest.approx(80 + 796 / 2)
        assert float(bar.get("width")) == pytest.approx(796 / 2)

    def test_an_empty_run_still_draws(self):
        """No tests: a valid picture with an axis and nothing in it."""
        root = ET.fromstring(render_svg([]))
        assert root.find(f"{SVG}desc").text.startswith("0 tests on 0 workers")


class TestMermaid:
    def test_it_is_a_fenced_gantt_chart_in_milliseconds(self):
        """A ```mermaid block with a gantt in dateFormat x."""
        text = render_mermaid(RUN)
        lines = text.splitlines()
        assert lines[0] == "```mermaid"
        assert lines[-1] == "```"
        assert "gantt" in lines
        assert "    dateFormat x" in lines

    def test_one_section_per_worker_and_failures_are_crit(self):
        """Workers are sections; failed tests carry the crit tag (red in Mermaid)."""
        text = render_mermaid(RUN)
        assert re.findall(r"(?m)^    section (\S+)$", text) == ["gw0", "gw1", "gw2", "gw10"]
        assert "    FAILED test_two : crit, 1500, 2000" in text
        assert "    test_one : 500, 1500" in text

    def test_task_names_never_contain_the_field_separator(self):
        """':' '#' and ';' in node ids cannot break a task line."""
        entry = entry_of("tests/t.py::test_x[a:b#c;d]", "gw0", 0.0, 1.0)
        line = render_mermaid([entry]).splitlines()[-2]
        name, sep, fields = line.partition(" : ")
        assert sep
        assert not set(":#;") & set(name)
        assert fields == "0, 1000"

    def test_zero_length_tests_still_get_a_millisecond(self):
        """A task must end after it starts."""
        line = render_mermaid([entry_of("t.py::a", "gw0", 1.0, 0.0)]).splitlines()[-2]
        assert line.endswith(": 1000, 1001")

    def test_merged_bars_are_named_by_module_and_count(self):
        """A merged bar reads "test_m0.py x5"."""
        text = render_mermaid(many(100), per_lane=10)
        assert re.search(r"(?m)^    test_m0\.py x5 : 0, \d+$", text)

    def test_a_bar_ends_where_the_next_one_on_its_worker_starts(self):
        """Overlapping start times are cut, so compact mode keeps one row per worker."""
        run = [entry_of("t.py::a", "gw0", 0.0, 1.0), entry_of("t.py::b", "gw0", 0.98, 1.0)]
        lines = render_mermaid(run).splitlines()
        assert "    a : 0, 980" in lines
        assert "    b : 980, 1980" in lines

    def test_a_big_run_stays_small(self):
        """1000 tests become at most the budget of tasks."""
        text = render_mermaid(many(1000), budget=30)
        tasks = [line for line in text.splitlines() if " : " in line]
        assert len(tasks) <= 30


def test_bar_is_a_frozen_record():
    """Bars are values: equal when their fields are."""
    assert Bar("gw0", 0.0, 1.0, "x", "passed") == Bar("gw0", 0.0, 1.0, "x", "passed")
