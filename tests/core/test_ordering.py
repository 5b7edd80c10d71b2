"""The ordering plugin through real pytest runs: modes, markers, interplay, git, report."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.gittools import GIT_ENV

#: Three modules of trivial tests; a test fails when its name is in $FAILING. Every test
#: takes far less than the ETC floor, so tests with equal signals tie and keep their
#: collection order: the orders below do not depend on machine speed.
MODULES = {
    "test_a": "import os\n"
    + "".join(
        f"def test_a{i}():\n    assert 'a{i}' not in os.environ.get('FAILING', '')\n"
        for i in range(3)
    ),
    "test_b": "import os\n"
    + "".join(
        f"def test_b{i}():\n    assert 'b{i}' not in os.environ.get('FAILING', '')\n"
        for i in range(3)
    ),
    "test_c": "import os\n"
    + "".join(
        f"def test_c{i}():\n    assert 'c{i}' not in os.environ.get('FAILING', '')\n"
        for i in range(3)
    ),
}
COLLECTION = [f"test_{m}.py::test_{m}{i}" for m in "abc" for i in range(3)]

SF = ("-p", "shadowfarm", "--sf-weight-base", "0")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("FAILING", raising=False)
    for name in ("SHADOWFARM_ORDER", "SHADOWFARM_BASE", "SHADOWFARM_EXPLAIN"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(**MODULES)
    return pytester


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    """The node ids in run order, as ``--collect-only -q`` prints them."""
    result = pytester.runpytest(*SF, "--collect-only", "-q", *args)
    return [line for line in result.outlines if "::" in line and " " not in line]


def ran(result: pytest.RunResult) -> list[str]:
    """The node ids in the order ``-v`` reported them."""
    return [
        line.split(" ")[0]
        for line in result.outlines
        if "::" in line and (" PASSED" in line or " FAILED" in line)
    ]


def fail_once(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, names: str) -> None:
    """Record one run in which the tests named in ``names`` failed."""
    monkeypatch.setenv("FAILING", names)
    pytester.runpytest(*SF, "-p", "no:cacheprovider").assert_outcomes(
        passed=9 - len(names.split(",")), failed=len(names.split(","))
    )
    monkeypatch.delenv("FAILING")


def git(cwd, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


class TestOrderModes:
    def test_without_history_or_signals_collection_order_is_kept(self, suite):
        """Nothing stands out, so ties keep the collection order."""
        assert collected(suite) == COLLECTION

    def test_grouped_puts_the_module_of_a_failed_test_first(self, suite, monkeypatch):
        """grouped: the failing module goes first, its failing test first inside it."""
        fail_once(suite, monkeypatch, "c1")
        order = collected(suite)
        assert order[:3] == ["test_c.py::test_c1", "test_c.py::test_c0", "test_c.py::test_c2"]
        assert order[3:] == COLLECTION[:6]

    def test_test_mode_puts_failures_first_whatever_their_module(self, suite, monkeypatch):
        """test: both failures run first, then the rest in collection order."""
        fail_once(suite, monkeypatch, "a2,c1")
        order = collected(suite, "--sf-order", "test")
        assert order[:2] == ["test_a.py::test_a2", "test_c.py::test_c1"]
        assert order[2:] == [n for n in COLLECTION if n not in order[:2]]

    def test_grouped_keeps_modules_together_where_test_mode_does_not(self, suite, monkeypatch):
        """grouped runs the rest of test_a before test_c's failure; test does not."""
        fail_once(suite, monkeypatch, "a2,c1")
        assert collected(suite)[:4] == [
            "test_a.py::test_a2",
            "test_a.py::test_a0",
            "test_a.py::test_a1",
            "test_c.py::test_c1",
        ]

    @pytest.mark.slow  # several pytest runs
    def test_none_keeps_collection_order_and_still_records(self, suite, monkeypatch):
        """none: collection order despite a failure history; history still recorded."""
        fail_once(suite, monkeypatch, "c1")
        result = suite.runpytest(*SF, "--sf-order", "none", "--collect-only", "-q")
        result.stdout.fnmatch_lines(["shadowfarm: order none: collection order*"])
        assert collected(suite, "--sf-order", "none") == COLLECTION

    @pytest.mark.slow  # several pytest runs
    def test_the_order_is_deterministic(self, suite, monkeypatch):
        """The same history gives the same order twice, in every mode."""
        fail_once(suite, monkeypatch, "b1")
        for mode in ("grouped", "test", "none"):
            assert collected(suite, "--sf-order", mode) == collected(suite, "--sf-order", mode)

    def test_a_bad_order_is_a_usage_error(self, suite):
        """--sf-order random names the allowed values."""
        result = suite.runpytest(*SF, "--sf-order", "random")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*--sf-order='random' is not valid: expected one of grouped, test, none*"]
        )

    def test_the_order_setting_comes_from_pyproject(self, suite, monkeypatch):
        """[tool.shadowfarm] order = "none" is honoured."""
        fail_once(suite, monkeypatch, "c1")
        suite.makepyprojecttoml('[tool.shadowfarm]\norder = "none"\n')
        assert collected(suite) == COLLECTION


