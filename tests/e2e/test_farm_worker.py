"""The warm worker process: warm-up, hand-off, authentication, parent watch (real processes)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest.mock import ANY

import pytest

from pytest_shadowfarm.farm.handoff import connect_worker
from shadowfarm_wire.protocol import send_hello, unix_address
from tests.farmtools import REPO, WAIT_S, gone, make_spec, private_dir, wait_until

pytestmark = pytest.mark.slow

#: remote code that would leave a trace if it ever ran
MARKER_SOURCE = "open({path!r}, 'w').write('ran')"


class TestWarmUp:
    def test_the_readiness_report_has_the_shadow_test_and_the_warm_modules(
        self, farm_project, spawn_worker
    ):
        """The shadow test passed, certifi (tests) and idna (warm_modules) are kept warm."""
        worker = spawn_worker(farm_project)
        report = worker.wait_for("ready")["report"]
        assert report["ok"] is True
        assert report["tests"] == [
            {"nodeid": "tests/test_lib.py::test_version", "outcome": "passed", "duration_s": ANY}
        ]
        assert {"certifi", "idna"} <= set(report["modules"])
        assert "mylib" not in report["modules"]
        assert report["purged"] > 0

    def test_the_warmup_hook_of_a_conftest_runs_and_its_imports_stay_warm(
        self, farm_project, spawn_worker, tmp_path
    ):
        """pytest_shadowfarm_warmup in tests/conftest.py ran; what it imported is kept."""
        trace = tmp_path / "warmup-ran"
        (farm_project / "tests" / "conftest.py").write_text(
            "def pytest_shadowfarm_warmup(config):\n"
            "    import charset_normalizer\n"
            f"    open({str(trace)!r}, 'w').write(str(config.rootpath))\n"
        )
        report = spawn_worker(farm_project).wait_for("ready")["report"]
        assert report["warmup_hook"] == "ran"
        assert trace.read_text() == str(farm_project)
        assert "charset_normalizer" in report["modules"]

    @pytest.mark.parametrize(("plugins", "blocked"), [([], "False"), (["no:junitxml"], "True")])
    def test_the_runs_plugin_options_load_in_a_warm_up_without_a_run_context(
        self, farm_project, spawn_worker, tmp_path, plugins, blocked
    ):
        """The spec's plugins (the last claim's -p options) apply to the shadow run."""
        trace = tmp_path / "blocked"
        (farm_project / "tests" / "test_plugins.py").write_text(
            "def test_seen(request):\n"
            "    blocked = request.config.pluginmanager.is_blocked('junitxml')\n"
            f"    with open({str(trace)!r}, 'w') as out:\n"
            "        out.write(str(blocked))\n"
        )
        worker = spawn_worker(
            farm_project, plugins=plugins, shadow_tests=["tests/test_plugins.py::test_seen"]
        )
        report = worker.wait_for("ready")["report"]
        assert report["ok"] is True, report
        assert trace.read_text() == blocked

    def test_the_main_module_survives_the_purge(self, farm_project, spawn_worker):
        """With this repository installed editable, the worker's ``__main__`` is source
        code under an editable root; tests that call inspect.getmodule need it."""
        (farm_project / "tests" / "test_main.py").write_text(
            "import inspect, sys\n"
            "def test_main():\n"
            "    assert '__main__' in sys.modules\n"
            "    assert inspect.getmodule(len) is sys.modules['builtins']\n"
        )
        worker = spawn_worker(farm_project, shadow_tests=["tests/test_main.py::test_main"])
        report = worker.wait_for("ready")["report"]
        assert report["tests"][0]["outcome"] == "passed", report

    def test_the_budget_stops_the_shadow_run_without_making_it_unhealthy(
        self, farm_project, spawn_worker
    ):
        """Past the budget the shadow run stops after the current test; still healthy."""
        worker = spawn_worker(
            farm_project,
            shadow_tests=["tests/test_lib.py::test_version", "tests/test_lib.py::test_where"],
            budget_s=0.0,
        )
        report = worker.wait_for("ready")["report"]
        assert (report["ok"], report["budget_reached"], len(report["tests"])) == (True, True, 1)

    def test_a_failing_shadow_test_makes_the_report_unhealthy(self, farm_project, spawn_worker):
        """A shadow test that fails is the canary: ok is false and the failure is listed."""
        (farm_project / "tests" / "test_lib.py").write_text("def test_version():\n    assert 0\n")
        report = spawn_worker(farm_project).wait_for("ready")["report"]
        assert report["ok"] is False
        assert report["failed"] == 1

    def test_a_worker_whose_profile_differs_from_its_spec_does_not_warm(
        self, farm_project, spawn_worker
    ):
        """Installed distributions changed since the spec: the worker says so and exits 3."""
        worker = spawn_worker(farm_project, profile_key="0" * 16)
        event = worker.wait_for("mismatch")
        assert event["expected"] == "0" * 16
        assert worker.proc.wait(WAIT_S) == 3


class TestHandoff:
    def test_the_session_runs_in_the_clients_cwd_and_environment(
        self, farm_project, spawn_worker, open_gateway, tmp_path
    ):
        """cwd, environment and umask come from the hello, not from the daemon; sys.argv and
        __main__ are a popen worker's (``python -c``), not the farm worker's."""
        worker = spawn_worker(farm_project)
        worker.wait_for("ready")
        env = {**os.environ, "SF_CLIENT_MARK": "from-client"}
        gw = open_gateway(worker.slot(), env=env, cwd=str(tmp_path))
        channel = gw.remote_exec(
            "import os, sys\n"
            "main = sys.modules['__main__']\n"
            "channel.send((os.getcwd(), os.environ.get('SF_CLIENT_MARK'), os.getpid(),"
            " sys.argv, getattr(main, '__file__', None), main.__spec__))"
        )
        cwd, mark, pid, argv, main_file, main_spec = channel.receive(WAIT_S)
        assert (cwd, mark, pid) == (str(tmp_path), "from-client", worker.proc.pid)
        assert (argv, main_file, main_spec) == (["-c"], None, None)
        assert worker.wait_for("claimed")["session"] == "gw0"

    def test_an_edited_project_module_is_imported_fresh(
        self, farm_project, spawn_worker, open_gateway
    ):
        """mylib was imported by the shadow run at v1; edited to v2, the session sees v2."""
        worker = spawn_worker(farm_project)
        worker.wait_for("ready")
        (farm_project / "src" / "mylib.py").write_text("VERSION = 2\n")
        gw = open_gateway(worker.slot(), cwd=str(farm_project))
        channel = gw.remote_exec(
            "import sys\n"
            "kept = sorted(m for m in ('mylib', 'conftest', 'test_lib', 'pytest_shadowfarm',"
            " 'certifi') if m in sys.modules)\n"
            "sys.path.insert(0, 'src')\n"
            "import mylib\n"
            "channel.send((kept, mylib.VERSION))"
        )
        kept, version = channel.receive(WAIT_S)
        assert kept == ["certifi"]
        assert version == 2

    def test_the_worker_exits_when_its_session_ends(self, farm_project, spawn_worker, open_gateway):
        """One session, then the process is gone (exit status 0) and our socket closed."""
        worker = spawn_worker(farm_project)
        worker.wait_for("ready")
        gw = open_gateway(worker.slot())
        gw.remote_exec("channel.send(1)").receive(WAIT_S)
        gw.exit()  # as xdist ends a node: its group's terminate() then skips the gateway
        gw.join(WAIT_S)
        assert gw._io.sock.fileno() == -1
        assert worker.proc.wait(WAIT_S) == 0
        assert not Path(worker.spec.socket).exists()


class TestRejection:
    def test_a_wrong_token_is_rejected_and_nothing_runs(
        self, farm_project, spawn_worker, open_gateway, tmp_path
    ):
        """A hello with a wrong token, then execnet code: closed unread; the real client works."""
        marker = tmp_path / "ran-wrong-token"
        worker = spawn_worker(farm_project)
        worker.wait_for("ready")
        with pytest.raises((OSError, EOFError)):
            connect_worker(worker.slot(token="not-the-token"), "gw9")
        assert worker.wait_for("rejected")["reason"] == "wrong token"
        gw = open_gateway(worker.slot())
        assert gw.remote_exec("channel.send('real')").receive(WAIT_S) == "real"
        assert not marker.exists()

    def test_a_raw_execnet_bootstrap_is_rejected_and_nothing_runs(
        self, farm_project, spawn_worker, tmp_path
    ):
        """execnet's own bootstrap (a repr'd source line) is not a hello: rejected, not run."""
        from execnet.gateway_bootstrap import sendexec

        from shadowfarm_wire.protocol import UnixIO

        marker = tmp_path / "ran-bootstrap"
        worker = spawn_worker(farm_project)
        worker.wait_for("ready")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            with unix_address(worker.spec.socket) as address:
                sock.connect(address)
            sendexec(UnixIO(sock, None), MARKER_SOURCE.format(path=str(marker)))
            assert "no valid hello" in worker.wait_for("rejected")["reason"]
            sock.settimeout(WAIT_S)
            try:
                answer = sock.recv(1)
            except ConnectionResetError:  # closed with our bytes unread
                answer = b""
            assert answer == b""
        assert worker.proc.poll() is None  # still waiting for its real client
        assert not marker.exists()

    def test_another_uid_is_rejected_even_with_the_right_token(
        self, farm_project, spawn_worker, tmp_path
    ):
        """The 0700 directory stops another uid; past it, SO_PEERCRED still does."""
        if os.geteuid() != 0:
            pytest.skip("acting as another uid needs root (setuid in a forked child)")
        # /tmp, not tmp_path: pytest's base temp dir is itself 0700 and would stop the other
        # uid one level too early for the second check.
        sockets = Path(tempfile.mkdtemp(prefix="sf-uid-", dir="/tmp"))
        try:
            worker = spawn_worker(farm_project, socket=str(sockets / "w.sock"))
            worker.wait_for("ready")
            assert _connect_as(65534, worker.spec.socket, worker.spec.token) == "PermissionError"
            sockets.chmod(0o755)  # only for this test: let the other uid reach the socket
            Path(worker.spec.socket).chmod(0o666)
            assert _connect_as(65534, worker.spec.socket, worker.spec.token) == "closed"
            assert "peer uid 65534" in worker.wait_for("rejected")["reason"]
        finally:
            shutil.rmtree(sockets, ignore_errors=True)


def _connect_as(uid: int, path: str, token: str) -> str:
    """Fork, become ``uid``, connect and present ``token``; say how it went."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only syscalls, then _exit
        outcome = "error"
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            with unix_address(path) as address:
                sock.connect(address)
            send_hello(sock, {"token": token, "cwd": "/", "env": {}})
            outcome = "accepted" if sock.recv(1) else "closed"
        except PermissionError:
            outcome = "PermissionError"
        except (BrokenPipeError, ConnectionResetError):  # closed before reading our hello
            outcome = "closed"
        except OSError as exc:
            outcome = type(exc).__name__
        finally:
            os.write(write_end, outcome.encode())
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as fh:
        return fh.read().decode()


