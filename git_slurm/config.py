"""git config keys of git-slurm (`slurm.*`) with their defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from git_slurm.errors import UsageError
from git_slurm.gitcli import Git
from git_slurm.repo import Checkout
from git_slurm.worktrees import DEFAULT_DIR_NAME

DEFAULT_PREFIX = "slurm-job"
DEFAULT_LINKS = ("outputs", "multirun", ".submitit")
DEFAULT_GC_AGE = "7d"


def branch_prefix(git: Git) -> str:
    values = git.config_get_all("slurm.branchPrefix")
    return values[-1] if values else DEFAULT_PREFIX


def link_paths(git: Git) -> list[str]:
    return git.config_get_all("slurm.link") or list(DEFAULT_LINKS)


def worktree_dir(checkout: Checkout) -> Path:
    """`slurm.worktreeDir` (relative to the checkout's root), else inside the common git dir."""
    values = checkout.git.config_get_all("slurm.worktreeDir")
    if values:
        return (checkout.toplevel / Path(values[-1]).expanduser()).resolve()
    return checkout.common_dir / DEFAULT_DIR_NAME


def push_default(git: Git) -> Optional[bool]:
    """`slurm.push`; None means: push when a remote exists."""
    return git.config_bool("slurm.push")


def max_untracked_size(git: Git) -> Optional[int]:
    """`slurm.maxUntrackedSize` in bytes (git's k/m/g suffixes); 0 or less means no limit."""
    # imported here: capture pulls in pygit2, which the post-checkout hook can't afford
    from git_slurm.capture import DEFAULT_MAX_UNTRACKED

    rc, out, err = git.run("config", "--type=int", "--get", "slurm.maxUntrackedSize", check=False)
    if rc == 1:
        return DEFAULT_MAX_UNTRACKED
    if rc != 0:
        raise UsageError(f"bad slurm.maxUntrackedSize: {err.strip()}")
    value = int(out.strip())
    return value if value > 0 else None


def gc_older_than(git: Git) -> str:
    values = git.config_get_all("slurm.gcOlderThan")
    return values[-1] if values else DEFAULT_GC_AGE


def reminders_enabled(git: Git) -> bool:
    return git.config_bool("slurm.reminders") is not False
