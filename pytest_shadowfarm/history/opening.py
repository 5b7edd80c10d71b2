"""Opening a history file: lock, check it is ours, set it up, move a damaged one aside.

Two runs may open one new file at the same moment, a file may belong to another program
or be damaged, and a newer schema may own it: each case is told apart here, so that
:class:`~pytest_shadowfarm.history.store.HistoryStore` only ever holds a usable database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from pytest_shadowfarm.errors import HistoryError
from pytest_shadowfarm.history.schema import APPLICATION_ID, SCHEMA_VERSION, migrate

__all__ = ["BUSY_TIMEOUT_S", "NotOurs", "connect_checked", "move_aside", "opening"]

#: how long a writer waits for another run's transaction before giving up
BUSY_TIMEOUT_S = 30.0


@contextlib.contextmanager
def opening(path: Path) -> Iterator[None]:
    """Hold a lock on the history's directory while a history is opened and migrated.

    Two runs opening one new file at once could otherwise see each other's half-created
    file (no application id yet, or not yet a database) and move it aside as foreign,
    each then writing to a different file: one run's results lost. The directory is
    locked (flock(2) on its descriptor) so that no lock file is left behind; where
    ``fcntl`` is missing (Windows) the open is not serialised.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"{path}: its directory stayed locked for {BUSY_TIMEOUT_S:g} s"
                    raise HistoryError(msg) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


#: SQLITE_BUSY: another connection holds a lock
_BUSY = 5


def _set_up(db: sqlite3.Connection) -> None:
    """WAL mode, pragmas and migrations, retried while another process holds a lock.

    Switching a new file to WAL while another process creates it can fail with "database
    is locked" at once, without SQLite's busy handler ever waiting (two runs opening a
    new history together hit it); so it is retried here, within BUSY_TIMEOUT_S.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
            return
        except sqlite3.OperationalError as exc:
            if _error_code(exc) != _BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


#: primary SQLite result codes that mean "this file is damaged or not a database"
_DAMAGED = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def _error_code(exc: sqlite3.DatabaseError) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # extended codes keep the primary in the low byte


class NotOurs(Exception):
    """The file is SQLite but not a pytest-shadowfarm history, or not SQLite at all."""


def connect_checked(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: close_in_background() hands the connection to a
    # thread of its own, which is then its only user.
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise NotOurs("not a pytest-shadowfarm history (a foreign SQLite file)")
        if version > SCHEMA_VERSION:
            db.close()
            msg = (
                f"{path}: history schema {version} is newer than this pytest-shadowfarm "
                f"understands ({SCHEMA_VERSION}); upgrade pytest-shadowfarm or pass "
                "--sf-history with another file"
            )
            raise HistoryError(msg)
        _set_up(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        # Only a damaged or non-SQLite file is moved aside. "database is locked"
        # (another run held the lock past the busy timeout), a read-only file or
        # a missing directory are DatabaseErrors too, but the file is fine:
        # moving it aside would throw away a good history.
        if _error_code(exc) in _DAMAGED:
            raise NotOurs(f"not a readable SQLite database ({exc})") from exc
        msg = f"{path}: cannot use the history database ({exc})"
        raise HistoryError(msg) from exc
    except NotOurs:
        db.close()
        raise
    return db


def is_damaged(exc: BaseException) -> bool:
    """A DatabaseError that says the file's pages are damaged (not: locked, read-only)."""
    return isinstance(exc, sqlite3.DatabaseError) and _error_code(exc) in _DAMAGED


def set_aside(path: Path) -> Path:
    """:func:`move_aside`, serialised with other runs opening the same history."""
    with opening(path):
        return move_aside(path)


def move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    # Two bad files within one second must not overwrite each other's copy.
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.replace(Path(f"{aside}{suffix}"))
    return aside