PARENT = """
import subprocess, sys
spec = sys.stdin.buffer.readline()
proc = subprocess.Popen([sys.executable, "-m", "farm_server.worker"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, start_new_session=True)
proc.stdin.write(spec); proc.stdin.flush()
print(proc.pid, flush=True)
for line in proc.stdout:
    sys.stdout.write(line.decode()); sys.stdout.flush()
"""


class TestParentWatch:
    def test_an_unclaimed_worker_exits_when_its_parent_is_killed(self, farm_project, tmp_path):
        """SIGKILL of the process that started a warm worker ends the worker too."""
        spec = make_spec(farm_project, private_dir(tmp_path / "sockets"), "orphan")
        with subprocess.Popen(
            [sys.executable, "-c", PARENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=tmp_path,
        ) as parent:
            assert parent.stdin is not None
            assert parent.stdout is not None
            parent.stdin.write(spec.to_json())
            parent.stdin.flush()
            worker_pid = int(parent.stdout.readline())
            try:
                for line in parent.stdout:
                    if json.loads(line)["event"] == "ready":
                        break
                assert not gone(worker_pid)
                parent.kill()
                parent.wait(WAIT_S)
                assert wait_until(lambda: gone(worker_pid), timeout=WAIT_S)
            finally:
                parent.kill()
                if not gone(worker_pid):
                    os.kill(worker_pid, 9)
