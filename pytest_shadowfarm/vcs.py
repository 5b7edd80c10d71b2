"""What git says about the project: commit, branch (and, for change impact, changed files).

Every call is bounded by a short timeout and answers None when git is missing, the
directory is not a repository, or git fails: a run never depends on git.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["GIT_TIMEOUT_S", "git", "git_refusal", "head_commit_and_branch"]

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


def git_refusal(cwd: Path) -> str | None:
    """Why git refuses to work in ``cwd``, in git's own words; None if it does not refuse.

    "Not a git repository" is what a missing repository looks like; anything else (e.g.
    "detected dubious ownership in repository", when the checkout belongs to another user,
    with git's own ``safe.directory`` fix) is what the user must read.
    """
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    message = " ".join(done.stderr.split())
    if done.returncode == 0 or not message or "not a git repository" in message.lower():
        return None
    return message


def head_commit_and_branch(cwd: Path) -> tuple[str | None, str | None]:
    """(commit sha, branch name) of HEAD, each None when unknown (detached HEAD: no branch)."""
    out = git(cwd, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
    if not out:
        return None, None
    lines = out.splitlines()
    commit = lines[0] if lines else None
    branch = lines[1] if len(lines) > 1 and lines[1] != "HEAD" else None
    return commit, branch
