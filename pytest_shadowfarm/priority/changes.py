"""Which files changed, according to git: the input of the change-impact signal.

The base is, in this order: the ref given with ``--sf-base`` (compared from its merge
base with HEAD, as a pull request diff is); else the default branch when git knows one
(``origin/HEAD``, then a local ``main``, then ``master``), again from the merge base;
else HEAD itself. In every case the *working tree* is compared, so uncommitted edits
count, and untracked files (a new test file not yet added) count as changed too.

Every git call is bounded (:func:`pytest_shadowfarm.vcs.git`); when git is missing, the
directory is no repository, or the base is unknown, :class:`ChangeDetectionError` says
why and the caller switches the signal off with one line.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pytest_shadowfarm.errors import ChangeDetectionError
from pytest_shadowfarm.vcs import git, git_refusal

__all__ = ["DEFAULT_BRANCHES", "ChangedFiles", "changed_files", "default_branch"]

#: local branch names tried, in order, when origin/HEAD is not set
DEFAULT_BRANCHES = ("main", "master")


@dataclass(frozen=True)
class ChangedFiles:
    """Files that differ from the base (absolute paths) and what the base was."""

    #: for people, after "changes vs": "main (merge base 1a2b3c4)", "HEAD 1a2b3c4 (main)"
    base: str
    toplevel: Path
    paths: frozenset[Path]


def _split_z(out: str | None) -> list[str]:
    return [part for part in (out or "").split("\0") if part]


def _short(commit: str) -> str:
    return commit[:7]


def default_branch(toplevel: Path) -> str | None:
    """The repository's default branch as a ref git can resolve, or None if unknown."""
    remote_head = git(toplevel, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if remote_head:
        return remote_head
    for name in DEFAULT_BRANCHES:
        if git(toplevel, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}") is not None:
            return name
    return None


def _commit_of(toplevel: Path, ref: str) -> str | None:
    return git(toplevel, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") or None


def _resolve_base(toplevel: Path, base: str | None, head: str) -> tuple[str, str]:
    """(commit to diff against, label) for ``base`` (None: the default branch, else HEAD)."""
    ref = base if base is not None else default_branch(toplevel)
    if ref is None:
        return head, f"HEAD {_short(head)}"
    commit = _commit_of(toplevel, ref)
    if commit is None:
        if base is not None:
            msg = (
                f"--sf-base {base!r} is not a commit git knows here; "
                "fetch it (e.g. git fetch origin main) or pass another ref"
            )
            raise ChangeDetectionError(msg)
        return head, f"HEAD {_short(head)}"
    merge_base = git(toplevel, "merge-base", commit, head) or commit
    if merge_base == head:
        return head, f"HEAD {_short(head)} ({ref})"
    return merge_base, f"{ref} (merge base {_short(merge_base)})"


def changed_files(cwd: Path, base: str | None = None) -> ChangedFiles:
    """Files changed in the working tree against ``base`` (see the module docstring)."""
    top = git(cwd, "rev-parse", "--show-toplevel")
    if not top:
        if shutil.which("git") is None:
            msg = "git is not installed"
        elif refusal := git_refusal(cwd):
            msg = f"git refused to read {cwd}: {refusal}"
        else:
            msg = f"{cwd} is not inside a git repository"
        raise ChangeDetectionError(msg)
    toplevel = Path(top).resolve()
    untracked = _split_z(git(toplevel, "ls-files", "-z", "--others", "--exclude-standard"))
    head = git(toplevel, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if not head:
        # A repository without commits: everything in it is new.
        tracked = _split_z(git(toplevel, "ls-files", "-z"))
        label = "an empty repository (no commits yet)"
        names = tracked + untracked
    else:
        commit, label = _resolve_base(toplevel, base, head)
        diff = git(toplevel, "diff", "--name-only", "--no-renames", "-z", commit, "--")
        if diff is None:
            msg = f"git diff against {label} failed"
            raise ChangeDetectionError(msg)
        names = _split_z(diff) + untracked
    return ChangedFiles(
        base=label,
        toplevel=toplevel,
        paths=frozenset((toplevel / name).resolve() for name in names),
    )
