"""Tests for the ``shadowfarm`` console script and ``shadowfarm history ...``, run in-process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pytest_shadowfarm import __version__
from pytest_shadowfarm.cli import main as main_module
from pytest_shadowfarm.cli.main import main
from pytest_shadowfarm.estimate import Estimator
from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord
from pytest_shadowfarm.history.schema import SCHEMA_VERSION

DEFAULT = Path(".shadowfarm") / "history.sqlite"

#: (started, commit, {nodeid: (outcome, seconds or None)}) of the sample history, oldest first
SAMPLE_RUNS = [
    (1_700_000_000.0, "aaaa111", {"t.py::fast": ("passed", 0.1), "t.py::slow": ("passed", 3.0)}),
    (1_700_000_100.0, None, {"t.py::fast": ("passed", 0.2), "t.py::mid": ("failed", 1.0)}),
    (
        1_700_000_200.0,
        "cccc333",
        {
            "t.py::fast": ("failed", 0.3),
            "t.py::slow": ("passed", 2.5),
            "t.py::mid": ("error", None),
        },
    ),
]


def record(path: Path, runs=SAMPLE_RUNS) -> None:
    with HistoryStore.open(path) as store:
        for started, commit, results in runs:
            counts: dict[str, int] = {}
            for outcome, _ in results.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            store.record_run(
                RunRecord(started, started + 10.0, git_commit=commit, counts=counts),
                [
                    ResultRecord(n, o, 0.0, s, 0.0)
                    if s is not None
                    else ResultRecord(n, o, None, None, None)
                    for n, (o, s) in results.items()
                ],
            )


def runs_in(path: Path) -> int:
    with HistoryStore.open(path) as store:
        return store.summary().runs


class CLI:
    """Runs ``main`` in a project directory with a clean environment."""

    def __init__(self, cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.cwd = cwd
        self.capsys = capsys
        self.env: dict[str, str] = {}

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv), env=self.env, cwd=self.cwd)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(tmp_path, capsys) -> CLI:
    return CLI(tmp_path, capsys)


@pytest.fixture
def history(tmp_path) -> Path:
    path = tmp_path / DEFAULT
    record(path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class TestMain:
    def test_version_prints_the_package_version(self, cli):
        """--version prints "shadowfarm <version>" and exits 0."""
        assert cli("--version") == (0, f"shadowfarm {__version__}\n", "")

    def test_a_missing_command_is_a_usage_error(self, cli):
        """Without a command, argparse's usage error and exit code 2."""
        code, _, err = cli()
        assert code == 2
        assert "shadowfarm: error: the following arguments are required: COMMAND" in err

    def test_errors_print_one_line_without_a_traceback(self, cli):
        """A ShadowFarmError becomes "shadowfarm: error: ..." on stderr and exit 2."""
        code, out, err = cli("history", "show")
        assert (code, out) == (2, "")
        assert err.startswith("shadowfarm: error: .shadowfarm/history.sqlite: no history file")
        assert "Traceback" not in err
        assert len(err.splitlines()) == 1

    def test_a_new_command_group_only_needs_a_register_function(self, cli, monkeypatch):
        """Any module-like object with register(subparsers) in GROUPS becomes a command."""

        def register(subparsers):
            demo = subparsers.add_parser("demo")
            demo.set_defaults(run=lambda args, ctx: ctx.print("demo ran") or 3)

        group = types.SimpleNamespace(register=register)
        monkeypatch.setattr(main_module, "GROUPS", (*main_module.GROUPS, group))
        assert cli("demo") == (3, "demo ran\n", "")

    def test_the_module_runs_as_a_script(self, tmp_path):
        """python -m pytest_shadowfarm.cli.main behaves like the console script."""
        result = subprocess.run(
            [sys.executable, "-m", "pytest_shadowfarm.cli.main", "history", "show"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert result.stderr.startswith("shadowfarm: error: ")


class TestShow:
    def test_text_lists_counts_runs_slowest_tests_and_last_failures(self, cli, history):
        """The text summary has the totals, the latest runs, the slowest tests and failures."""
        code, out, err = cli("history", "show")
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == "history: .shadowfarm/history.sqlite"
        assert lines[1] == "runs known: 3, tests known: 3"
        assert lines[2] == "latest 3 runs (newest first):"
        assert lines[3].startswith("  #3  ")
        assert "wall 10.0s  1 passed, 1 failed, 1 error  commit cccc333  (pytest)" in lines[3]
        assert "commit" not in lines[4]
        slow_at = lines.index("slowest 3 tests (estimated seconds):")
        assert [line.split()[-1] for line in lines[slow_at + 1 : slow_at + 4]] == [
            "t.py::slow",
            "t.py::mid",
            "t.py::fast",
        ]
        assert lines[-3:] == [
            "failed in the last run (#3):",
            "  t.py::fast  failed",
            "  t.py::mid  error",
        ]

    def test_json_has_the_same_facts_with_the_estimators_numbers(self, cli, history):
        """--json prints the summary as JSON; slowest uses the real ETC estimator."""
        code, out, _ = cli("history", "show", "--json", "--top", "2", "--runs", "1")
        assert code == 0
        data = json.loads(out)
        with HistoryStore.open(history) as store:
            estimator = Estimator(store.durations())
        assert data["version"] == 1
        assert (data["path"], data["runs"], data["tests"]) == (str(history), 3, 3)
        assert [run["id"] for run in data["latest_runs"]] == [3]
        assert data["latest_runs"][0]["git_commit"] == "cccc333"
        assert data["latest_runs"][0]["wall_s"] == 10.0
        assert data["slowest"] == [
            {"nodeid": "t.py::slow", "estimate_s": estimator.etc("t.py::slow")},
            {"nodeid": "t.py::mid", "estimate_s": estimator.etc("t.py::mid")},
        ]
        assert data["last_run_id"] == 3
        assert data["failed_last_run"] == [
            {"nodeid": "t.py::fast", "outcome": "failed"},
            {"nodeid": "t.py::mid", "outcome": "error"},
        ]

    def test_an_empty_history_says_so(self, cli, tmp_path):
        """A history without runs shows zero counts and no run sections."""
        HistoryStore.open(tmp_path / DEFAULT).close()
        code, out, _ = cli("history", "show")
        assert (code, out.splitlines()[1:]) == (0, ["runs known: 0, tests known: 0"])

    def test_the_history_comes_from_the_environment_variable(self, cli, tmp_path):
        """SHADOWFARM_HISTORY (relative to the current directory) picks the file."""
        record(tmp_path / "ci" / "h.sqlite")
        cli.env["SHADOWFARM_HISTORY"] = "ci/h.sqlite"
        code, out, _ = cli("history", "show")
        assert (code, out.splitlines()[0]) == (0, "history: ci/h.sqlite")

    def test_the_history_option_beats_the_environment(self, cli, tmp_path, history):
        """--history wins over SHADOWFARM_HISTORY."""
        cli.env["SHADOWFARM_HISTORY"] = "missing.sqlite"
        code, out, _ = cli("history", "show", "--history", str(history))
        assert (code, out.splitlines()[0]) == (0, "history: .shadowfarm/history.sqlite")

    def test_the_default_is_under_the_current_directory(self, history, monkeypatch, capsys):
        """Without --history or the variable, ./.shadowfarm/history.sqlite is read."""
        monkeypatch.chdir(history.parent.parent)
        monkeypatch.delenv("SHADOWFARM_HISTORY", raising=False)
        assert main(["history", "show", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["path"] == str(Path.cwd() / DEFAULT)

    def test_a_corrupt_history_is_an_error_and_stays_where_it_is(self, cli, tmp_path):
        """show never moves a damaged file aside: it reports it."""
        path = write(tmp_path / DEFAULT, "garbage" * 100)
        code, _, err = cli("history", "show")
        assert code == 2
        assert "expected a pytest-shadowfarm history file" in err
        assert path.read_text() == "garbage" * 100
        assert [p.name for p in path.parent.iterdir()] == ["history.sqlite"]

    def test_a_newer_schema_is_an_error(self, cli, history):
        """A history from a newer pytest-shadowfarm exits 2 with the reason."""
        db = sqlite3.connect(history)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
        code, _, err = cli("history", "show")
        assert code == 2
        assert "is newer than this pytest-shadowfarm understands" in err

    def test_a_negative_top_is_a_usage_error(self, cli, history):
        """--top takes a whole number >= 0."""
        code, _, err = cli("history", "show", "--top", "-1")
        assert code == 2
        assert "expected a whole number >= 0, got '-1'" in err


class TestImport:
    def test_import_records_one_run_and_says_so(self, cli, tmp_path):
        """A .test_durations file lands as one run; the summary line names both files."""
        write(tmp_path / ".test_durations", '{"t.py::a": 1.5, "t.py::b": 2.0}')
        code, out, err = cli("history", "import", ".test_durations")
        assert (code, err) == (0, "")
        assert out == (
            "imported 2 results from .test_durations into .shadowfarm/history.sqlite "
            "(run #1, import:test_durations)\n"
        )
        with HistoryStore.open(tmp_path / DEFAULT) as store:
            assert store.durations() == {"t.py::a": [1.5], "t.py::b": [2.0]}

    def test_junit_classnames_resolve_against_the_rootdir(self, cli, tmp_path):
        """--rootdir is where JUnit classnames are looked up as files."""
        write(tmp_path / "src" / "tests" / "Odd.py", "")
        write(
            tmp_path / "junit.xml",
            '<testsuite><testcase classname="tests.Odd.TestA" name="test_b" time="1"/></testsuite>',
        )
        code, out, _ = cli("history", "import", "junit.xml", "--rootdir", "src")
        assert code == 0
        assert out.startswith("imported 1 results from junit.xml into ")
        with HistoryStore.open(tmp_path / DEFAULT) as store:
            assert list(store.last_results()) == ["tests/Odd.py::TestA::test_b"]

    def test_an_explicit_format_overrides_detection(self, cli, tmp_path):
        """--format reads the file as told and fails in that format's terms."""
        write(tmp_path / "x.json", '{"t.py::a": true}')
        code, _, err = cli("history", "import", "x.json", "--format", "test-durations")
        assert code == 2
        assert "'t.py::a' has duration True; expected a number of seconds >= 0" in err

    def test_a_bad_file_writes_nothing(self, cli, tmp_path):
        """A malformed file exits 2 naming it, and no history file is created."""
        write(tmp_path / ".test_durations", '{"t.py::a": -3}')
        code, out, err = cli("history", "import", ".test_durations")
        assert (code, out) == (2, "")
        assert err.startswith(f"shadowfarm: error: {tmp_path / '.test_durations'}: ")
        assert not (tmp_path / ".shadowfarm").exists()

    def test_a_bad_file_leaves_an_existing_history_unchanged(self, cli, tmp_path, history):
        """A failing import does not add a run to an existing history."""
        write(tmp_path / "junit.xml", "<testsuite><testcase classname='a' name='b' time='x'/>")
        assert cli("history", "import", "junit.xml")[0] == 2
        assert runs_in(history) == 3

    def test_a_missing_file_is_an_error(self, cli):
        """A file that does not exist exits 2 with the OS's reason."""
        code, _, err = cli("history", "import", "nope.xml")
        assert code == 2
        assert err.startswith("shadowfarm: error: ")
        assert "nope.xml: No such file or directory" in err

    def test_an_empty_file_imports_nothing(self, cli, tmp_path):
        """A file listing no tests adds no empty run."""
        write(tmp_path / "lastfailed", "{}")
        assert cli("history", "import", "lastfailed") == (
            0,
            "lastfailed lists no tests; nothing imported\n",
            "",
        )
        assert not (tmp_path / ".shadowfarm").exists()

    def test_keep_limits_the_results_kept_per_test(self, cli, tmp_path):
        """--keep is passed to the store, which prunes to that many results per test."""
        write(tmp_path / ".test_durations", '{"t.py::a": 1.5}')
        for _ in range(3):
            assert cli("history", "import", ".test_durations", "--keep", "2")[0] == 0
        with HistoryStore.open(tmp_path / DEFAULT) as store:
            assert store.durations() == {"t.py::a": [1.5, 1.5]}

    def test_a_bad_keep_in_the_environment_names_the_variable(self, cli, tmp_path):
        """SHADOWFARM_HISTORY_KEEP=0 is refused, naming the variable and what is allowed."""
        write(tmp_path / ".test_durations", '{"t.py::a": 1.5}')
        cli.env["SHADOWFARM_HISTORY_KEEP"] = "0"
        code, _, err = cli("history", "import", ".test_durations")
        assert code == 2
        assert "SHADOWFARM_HISTORY_KEEP='0' is not valid: expected a whole number >= 1" in err

    def test_a_corrupt_history_is_moved_aside_with_a_warning(self, cli, tmp_path):
        """Like a pytest run, import replaces a damaged history and warns on stderr."""
        write(tmp_path / DEFAULT, "garbage" * 100)
        write(tmp_path / ".test_durations", '{"t.py::a": 1.5}')
        code, out, err = cli("history", "import", ".test_durations")
        assert code == 0
        assert out.startswith("imported 1 results")
        assert err.startswith("shadowfarm: warning: ")
        assert "moved it to history.sqlite.corrupt-" in err
        assert len(list((tmp_path / ".shadowfarm").glob("history.sqlite.corrupt-*"))) == 1


class TestExport:
    @pytest.mark.parametrize(
        ("fmt", "count", "expected"),
        [
            ("test-durations", 3, {"t.py::fast": 0.2, "t.py::mid": 1.0, "t.py::slow": 2.75}),
            ("lastfailed", 2, {"t.py::fast": True, "t.py::mid": True}),
        ],
    )
    def test_json_formats_are_written_and_counted(
        self, cli, tmp_path, history, fmt, count, expected
    ):
        """export writes the file and reports how many tests it holds."""
        code, out, _ = cli("history", "export", "out/file", "--format", fmt)
        assert code == 0
        assert out == (
            f"exported {count} tests from .shadowfarm/history.sqlite to out/file ({fmt})\n"
        )
        assert json.loads((tmp_path / "out" / "file").read_text()) == expected

    def test_junit_export_imports_back_as_the_last_results(self, cli, tmp_path, history):
        """An exported JUnit file, imported into a new history, gives the same last results."""
        assert cli("history", "export", "h.xml", "--format", "junit")[0] == 0
        assert cli("history", "import", "h.xml", "--history", "new.sqlite")[0] == 0
        with HistoryStore.open(history) as old, HistoryStore.open(tmp_path / "new.sqlite") as new:
            before = {n: (r.outcome, r.duration_s or 0.0) for n, r in old.last_results().items()}
            after = {n: (r.outcome, r.duration_s) for n, r in new.last_results().items()}
        assert after == before

    def test_export_without_a_history_is_an_error(self, cli, tmp_path):
        """No history: exit 2, and no output file is written."""
        code, _, err = cli("history", "export", "out.json", "--format", "lastfailed")
        assert code == 2
        assert "no history file there" in err
        assert not (tmp_path / "out.json").exists()

    def test_a_name_without_a_known_format_asks_for_format(self, cli, history):
        """export guesses the format from the name; when it cannot, it asks for --format."""
        code, _, err = cli("history", "export", "out.dat")
        assert code == 2
        assert "--format" in err


class TestMerge:
    @pytest.fixture
    def shards(self, tmp_path) -> list[Path]:
        paths = []
        for n in range(2):
            path = tmp_path / f"shard{n}.sqlite"
            record(path, [(1000.0 + n, None, {f"t.py::s{n}": ("passed", 1.0)})])
            paths.append(path)
        return paths

    def test_merge_combines_shards_into_a_new_target(self, cli, tmp_path, shards):
        """Every shard's runs land in the target, with a line per source and a total."""
        code, out, _ = cli("history", "merge", "all.sqlite", "shard0.sqlite", "shard1.sqlite")
        assert code == 0
        assert out.splitlines() == [
            "merged 1 runs from shard0.sqlite",
            "merged 1 runs from shard1.sqlite",
            "all.sqlite now holds 2 runs of 2 tests (merged from 2 files)",
        ]
        assert runs_in(tmp_path / "all.sqlite") == 2

    def test_merging_again_adds_nothing(self, cli, tmp_path, shards):
        """Runs the target already holds are not copied a second time."""
        assert cli("history", "merge", "all.sqlite", "shard0.sqlite")[0] == 0
        code, out, _ = cli("history", "merge", "all.sqlite", "shard0.sqlite")
        assert (code, out.splitlines()[0]) == (0, "merged 0 runs from shard0.sqlite")
        assert runs_in(tmp_path / "all.sqlite") == 1

    def test_a_missing_source_fails_before_the_target_is_written(self, cli, tmp_path, shards):
        """One missing source: exit 2 naming it, and the target is not created."""
        code, _, err = cli("history", "merge", "all.sqlite", "shard0.sqlite", "gone.sqlite")
        assert code == 2
        assert "gone.sqlite: no history file there" in err
        assert not (tmp_path / "all.sqlite").exists()

    def test_a_corrupt_source_is_reported_and_left_alone(self, cli, tmp_path, shards):
        """A damaged source exits 2; it is not moved aside and nothing is merged."""
        bad = write(tmp_path / "bad.sqlite", "garbage" * 100)
        code, _, err = cli("history", "merge", "all.sqlite", "shard0.sqlite", "bad.sqlite")
        assert code == 2
        assert f"{bad}: not a readable SQLite database" in err
        assert bad.read_text() == "garbage" * 100
        assert not (tmp_path / "all.sqlite").exists()

    def test_the_target_named_as_a_source_is_skipped(self, cli, tmp_path, shards):
        """Merging a history into itself is a warning, not a doubling."""
        code, out, err = cli("history", "merge", "shard0.sqlite", "shard0.sqlite", "shard1.sqlite")
        assert code == 0
        assert err == "shadowfarm: warning: shard0.sqlite is the target itself; skipped\n"
        assert (
            out.splitlines()[-1]
            == "shard0.sqlite now holds 2 runs of 2 tests (merged from 1 files)"
        )
