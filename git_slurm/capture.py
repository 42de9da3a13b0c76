"""Capture the working tree as `git add -A` would stage it, without touching the user's index.

git itself decides what is staged (so every ignore rule holds exactly as for the user), into a
temporary copy of the user's index: its stat cache means unchanged files are not hashed again.
pygit2 then writes the tree from that temporary index.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pygit2

from git_slurm import odb
from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.names import Oid
from git_slurm.repo import Checkout

DEFAULT_MAX_UNTRACKED = 50 * 1024 * 1024

# states in which the working tree is not a plain edit of HEAD (git's own marker files)
_IN_PROGRESS = {
    "MERGE_HEAD": "a merge",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase or am",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
    "BISECT_LOG": "a bisect",
}


@dataclass(frozen=True)
class Capture:
    """The snapshot's tree and what the user should know about how it was taken."""

    tree: Oid
    notes: tuple[str, ...]


@contextmanager
def temporary_index(checkout: Checkout) -> Iterator[Path]:
    """A private copy of the user's index (for its stat cache); the original is only read."""
    fd, name = tempfile.mkstemp(prefix="git-slurm-index.", dir=checkout.git_dir)
    os.close(fd)
    path = Path(name)
    try:
        user_index = checkout.git_dir / "index"
        if user_index.exists():
            # copy2 keeps the index's mtime: git's racy-clean check compares file mtimes
            # against it, so a copy stamped "now" would trust stale stat data and miss an
            # edit made in the same second as the user's last `git add`
            shutil.copy2(user_index, path)
        else:
            path.unlink()  # git wants no file rather than an empty one
        yield path
    finally:
        for leftover in (path, path.with_name(path.name + ".lock")):
            leftover.unlink(missing_ok=True)


def in_progress_notes(checkout: Checkout) -> tuple[str, ...]:
    return tuple(
        f"the repository is in the middle of {what}; the working tree is snapshotted as it is"
        for marker, what in _IN_PROGRESS.items()
        if (checkout.git_dir / marker).exists()
    )


def _excluded_pathspecs(checkout: Checkout, keep_out: list[Path]) -> list[str]:
    """Pathspecs that keep git-slurm's own directories (snapshot worktrees) out of a capture."""
    specs = []
    for path in keep_out:
        try:
            rel = path.resolve().relative_to(checkout.toplevel)
        except ValueError:
            continue
        specs.append(f":(top,exclude){rel.as_posix()}")
    return specs


def check_untracked_sizes(checkout: Checkout, index: Path, limit: int) -> None:
    """Refuse untracked files above `limit` bytes instead of copying a checkpoint into git."""
    env = {"GIT_INDEX_FILE": str(index)}
    listing = checkout.git.run("ls-files", "-z", "--others", "--exclude-standard", env=env)[1]
    offenders = []
    for rel in filter(None, listing.split("\0")):
        try:
            size = (checkout.toplevel / rel).lstat().st_size
        except OSError:
            continue
        if size > limit:
            offenders.append((rel, size))
    if offenders:
        listed = ", ".join(f"{rel} ({size / 2**20:.1f} MB)" for rel, size in offenders[:5])
        more = f" and {len(offenders) - 5} more" if len(offenders) > 5 else ""
        raise UsageError(
            f"untracked files larger than slurm.maxUntrackedSize ({limit / 2**20:.0f} MB): "
            f"{listed}{more}; add them to .gitignore (or .git/info/exclude), or raise the limit "
            "with `git config slurm.maxUntrackedSize 200m`"
        )


def capture_working_tree(
    checkout: Checkout,
    repo: pygit2.Repository,
    *,
    max_untracked: Optional[int] = DEFAULT_MAX_UNTRACKED,
    keep_out: Optional[list[Path]] = None,
) -> Capture:
    """The tree `git add -A` would stage in a fresh copy of the index."""
    with temporary_index(checkout) as index:
        if max_untracked is not None:
            check_untracked_sizes(checkout, index, max_untracked)
        env = {"GIT_INDEX_FILE": str(index)}
        excluded = _excluded_pathspecs(checkout, keep_out or [])
        pathspec = ["--", ":/", *excluded] if excluded else []
        rc, _, err = checkout.git.run("add", "-A", *pathspec, env=env, check=False)
        if rc != 0:
            reason = next((ln for ln in err.splitlines() if ln.startswith(("error", "fatal"))), "")
            raise GitSlurmError(f"cannot capture the working tree: {reason or err.strip()}")
        tree = odb.write_tree_from_index(repo, index)
    return Capture(tree=tree, notes=in_progress_notes(checkout))
