"""The farm through real pytest runs: warm hand-off, stale code, fallbacks, concurrency."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shadowfarm_wire.home import FarmHome
from shadowfarm_wire.profile import current_profile
from tests.farmtools import counts

pytestmark = pytest.mark.slow

#: every pytest run below ends well within this, or the test fails instead of hanging
RUN_TIMEOUT_S = 180

PYPROJECT = """
[tool.pytest.ini_options]
pythonpath = ["src"]
filterwarnings = ["error"]
"""

TESTS = """
import os

import certifi
import pytest

import mylib


def test_version_is_positive():
    assert mylib.VERSION >= 1


def test_version_is_the_expected_one():
    expected = os.environ.get("EXPECTED_VERSION")
    if expected is None:
        pytest.skip("only checked in the real runs")
    assert mylib.VERSION == int(expected)


@pytest.mark.parametrize("i", range(4))
def test_certifi(i):
    assert certifi.where()
"""


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project whose tests import certifi and its own mylib, with a private farm home."""
    pytester.makefile(".toml", pyproject=PYPROJECT)
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "mylib.py").write_text("VERSION = 1\n")
    pytester.makepyfile(test_lib=TESTS)
    monkeypatch.setenv("SHADOWFARM_HOME", str(tmp_path / "farm-home"))
    monkeypatch.delenv("EXPECTED_VERSION", raising=False)
    return pytester


@pytest.fixture
def home_with_token(project, tmp_path: Path) -> FarmHome:
    """The farm home of ``project`` with a token, as a farm that ran once leaves it."""
    home = FarmHome(tmp_path / "farm-home").create()
    home.ensure_token()
    return home


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "shadowfarm", "-n", "2", "-p", "no:cacheprovider", *args, timeout=RUN_TIMEOUT_S
    )


def report(pytester: pytest.Pytester, name: str = "report.json") -> dict[str, Any]:
    return json.loads((pytester.path / name).read_text())


class FakeFarm(http.server.ThreadingHTTPServer):
    """An HTTP server on a free loopback port that answers every request with ``respond``."""

    def __init__(self, respond: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with contextlib.suppress(OSError):
                    respond(self)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def fake_farm() -> Iterator[Callable[..., FakeFarm]]:
    servers: list[FakeFarm] = []

    def start(respond: Callable[[Any], None]) -> FakeFarm:
        server = FakeFarm(respond)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _answer(status: int, body: bytes, delay: float = 0.0) -> Callable[[Any], None]:
    def respond(handler: Any) -> None:
        time.sleep(delay)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


@pytest.mark.usefixtures("home_with_token")
class TestWithoutAUsableFarm:
    def test_no_farm_running_is_one_header_line_and_a_cold_run(self, project):
        """auto with nothing in the farm home: cold workers, no warning."""
        result = run(project)
        result.stdout.fnmatch_lines(["shadowfarm: no farm running; cold workers"])
        result.assert_outcomes(passed=5, skipped=1)
        assert "ShadowFarmWarning" not in result.stdout.str()

    def test_off_says_nothing(self, project):
        """--sf-farm off: no farm line at all."""
        result = run(project, "--sf-farm", "off")
        result.stdout.no_fnmatch_line("*no farm running*")
        result.stdout.no_fnmatch_line("*warm workers*")
        result.assert_outcomes(passed=5, skipped=1)

    def test_a_farm_that_is_down_costs_a_warning(self, project, fake_farm):
        """A URL where nothing listens: one warning, cold run, all tests pass."""
        server = fake_farm(_answer(200, b"{}"))
        url = server.url
        server.shutdown()
        server.server_close()
        result = run(project, "--sf-farm", url)
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: farm unavailable; 2 cold workers",
                f"*farm not used, workers start cold: the farm at {url} is not reachable*",
            ]
        )
        result.assert_outcomes(passed=5, skipped=1, warnings=1)

    def test_a_slow_farm_costs_its_timeout_and_a_warning(self, project, fake_farm):
        """A farm that answers after 5 s is given up on after 2 s."""
        server = fake_farm(_answer(200, b"{}", delay=5))
        result = run(project, "--sf-farm", server.url)
        result.stdout.fnmatch_lines([f"*the farm at {server.url} did not answer within 2s*"])
        result.assert_outcomes(passed=5, skipped=1, warnings=1)

    @pytest.mark.parametrize(
        ("status", "body", "message"),
        [
            (200, b"<html>hello</html>", "with something that is not JSON"),
            (200, b"[1, 2]", "with JSON that is not an object"),
            (200, b'{"claim_id": 1}', "did not prove it is the farm of this home"),
            (500, b'{"detail": "boom"}', "answered 500: boom"),
        ],
    )
    def test_a_farm_answering_garbage_costs_a_warning(
        self, project, fake_farm, status, body, message
    ):
        """Whatever the farm answers, the run goes on cold with one line saying why."""
        server = fake_farm(_answer(status, body))
        result = run(project, "--sf-farm", server.url)
        result.stdout.fnmatch_lines([f"*{message}*"])
        result.assert_outcomes(passed=5, skipped=1, warnings=1)


def _wait_warm(farm: Any, key: str, n: int) -> None:
    farm.wait_status(lambda s: counts(s, key).get("warm", 0) >= n, f"{n} warm workers")


def _farm_ids(output: str) -> set[str]:
    return set(re.findall(r"gw\d+ <- (w-[0-9a-f]+)", output))


class TestWarmRuns:
    def test_a_warm_run_sees_edited_code_and_reports_warm_workers(
        self, project, start_farm, tmp_path, monkeypatch
    ):
        """First run registers the profile; then warm workers run the edited code."""
        farm = start_farm(name="farm-home")
        key = current_profile(str(project.path), []).key
        first = run(project)
        first.stdout.fnmatch_lines(["shadowfarm: 0 warm workers (farm), 2 cold; new profile *"])
        _wait_warm(farm, key, 2)
        (project.path / "src" / "mylib.py").write_text("VERSION = 2\n")
        monkeypatch.setenv("EXPECTED_VERSION", "2")
        result = run(project, "--sf-report-json", "report.json")
        result.stdout.fnmatch_lines(
            [
                "shadowfarm: 2 warm workers (farm), 0 cold",
                "farm: 2 warm workers (gw0 <- w-*), 0 cold",
            ]
        )
        result.assert_outcomes(passed=6)
        workers = report(project)["workers"]
        assert [(w["id"], w["warm"]) for w in workers] == [("gw0", True), ("gw1", True)]
        used = _farm_ids(result.stdout.str())
        farm.wait_status(
            lambda s: not used & {w["id"] for w in s["workers"]},
            "the used workers gone after the run",
        )

    def test_two_concurrent_runs_get_distinct_workers(self, project, start_farm):
        """Two runs at once, four warm workers: each run gets two, none shared."""
        farm = start_farm(name="farm-home", default_min_warm=4, default_max_warm=4)
        key = current_profile(str(project.path), []).key
        run(project)
        _wait_warm(farm, key, 4)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "shadowfarm",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
        ]
        procs = [
            subprocess.Popen(
                command,
                cwd=project.path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [proc.communicate(timeout=RUN_TIMEOUT_S)[0] for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], outputs
        first, second = (_farm_ids(out) for out in outputs)
        assert len(first) == len(second) == 2, outputs
        assert not first & second