class TestHeaderAndExplain:
    def test_the_header_names_the_top_reasons(self, suite, monkeypatch):
        """After a failure the header says one test failed recently and the mode."""
        fail_once(suite, monkeypatch, "b0")
        result = suite.runpytest(*SF)
        result.stdout.fnmatch_lines(["shadowfarm: order grouped by urgency: 1 failed recently*"])

    @pytest.mark.slow  # several pytest runs
    def test_new_tests_are_counted_and_run_first(self, suite, monkeypatch):
        """A test added after the first run is new and comes first."""
        suite.runpytest(*SF).assert_outcomes(passed=9)
        suite.makepyfile(test_d="def test_d0(): pass\n")
        result = suite.runpytest(*SF, "--collect-only", "-q")
        result.stdout.fnmatch_lines(["*: 1 new*"])
        assert collected(suite)[0] == "test_d.py::test_d0"

    def test_explain_prints_components_for_the_first_tests(self, suite, monkeypatch):
        """--sf-explain 2 prints two rows with urgency, priority, ETC and components."""
        fail_once(suite, monkeypatch, "b0")
        result = suite.runpytest(*SF, "--sf-explain", "2")
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: the first 2 of 9 tests*",
                "*#*urgency*priority*ETC*test",
                "*1 * 1.000 *test_b.py::test_b0",
                "*base=0.00 failure=1.00 — failed last time",
                "*2 * 0.000 *test_b.py::test_b1",
            ]
        )

    def test_outside_git_one_line_says_change_impact_is_off_and_ordering_goes_on(
        self, suite, monkeypatch
    ):
        """A non-git directory prints one line and still orders by the other signals."""
        fail_once(suite, monkeypatch, "c2")
        result = suite.runpytest(*SF, "--collect-only", "-q")
        result.stdout.fnmatch_lines(
            ["shadowfarm: change impact off: * not inside a git repository"]
        )
        assert collected(suite)[0] == "test_c.py::test_c2"

    def test_the_report_json_carries_priority_components(self, suite, monkeypatch):
        """Each test in the run report has priority, components, urgency and flags."""
        fail_once(suite, monkeypatch, "a1")
        suite.runpytest(*SF, "--sf-report-json", "report.json").assert_outcomes(passed=9)
        tests = {
            t["nodeid"]: t for t in json.loads((suite.path / "report.json").read_text())["tests"]
        }
        entry = tests["test_a.py::test_a1"]
        assert entry["priority"] == 1.0
        assert entry["priority_components"] == {"base": 0.0, "failure": 1.0}
        assert entry["priority_reasons"] == ["failed last time"]
        assert entry["likely_failure"] is True
        assert entry["flaky"] is False
        assert entry["urgency"] > 0
        assert tests["test_a.py::test_a0"]["priority"] == 0.0


