"""A directory for a new snapshot worktree that nobody else has, and the ones nobody finished.

The directory is reserved by creating it empty (atomic, and `git worktree add` accepts it)
and held by an flock on it until git has written its `.git` file. A snapshot killed in
between (SIGKILL, the OOM killer, a node reboot) leaves an empty directory behind, in a
worktree dir that repositories may share: the next reservation in that directory removes
each empty one of a snapshot's name whose flock is free, since the kernel drops the flock of
a process that died. Nothing else is ever removed: a directory with anything in it fails
`rmdir`, and one whose flock is held still belongs to a snapshot being made.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from git_slurm import faults
from git_slurm.errors import GitSlurmError
from git_slurm.names import BranchName

MAX_PATH_TRIES = 1000
# `<prefix>-YYYYMMDD-HHMMSS`, `-N` for the same second, `.K` for a name taken by another repository
RESERVED_NAME = re.compile(r"-\d{8}-\d{6}(?:-\d+)?(?:\.\d+)?$")


@contextmanager
def reserved_worktree_path(worktree_dir: Path, branch: BranchName) -> Iterator[Path]:
    """A directory for the worktree that nobody else has: `<branch>`, else `<branch>.2`, ...
    held (flock) while the block runs; abandoned reservations next to it are removed first.

    Branch names are unique within a repository only: repositories sharing one worktree dir
    (`git config --global slurm.worktreeDir ~/scratch/snapshots`) make the same name in the
    same second."""
    parent = (worktree_dir / str(branch)).parent
    parent.mkdir(parents=True, exist_ok=True)  # a prefix `a/b` makes `a/`
    remove_abandoned(parent)
    for n in range(1, MAX_PATH_TRIES):
        path = worktree_dir / (str(branch) if n == 1 else f"{branch}.{n}")
        held = _reserve(path)
        if held is None:
            continue
        try:
            faults.point("reserved")
            yield path
        finally:
            os.close(held)
        return
    raise GitSlurmError(f"no free name for the worktree of {branch} in {worktree_dir}")


def _reserve(path: Path) -> Optional[int]:
    """The fd holding `path`, made here and now; None when the name is taken (or a sweep of
    another snapshot removed it between our mkdir and our lock: then it is not ours)."""
    try:
        path.mkdir()
    except FileExistsError:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the empty directories of snapshot names in `parent` whose reservation nobody
    holds any more; the removed ones."""
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(parent) if RESERVED_NAME.search(e.name)]
    except OSError:
        return removed
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and _remove_if_abandoned(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed


def _remove_if_abandoned(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a snapshot is making it
        if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
            return False
        os.rmdir(path)  # only an empty one: a worktree has its `.git` at least
        return True
    except OSError:  # held, not empty, gone, or no flock on this file system: left alone
        return False
    finally:
        os.close(fd)
