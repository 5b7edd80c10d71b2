"""GitHub Actions output of a run (``--sf-github auto|on|off``): job summary and annotations.

Controller only. It notes where each failure happened while reports arrive and, once
the run report is final (``pytest_terminal_summary`` runs after every
``pytest_sessionfinish``), appends the Markdown summary to ``$GITHUB_STEP_SUMMARY``,
writes the SVG timeline next to the run report and prints the ``::error`` lines (GitHub
reads workflow commands from the step's standard output).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from pytest_shadowfarm.report.github import Failure, annotation_lines, build_summary
from pytest_shadowfarm.report.timeline import render_svg

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from pytest_shadowfarm.report.terminal import Anomaly
    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.settings import Settings

__all__ = ["GitHubPlugin", "github_enabled", "relative_to", "timeline_path"]

#: frames in installed packages are never where a failure should be pointed at
_INSTALLED = ("site-packages", "dist-packages")
#: a frame in a text traceback: "tests/test_x.py:12: in <module>"
_TEXT_FRAME = re.compile(r"(?m)^(\S[^\n]*?):(\d+): ")


def github_enabled(setting: str, env: Mapping[str, str]) -> bool:
    """``on``, or ``auto`` inside GitHub Actions (which sets GITHUB_ACTIONS=true)."""
    return setting == "on" or (setting == "auto" and env.get("GITHUB_ACTIONS") == "true")


def timeline_path(settings: Settings) -> Path:
    """Where the SVG timeline goes: beside the run report, else beside the history."""
    if settings.report_json is not None:
        return settings.report_json.with_name(settings.report_json.stem + ".timeline.svg")
    return settings.history.with_name("timeline.svg")


def relative_to(path: str, base: Path, workspace: Path) -> str | None:
    """``path`` (absolute, or relative to ``base``) relative to ``workspace``, POSIX style.

    None when it lies outside the workspace or inside an installed package: an
    annotation must name a file of the repository.
    """
    full = Path(path)
    if not full.is_absolute():
        full = base / full
    try:
        rel = Path(os.path.normpath(full)).relative_to(Path(os.path.normpath(workspace)))
    except ValueError:
        return None
    if any(part in _INSTALLED or part.startswith(".venv") for part in rel.parts):
        return None
    return rel.as_posix()


def failure_location(
    report: pytest.TestReport | pytest.CollectReport, *, base: Path, rootdir: Path, workspace: Path
) -> tuple[str | None, int | None]:
    """Where to annotate: the test's file, at the line in the test that led to the failure.

    That is the outermost traceback entry in the test's own file: the assertion, or the
    call into the helper or library that raised (as pytest-github-actions-annotate-failures
    does), else pytest's crash line if it is in that file, else the test's definition. A
    test file outside the repository falls back to the innermost frame inside it.
    """
    entries: list[tuple[str, int | None]] = []  # outermost first, as pytest prints them
    longrepr = report.longrepr
    traceback = getattr(longrepr, "reprtraceback", None)
    for entry in getattr(traceback, "reprentries", None) or []:
        loc = getattr(entry, "reprfileloc", None)
        if loc is not None:
            entries.append((str(loc.path), loc.lineno))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        entries.append((str(crash.path), crash.lineno))
    if traceback is None and longrepr is not None:
        # A text report (e.g. an ImportError at collection): "path:12: in <module>" lines.
        for match in _TEXT_FRAME.finditer(str(longrepr)):
            entries.append((match.group(1), int(match.group(2))))
    location = getattr(report, "location", None)
    if location:
        path, lineno, _ = location
        own_line = None if lineno is None else lineno + 1
    else:  # a collection error: its node id is the file
        path, own_line = report.nodeid.partition("::")[0], None
    test_file = relative_to(str(rootdir / path), base, workspace) if path else None
    if test_file is not None:
        for frame, line in entries:
            if relative_to(frame, base, workspace) == test_file:
                return test_file, line
        return test_file, own_line
    for frame, line in reversed(entries):
        rel = relative_to(frame, base, workspace)
        if rel is not None:
            return rel, line
    return None, None


def failure_message(report: pytest.TestReport | pytest.CollectReport) -> str:
    """pytest's one-line crash message; for a text report, its ``E`` lines."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)
    lines = str(report.longrepr or "").strip().splitlines()
    explained = [line[1:].strip() for line in lines if line.startswith("E ")]
    return "\n".join(explained or lines[-20:])