class TestMarker:
    MARKED = (
        "import pytest\n"
        "def test_plain(): pass\n"
        "@pytest.mark.shadowfarm(priority={value})\n"
        "def test_marked(): pass\n"
    )

    def test_a_critical_test_runs_first(self, suite):
        """priority="critical" moves a test in the last module to the front."""
        suite.makepyfile(test_z=self.MARKED.format(value='"critical"'))
        assert collected(suite)[0] == "test_z.py::test_marked"

    def test_a_number_works_as_importance(self, suite):
        """priority=0.3 (a number) is accepted and ranks the test first."""
        suite.makepyfile(test_z=self.MARKED.format(value="0.3"))
        assert collected(suite)[0] == "test_z.py::test_marked"

    def test_a_low_test_runs_after_its_module(self, pytester):
        """priority="low" puts a test after tests with no signal (base prior > 0)."""
        pytester.makepyfile(
            test_low="import pytest\n"
            "@pytest.mark.shadowfarm('low')\ndef test_first(): pass\n"
            "def test_second(): pass\n"
        )
        result = pytester.runpytest("-p", "shadowfarm", "--collect-only", "-q")
        order = [line for line in result.outlines if "::" in line]
        assert order == ["test_low.py::test_second", "test_low.py::test_first"]

    def test_a_class_marker_applies_to_its_tests(self, suite):
        """A marker on a class marks every test in it."""
        suite.makepyfile(
            test_z="import pytest\n"
            "def test_plain(): pass\n"
            "@pytest.mark.shadowfarm(priority='high')\n"
            "class TestImportant:\n"
            "    def test_one(self): pass\n"
        )
        assert collected(suite)[0] == "test_z.py::TestImportant::test_one"

    @pytest.mark.parametrize(
        ("value", "shown"),
        [('"urgent"', "'urgent'"), ("5", "5"), ("None", "None")],
    )
    def test_a_bad_value_is_a_usage_error_naming_the_test(self, suite, value, shown):
        """A bad priority stops the run, naming the test and the allowed values."""
        suite.makepyfile(test_z=self.MARKED.format(value=value))
        result = suite.runpytest(*SF)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                f"*test_z.py::test_marked: @pytest.mark.shadowfarm(priority={shown}) is not "
                "valid: expected one of critical, high, normal, low or a number from -1 to 1*"
            ]
        )

    def test_an_unknown_argument_is_a_usage_error(self, suite):
        """shadowfarm(prio=...) says how to write the marker."""
        suite.makepyfile(
            test_z="import pytest\n@pytest.mark.shadowfarm(prio='high')\ndef test_x(): pass\n"
        )
        result = suite.runpytest(*SF)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*write @pytest.mark.shadowfarm(priority=...)*'prio'*"])

    def test_strict_markers_accepts_the_marker(self, suite):
        """--strict-markers passes with the plugin enabled and when it is inert."""
        suite.makepyfile(test_z=self.MARKED.format(value='"high"'))
        suite.runpytest(*SF, "--strict-markers").assert_outcomes(passed=11)
        suite.runpytest("--strict-markers").assert_outcomes(passed=11)

    def test_the_marker_weight_comes_from_pyproject(self, suite):
        """[tool.shadowfarm.weights] marker = 0 switches the marker signal off."""
        suite.makepyfile(test_z=self.MARKED.format(value='"critical"'))
        suite.makepyprojecttoml("[tool.shadowfarm.weights]\nmarker = 0\n")
        assert collected(suite)[0] == "test_a.py::test_a0"

    def test_a_bad_weight_names_its_source(self, suite):
        """A negative weight is a usage error naming the option."""
        result = suite.runpytest("-p", "shadowfarm", "--sf-weight-failure", "-1")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*--sf-weight-failure='-1' is not valid*"])


