"""The history CLI as a new user meets it: ``show`` after ``merge``, ``export`` by file name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_shadowfarm.cli.main import main
from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord


def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), env={}, cwd=tmp_path)
    out, err = capsys.readouterr()
    return code, out, err


def record(path: Path, started: float, nodeid: str, commit: str) -> None:
    with HistoryStore.open(path) as store:
        store.record_run(
            RunRecord(started, started + 1.0, git_commit=commit, counts={"passed": 1}),
            [ResultRecord(nodeid, "passed", 0.0, 0.5, 0.0)],
        )


class TestShowAfterMerge:
    def test_runs_are_listed_newest_first_whatever_order_they_were_merged_in(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A target with a new run, merged with an older shard: the newest still leads."""
        record(tmp_path / "target.sqlite", 2_000.0, "t.py::new", "newnew1")
        record(tmp_path / "old.sqlite", 1_000.0, "t.py::old", "oldold1")
        assert cli(tmp_path, capsys, "history", "merge", "target.sqlite", "old.sqlite")[0] == 0
        code, out, _ = cli(tmp_path, capsys, "history", "show", "--history", "target.sqlite")
        assert code == 0
        listed = [line for line in out.splitlines() if "commit" in line]
        assert "newnew1" in listed[0]
        assert "oldold1" in listed[1]


class TestExportFormat:
    @pytest.mark.parametrize(
        ("name", "fmt"),
        [
            ("report.xml", "junit"),
            ("durations.json", "test-durations"),
            (".test_durations", "test-durations"),
            ("lastfailed", "lastfailed"),
        ],
    )
    def test_the_format_is_guessed_from_the_file_name(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, fmt: str
    ) -> None:
        """No --format: the name says it, and the message names the format chosen."""
        record(tmp_path / ".shadowfarm" / "history.sqlite", 1_000.0, "t.py::a", "c0ffee1")
        code, out, err = cli(tmp_path, capsys, "history", "export", name)
        assert (code, err) == (0, "")
        assert out.endswith(f"({fmt})\n")
        if fmt != "junit":
            assert isinstance(json.loads((tmp_path / name).read_text()), dict)
