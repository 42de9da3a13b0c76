"""Materialising a snapshot commit as a locked, detached `git worktree`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.gitcli import Git
from git_slurm.names import BranchName, Oid
from git_slurm.records import LOCK_REASON_MARK, admin_dir_of

DEFAULT_DIR_NAME = "slurm-snapshots"


def ensure_worktree_dir(directory: Path) -> Path:
    """Create the directory for snapshot worktrees, or say why it can't be used."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create worktree dir {directory}: {exc.strerror}") from exc
    if not directory.is_dir():
        raise UsageError(f"worktree dir {directory} is not a directory")
    try:  # a private probe name: concurrent snapshots probe the same directory
        Path(tempfile.mkdtemp(prefix=".git-slurm-probe.", dir=directory)).rmdir()
    except OSError as exc:
        raise UsageError(f"worktree dir {directory} is not writable: {exc.strerror}") from exc
    return directory.resolve()


def add_worktree(git: Git, path: Path, commit: Oid, branch: BranchName) -> Path:
    """Check `commit` out at `path`, detached and locked from birth; return its admin dir.

    Detached, so the branch stays free for the user to check out; locked with a reason, so
    `git worktree prune` leaves it alone and `git worktree list` says what it is. Hooks are
    off (NO_HOOKS in Git), so the user's post-checkout does not fire.
    """
    reason = f"{LOCK_REASON_MARK} {branch} (being made)"
    git.run(
        "worktree", "add", "--quiet", "--detach", "--lock", "--reason", reason, str(path), commit
    )
    admin = admin_dir_of(path)
    if admin is None:
        raise GitSlurmError(f"git worktree add made no worktree at {path}")
    return admin


def remove_worktree(git: Git, path: Path) -> None:
    """Remove a worktree git-slurm made (used to undo a failed snapshot)."""
    git.run("worktree", "unlock", str(path), check=False)
    rc, _, _ = git.run("worktree", "remove", "--force", "--force", str(path), check=False)
    if rc != 0:
        git.run("worktree", "prune", check=False)
