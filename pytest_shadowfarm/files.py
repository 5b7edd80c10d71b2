"""The plugin's own files: its state directory and files written with the user's umask.

Nothing here imports pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["GITIGNORE", "ensure_state_dir", "readable_by_umask"]

#: what ``.shadowfarm/.gitignore`` holds: run data (history, reports, caches), not source
GITIGNORE = "# written by pytest-shadowfarm: run data, never committed\n*\n"


def ensure_state_dir(directory: Path) -> bool:
    """Make ``directory`` if missing; True when this call created it.

    A directory named ``.shadowfarm`` gets a ``.gitignore`` of ``*`` (also an existing one
    without it), so that ``git add .`` never picks up the history or a report.
    """
    created = not directory.is_dir()
    if created:
        directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if directory.name == ".shadowfarm" and not ignore.exists():
        ignore.write_text(GITIGNORE, encoding="utf-8")
    return created


def readable_by_umask(fd: int) -> None:
    """Give a file made by :func:`tempfile.mkstemp` (always 0600) the user's usual mode.

    A report or cache replaced atomically is made from a temporary file; left at 0600 it
    is unreadable to the CI user or group that the umask would have let read it.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
