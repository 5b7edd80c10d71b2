"""The farm's state directory: where it is, its permissions, the token, daemon.json."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psutil
import pytest

from shadowfarm_wire.home import DaemonInfo, FarmHome, HomeError, default_home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestWhere:
    def test_the_state_home_comes_from_xdg_when_absolute(self, tmp_path):
        """An absolute XDG_STATE_HOME is used; a relative one is ignored (the spec says so)."""
        assert default_home({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "shadowfarm"
        fallback = Path.home() / ".local" / "state" / "shadowfarm"
        assert default_home({"XDG_STATE_HOME": "rel/dir"}) == fallback
        assert default_home({}) == fallback

    def test_the_command_line_wins_over_the_environment(self, tmp_path):
        """--home > $SHADOWFARM_HOME > the user's state directory."""
        env = {"SHADOWFARM_HOME": str(tmp_path / "env"), "XDG_STATE_HOME": str(tmp_path)}
        assert FarmHome.resolve(tmp_path / "cli", env).root == tmp_path / "cli"
        assert FarmHome.resolve(None, env).root == tmp_path / "env"
        del env["SHADOWFARM_HOME"]
        assert FarmHome.resolve(None, env).root == tmp_path / "shadowfarm"


class TestCreate:
    def test_every_directory_it_creates_is_private(self, tmp_path):
        """root, sockets and logs are created 0700."""
        home = FarmHome(tmp_path / "a" / "home").create()
        assert [mode(p) for p in (home.root, home.sockets, home.logs)] == [0o700] * 3

    def test_an_existing_home_is_checked_and_never_chmodded(self, tmp_path):
        """An existing root others may read is used as it is (its own directories are
        0700); one others can write to is a HomeError with the fix, its mode untouched."""
        root = tmp_path / "home"
        root.mkdir()
        root.chmod(0o755)
        home = FarmHome(root).create()
        assert [mode(p) for p in (home.root, home.sockets, home.logs)] == [0o755, 0o700, 0o700]
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o775)
        with pytest.raises(HomeError, match=r"others can write to it; run 'chmod go-w"):
            FarmHome(shared).create()
        assert mode(shared) == 0o775

    def test_a_symlink_in_the_way_is_checked_where_it_leads(self, tmp_path):
        """A symlink where the home should be: the directory it leads to must be private
        enough, else HomeError naming the fix and --home."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        elsewhere.chmod(0o777)
        (tmp_path / "home").symlink_to(elsewhere)
        with pytest.raises(HomeError, match=r"others can write to it; .*--home"):
            FarmHome(tmp_path / "home").create()
        assert list(elsewhere.iterdir()) == []

    @pytest.mark.skipif(os.getuid() != 0, reason="giving a directory away needs root")
    def test_a_directory_of_another_user_is_refused(self, tmp_path):
        """A home owned by another uid: HomeError naming both uids."""
        root = tmp_path / "home"
        root.mkdir()
        os.chown(root, 4321, -1)
        with pytest.raises(HomeError, match="belongs to uid 4321, not to you"):
            FarmHome(root).create()


class TestToken:
    def test_the_token_is_created_private_and_kept(self, tmp_path):
        """First use creates a 0600 token; later uses read the same one."""
        home = FarmHome(tmp_path / "home").create()
        assert home.read_token() is None
        token = home.ensure_token()
        assert mode(home.token_file) == 0o600
        assert home.ensure_token() == token == home.read_token()

    def test_a_token_others_could_read_is_replaced(self, tmp_path):
        """A token file readable by group/others is never used again."""
        home = FarmHome(tmp_path / "home").create()
        old = home.ensure_token()
        home.token_file.chmod(0o644)
        new = home.ensure_token()
        assert new != old
        assert mode(home.token_file) == 0o600

    def test_an_empty_token_is_replaced(self, tmp_path):
        """An empty (private) token file gets a new token."""
        home = FarmHome(tmp_path / "home").create()
        fd = os.open(home.token_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        assert home.ensure_token()
        assert home.read_token()


class TestDaemonFile:
    def test_written_then_read_back(self, tmp_path):
        """write_daemon/read_daemon round-trip pid, start time and URL."""
        home = FarmHome(tmp_path / "home").create()
        info = DaemonInfo(123, 45.5, "http://127.0.0.1:8")
        home.write_daemon(info)
        assert home.read_daemon() == info
        assert not home.daemon_file.with_suffix(".tmp").exists()

    @pytest.mark.parametrize(
        "content", ["not json", "[]", '{"pid": 1}', '{"pid": "x", "started": 0}']
    )
    def test_an_unreadable_file_means_no_daemon(self, tmp_path, content):
        """Garbage, a wrong shape or missing fields: None, never an exception."""
        home = FarmHome(tmp_path / "home").create()
        home.daemon_file.write_text(content)
        assert home.read_daemon() is None
        assert FarmHome(tmp_path / "nothing").read_daemon() is None

    def test_only_a_live_process_with_the_same_start_counts(self, tmp_path):
        """Our pid with our start time is running; with another start time (reused pid),
        or a pid that does not exist, it is not."""
        home = FarmHome(tmp_path / "home").create()
        pid = os.getpid()
        started = psutil.Process(pid).create_time()
        home.write_daemon(DaemonInfo(pid, started, None))
        assert home.running_daemon() == DaemonInfo(pid, started, None)
        home.write_daemon(DaemonInfo(pid, started - 100, None))
        assert home.running_daemon() is None
        assert DaemonInfo(2**22 + 12345, 0.0, None).alive() is False

    def test_clearing_removes_only_the_named_daemons_file(self, tmp_path):
        """clear_daemon(pid) leaves a file that names another daemon."""
        home = FarmHome(tmp_path / "home").create()
        home.write_daemon(DaemonInfo(7, 1.0, None))
        home.clear_daemon(8)
        assert json.loads(home.daemon_file.read_text())["pid"] == 7
        home.clear_daemon(7)
        assert not home.daemon_file.exists()


class TestAFileInTheWay:
    def test_a_regular_file_at_the_home_path_is_a_home_error_with_the_fix(self, tmp_path):
        """A file where the home directory should be: HomeError naming it and the fix."""
        from shadowfarm_wire.home import FarmHome, HomeError

        path = tmp_path / "home"
        path.write_text("not a directory")
        with pytest.raises(HomeError, match="not a directory; remove it or choose another --home"):
            FarmHome(path).create()
        assert path.read_text() == "not a directory"