class TestInterplay:
    def test_lf_runs_only_the_failures(self, suite, monkeypatch):
        """--lf still deselects everything but the last failures."""
        monkeypatch.setenv("FAILING", "b2,a1")
        suite.runpytest(*SF)
        result = suite.runpytest(*SF, "--lf", "-v")
        assert ran(result) == ["test_a.py::test_a1", "test_b.py::test_b2"]

    def test_ff_keeps_previous_failures_in_front_of_a_critical_test(self, suite, monkeypatch):
        """--ff: cacheprovider's failures come first, our order follows within each part."""
        suite.makepyfile(
            test_z="import pytest\n@pytest.mark.shadowfarm(priority='critical')\n"
            "def test_crit(): pass\n"
        )
        monkeypatch.setenv("FAILING", "c2")
        suite.runpytest(*SF, "--sf-weight-failure", "0")
        monkeypatch.delenv("FAILING")
        order = collected(suite, "--ff", "--sf-weight-failure", "0")
        assert order[:2] == ["test_c.py::test_c2", "test_z.py::test_crit"]

    def test_x_stops_at_the_previous_failure_first(self, suite, monkeypatch):
        """With -x, a test that failed last time runs first, so the run stops at once."""
        monkeypatch.setenv("FAILING", "c2")
        suite.runpytest(*SF)
        result = suite.runpytest(*SF, "-x")
        result.assert_outcomes(failed=1)

    def test_stepwise_keeps_collection_order_and_skips_nothing_unrun(self, suite, monkeypatch):
        """--sw: order kept (one line says so); the second run resumes at the failure."""
        monkeypatch.setenv("FAILING", "b1")
        first = suite.runpytest(*SF, "--sw", "-v")
        first.stdout.fnmatch_lines(["shadowfarm: order none: collection order kept, because --sw*"])
        assert ran(first) == COLLECTION[:5]
        monkeypatch.delenv("FAILING")
        second = suite.runpytest(*SF, "--sw", "-v")
        assert ran(second) == COLLECTION[4:]

    def test_k_and_m_deselect_before_ordering(self, suite, monkeypatch):
        """-k keeps only matching tests, ordered; the deselected count is pytest's."""
        fail_once(suite, monkeypatch, "c1")
        result = suite.runpytest(*SF, "-k", "c1 or a0", "-v")
        assert ran(result) == ["test_c.py::test_c1", "test_a.py::test_a0"]
        result.assert_outcomes(passed=2, deselected=7)

    def test_m_selects_by_marker(self, suite):
        """-m shadowfarm runs only the marked test."""
        suite.makepyfile(
            test_z="import pytest\n@pytest.mark.shadowfarm(priority='high')\ndef test_m(): pass\n"
        )
        suite.runpytest(*SF, "-m", "shadowfarm").assert_outcomes(passed=1, deselected=9)

    def test_without_cacheprovider_ordering_still_works(self, suite, monkeypatch):
        """-p no:cacheprovider: no --ff/--lf/--sw options, ordering is unaffected."""
        fail_once(suite, monkeypatch, "c0")
        assert collected(suite, "-p", "no:cacheprovider")[0] == "test_c.py::test_c0"