class RunReports(Protocol):
    """Where the GitHub output reads the run's report and anomalies (the session writer)."""

    def final_report(self) -> dict[str, Any]: ...
    def anomalies(self) -> list[Anomaly]: ...


class GitHubPlugin:
    """Collects failure locations; writes the summary and annotations at the end."""

    def __init__(
        self,
        run: Run,
        reports: RunReports,
        *,
        env: Mapping[str, str],
        invocation_dir: Path,
    ) -> None:
        self.run = run
        self.reports = reports
        settings = self.settings = run.settings
        self.env = env
        self.base = invocation_dir
        workspace = env.get("GITHUB_WORKSPACE")
        self.workspace = Path(workspace) if workspace else settings.rootdir
        self.failures: list[Failure] = []
        self._failed: set[str] = set()
        self.done = False

    def _add(
        self, report: pytest.TestReport | pytest.CollectReport, outcome: str, when: str
    ) -> None:
        if report.nodeid in self._failed:
            return  # one annotation per test: its first failing phase
        self._failed.add(report.nodeid)
        file, line = failure_location(
            report, base=self.base, rootdir=self.settings.rootdir, workspace=self.workspace
        )
        self.failures.append(
            Failure(
                nodeid=report.nodeid,
                outcome=outcome,
                when=when,
                message=failure_message(report),
                at_s=self.run.now(),
                file=file,
                line=line,
            )
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and not hasattr(report, "wasxfail"):
            self._add(report, "failed" if report.when == "call" else "error", report.when)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._add(report, "error", "collect")

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        self.done = True
        for line in self.publish():
            terminalreporter.write_line(line)

    def pytest_unconfigure(self) -> None:
        # Without a terminal reporter (-p no:terminal) there is no terminal summary:
        # the job summary is still written; annotations go to stdout directly.
        if not self.done and self.run.wall_s is not None:  # the session did finish
            self.done = True
            for line in self.publish():
                print(line)

    def publish(self) -> list[str]:
        """Write the summary and the SVG; return the annotation lines to print."""
        report = self.reports.final_report()
        svg = timeline_path(self.settings)
        svg_written = self._write(
            svg, render_svg(report.get("tests", []), wall_s=report.get("wall_s"))
        )
        anomalies = self.reports.anomalies()  # the same list the terminal shows
        summary_file = self.env.get("GITHUB_STEP_SUMMARY")
        shown_svg = relative_to(str(svg), self.base, self.workspace) or str(svg)
        text = build_summary(
            report, self.failures, anomalies, svg_path=shown_svg if svg_written else None
        )
        if summary_file:
            self._write(Path(summary_file), text, append=True)
        else:
            self.run.warn(
                "--sf-github is on but GITHUB_STEP_SUMMARY is not set: no job summary written"
            )
        return annotation_lines(self.failures)

    def _write(self, path: Path, text: str, *, append: bool = False) -> bool:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if append else "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            self.run.warn(f"cannot write {path}: {exc}")
            return False
        return True


def make(config: pytest.Config, run: Run, reports: RunReports) -> GitHubPlugin | None:
    """The GitHub output, when it is on for this run (None otherwise)."""
    if not github_enabled(run.settings.github, os.environ):
        return None
    return GitHubPlugin(
        run, reports, env=dict(os.environ), invocation_dir=config.invocation_params.dir
    )
