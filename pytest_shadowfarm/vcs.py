"""What git says about the project: commit, branch (and, for change impact, changed files).

Every call is bounded by a short timeout and answers None when git is missing, the
directory is not a repository, or git fails: a run never depends on git.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["GIT_TIMEOUT_S", "git", "head_commit_and_branch"]

GIT_TIMEOUT_S = 5.0


def git(cwd: Path, *args: str) -> str | None:
    """Run ``git args`` in ``cwd``; its stripped stdout, or None on any failure."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def head_commit_and_branch(cwd: Path) -> tuple[str | None, str | None]:
    """(commit sha, branch name) of HEAD, each None when unknown (detached HEAD: no branch)."""
    out = git(cwd, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
    if not out:
        return None, None
    lines = out.splitlines()
    commit = lines[0] if lines else None
    branch = lines[1] if len(lines) > 1 and lines[1] != "HEAD" else None
    return commit, branch