RANDOMLY = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    items.reverse()  # a fixed "shuffle": enough to see who wins
"""


class TestRandomly:
    @pytest.fixture
    def with_randomly(self, suite: pytest.Pytester) -> pytest.Pytester:
        suite.makepyfile(randomly=RANDOMLY)
        suite.syspathinsert()
        return suite

    def test_randomly_wins_when_the_order_is_not_set(self, with_randomly, monkeypatch):
        """With -p randomly and no --sf-order, the shuffle is kept and a line says so."""
        fail_once(with_randomly, monkeypatch, "a0")
        result = with_randomly.runpytest(*SF, "-p", "randomly", "--collect-only", "-q")
        result.stdout.fnmatch_lines(["shadowfarm: order none: pytest-randomly's shuffle is kept*"])
        assert collected(with_randomly, "-p", "randomly") == COLLECTION[::-1]

    def test_an_explicit_order_wins_over_randomly(self, with_randomly, monkeypatch):
        """--sf-order test overrides the shuffle; ties keep the shuffled order."""
        fail_once(with_randomly, monkeypatch, "a0")
        result = with_randomly.runpytest(
            *SF, "-p", "randomly", "--sf-order", "test", "--collect-only", "-q"
        )
        result.stdout.fnmatch_lines(["*(--sf-order overrides pytest-randomly's shuffle*"])
        order = collected(with_randomly, "-p", "randomly", "--sf-order", "test")
        assert order == [
            "test_a.py::test_a0",
            *[n for n in reversed(COLLECTION) if n != "test_a.py::test_a0"],
        ]


class TestChangeImpact:
    @pytest.fixture
    def repo(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
        for key, value in GIT_ENV.items():
            monkeypatch.setenv(key, value)
        pytester.makepyprojecttoml('[tool.pytest.ini_options]\npythonpath = ["src"]\n')
        (pytester.path / "src" / "pkg").mkdir(parents=True)
        (pytester.path / "src" / "pkg" / "__init__.py").write_text("")
        (pytester.path / "src" / "pkg" / "core.py").write_text("X = 1\n")
        (pytester.path / "src" / "pkg" / "api.py").write_text("from pkg.core import X\n")
        (pytester.path / ".gitignore").write_text(".shadowfarm/\n.pytest_cache/\n__pycache__/\n")
        pytester.makepyfile(
            test_1="def test_one(): pass\n",
            test_2="from pkg import api\ndef test_two(): pass\n",
            test_3="def test_three(): pass\n",
            test_4="import pkg.core\ndef test_four(): pass\n",
        )
        git(pytester.path, "init", "-q", "-b", "main")
        git(pytester.path, "add", "-A")
        git(pytester.path, "commit", "-q", "-m", "start")
        return pytester

    def order(self, repo: pytest.Pytester, *args: str) -> list[str]:
        result = repo.runpytest(*SF, "--collect-only", "-q", *args)
        return [line for line in result.outlines if "::" in line and " " not in line]

    def test_a_clean_tree_changes_nothing(self, repo):
        """With nothing changed the collection order stays."""
        assert self.order(repo) == [
            "test_1.py::test_one",
            "test_2.py::test_two",
            "test_3.py::test_three",
            "test_4.py::test_four",
        ]

    def test_importers_of_a_changed_module_go_first_nearest_first(self, repo):
        """Editing core.py puts test_4 (direct import) before test_2 (through api.py)."""
        (repo.path / "src" / "pkg" / "core.py").write_text("X = 2\n")
        result = repo.runpytest(*SF, "--collect-only", "-q")
        result.stdout.fnmatch_lines(["*: 2 import changed code; changes vs HEAD * (main)"])
        assert self.order(repo)[:2] == ["test_4.py::test_four", "test_2.py::test_two"]

    def test_a_changed_test_file_goes_before_importers(self, repo):
        """A changed test file (full signal) beats a test importing changed code."""
        (repo.path / "src" / "pkg" / "core.py").write_text("X = 3\n")
        (repo.path / "test_3.py").write_text("def test_three(): assert True\n")
        assert self.order(repo)[:2] == ["test_3.py::test_three", "test_4.py::test_four"]

    def test_an_untracked_test_file_counts_as_changed(self, repo):
        """A new test file git does not know yet is in a changed file."""
        repo.makepyfile(test_0="def test_zero(): pass\n")
        result = repo.runpytest(*SF, "--collect-only", "-q")
        result.stdout.fnmatch_lines(["*1 in changed test files*"])

    def test_a_feature_branch_compares_with_main(self, repo):
        """Committed changes on a branch still count against main's merge base."""
        git(repo.path, "checkout", "-q", "-b", "feature")
        (repo.path / "src" / "pkg" / "api.py").write_text("from pkg.core import X\nY = X\n")
        git(repo.path, "commit", "-q", "-am", "change api")
        assert self.order(repo)[0] == "test_2.py::test_two"
        assert self.order(repo, "--sf-base", "HEAD") == self.order(repo, "--sf-weight-change", "0")

    def test_an_unknown_base_switches_the_signal_off_with_a_line(self, repo):
        """--sf-base nope: one line says how to fix it, the run goes on."""
        result = repo.runpytest(*SF, "--sf-base", "nope")
        result.stdout.fnmatch_lines(
            ["shadowfarm: change impact off: --sf-base 'nope' is not a commit*"]
        )
        result.assert_outcomes(passed=4)


@pytest.mark.slow
class TestXdist:
    def test_an_xdist_run_with_ordering_enabled_runs_everything(self, suite, monkeypatch):
        """-n 2 runs every test once; workers do not reorder."""
        fail_once(suite, monkeypatch, "c1")
        result = suite.runpytest_subprocess(*SF, "-n", "2")
        result.assert_outcomes(passed=9)
