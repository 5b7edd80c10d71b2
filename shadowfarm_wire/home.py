"""The farm's state directory: token, pid and URL files, database, sockets, logs.

Stdlib only (psutil, lazily): the pytest plugin and the CLI import this module to find
a running farm without importing the daemon's web stack.

Layout (every directory 0700, the token 0600)::

    <home>/token           bearer token of the HTTP API (also authorises claims)
    <home>/daemon.json     pid, process start time and URL of the running daemon
    <home>/farm.sqlite     claims, profiles, telemetry (farm_server.store)
    <home>/profile-cache.json  distributions hash per sys.path fingerprint (plugin side)
    <home>/sockets/        one AF_UNIX socket per warm worker
    <home>/logs/           daemon.log and one log per worker
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ENV_HOME", "DaemonInfo", "FarmHome", "HomeError", "default_home"]

ENV_HOME = "SHADOWFARM_HOME"


class HomeError(OSError):
    """The state directory cannot be used safely; the message says why and what to do."""


def default_home(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/shadowfarm``, else ``~/.local/state/shadowfarm``."""
    state = env.get("XDG_STATE_HOME")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "shadowfarm"


@dataclass(frozen=True)
class DaemonInfo:
    """What ``daemon.json`` says about the running daemon."""

    pid: int
    started: float
    url: str | None

    def alive(self) -> bool:
        """The pid runs and is the same process (not a reused pid)."""
        try:
            import psutil

            return abs(psutil.Process(self.pid).create_time() - self.started) < 1.0
        except Exception:
            return False


@dataclass(frozen=True)
class FarmHome:
    """Paths inside one farm state directory."""

    root: Path

    @classmethod
    def resolve(cls, cli_home: str | Path | None, env: Mapping[str, str]) -> FarmHome:
        """``--home`` > ``$SHADOWFARM_HOME`` > the user's state directory.

        The command line wins over the environment, as for every other setting.
        """
        raw = cli_home or env.get(ENV_HOME) or default_home(env)
        return cls(Path(raw).expanduser().absolute())

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def daemon_file(self) -> Path:
        return self.root / "daemon.json"

    @property
    def database(self) -> Path:
        return self.root / "farm.sqlite"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock_file(self) -> Path:
        """Held (flock) by the daemon serving this home: one daemon per home."""
        return self.root / "daemon.lock"

    @property
    def profile_cache(self) -> Path:
        """Distribution hashes per sys.path fingerprint (see farm.profile)."""
        return self.root / "profile-cache.json"

    # --- creating -------------------------------------------------------------------------

    def create(self) -> FarmHome:
        """Create the directories 0700; HomeError if one is another user's or not private.

        A directory that already exists is never chmodded (a ``--home`` may be a directory
        the user shares on purpose): the home must not be writable by others, ``sockets``
        and ``logs`` must be private, else HomeError says which command fixes it.
        """
        for directory, forbidden in ((self.root, 0o022), (self.sockets, 0o077), (self.logs, 0o077)):
            try:
                directory.mkdir(mode=0o700, parents=directory == self.root)
            except FileExistsError:
                _check_private(directory, forbidden)
            else:
                directory.chmod(0o700)  # mkdir's mode went through the umask
        return self

    def ensure_token(self) -> str:
        """The API token, created (0600) on first use; a token readable by others is replaced."""
        try:
            info = self.token_file.stat()
        except FileNotFoundError:
            pass
        else:
            if info.st_uid == os.getuid() and not info.st_mode & 0o077:
                token = self.token_file.read_text().strip()
                if token:
                    return token
            self.token_file.unlink()  # others could have read it: never use it again
        token = secrets.token_urlsafe(32)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token

    # --- reading (the plugin and the CLI) -------------------------------------------------

    def read_token(self) -> str | None:
        try:
            return self.token_file.read_text().strip() or None
        except OSError:
            return None

    def read_daemon(self) -> DaemonInfo | None:
        """The daemon this home says is running (alive or not), or None."""
        try:
            data: Any = json.loads(self.daemon_file.read_text())
            return DaemonInfo(int(data["pid"]), float(data["started"]), data.get("url"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running_daemon(self) -> DaemonInfo | None:
        """The daemon if its process is alive, else None."""
        info = self.read_daemon()
        return info if info is not None and info.alive() else None

    # --- written by the daemon ------------------------------------------------------------

    def write_daemon(self, info: DaemonInfo) -> None:
        tmp = self.daemon_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": info.pid, "started": info.started, "url": info.url}))
        os.replace(tmp, self.daemon_file)

    def clear_daemon(self, pid: int) -> None:
        """Remove daemon.json if it still describes ``pid``."""
        info = self.read_daemon()
        if info is not None and info.pid == pid:
            with contextlib.suppress(FileNotFoundError):
                self.daemon_file.unlink()


def _check_private(directory: Path, forbidden: int) -> None:
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        msg = f"{directory} is not a directory; remove it or choose another --home"
        raise HomeError(msg)
    if info.st_uid != os.getuid():
        msg = (
            f"{directory} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); "
            "a farm's state directory must be private: choose another --home"
        )
        raise HomeError(msg)
    if info.st_mode & forbidden:
        others = "write to" if forbidden == 0o022 else "enter"
        msg = (
            f"{directory} has mode {stat.filemode(info.st_mode)}: others can {others} it; "
            f"run 'chmod go-{'w' if forbidden == 0o022 else 'rwx'} {directory}' or choose "
            "another --home (the farm does not change modes of directories it did not create)"
        )
        raise HomeError(msg)
