"""Traces: read exactly, bad input named by file and line with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm_server.forecast.trace import Run, TraceError, eval_start, read_trace, write_trace


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


class TestReadTrace:
    def test_rows_round_trip(self, tmp_path):
        """What write_trace writes, read_trace reads back."""
        runs = [Run(1772409600.0, 2, 300.0), Run(1772409660.0, 1, 12.5)]
        path = tmp_path / "t.csv"
        write_trace(path, runs)
        assert read_trace(path) == runs
        assert eval_start(runs) == runs[-1].time - 28 * 86400

    @pytest.mark.parametrize(
        ("text", "where", "fix"),
        [
            ("when,n\n", ":1:", "header must be"),
            ("time,workers,seconds\n2026-03-01 14:05:09,2,300\n", ":2:", "ISO-8601 UTC"),
            ("time,workers,seconds\n2026-03-01T14:05:09Z,two,300\n", ":2:", "whole number"),
            ("time,workers,seconds\n2026-03-01T14:05:09Z,0,300\n", ":2:", ">= 1"),
            ("time,workers,seconds\n2026-03-01T14:05:09Z,2\n", ":2:", "3 fields"),
            (
                "time,workers,seconds\n2026-03-01T14:05:09Z,2,300\n2026-03-01T14:00:00Z,2,300\n",
                ":3:",
                "sort the trace by time",
            ),
            ("time,workers,seconds\n", "", "no rows"),
        ],
    )
    def test_a_bad_trace_names_file_line_and_fix(self, tmp_path, text, where, fix):
        """Each kind of bad input says where it is and what to write instead."""
        path = write(tmp_path, text)
        with pytest.raises(TraceError, match=fix) as info:
            read_trace(path)
        assert f"{path}{where}" in str(info.value)

    def test_a_missing_file_is_a_trace_error(self, tmp_path):
        """An unreadable path is reported as such, with the expected format."""
        with pytest.raises(TraceError, match="cannot read the trace"):
            read_trace(tmp_path / "missing.csv")
