"""The snapshot worktrees of a repository as found on disk: the one shape, and the one listing,
that gc, the reminder, snapshot reuse and materialize's choice of link source all use.

git-slurm recognises its worktrees by what their admin dir (`<common dir>/worktrees/<id>`)
holds, never by name: its record (records.py), or, until the record is written, its "being
made" lock reason (`worktrees.add_worktree`): a half-made snapshot, whose maker may have died.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from git_slurm.gitcli import read_git_file
from git_slurm.records import (
    SnapshotRecord,
    lock_text,
    making_branch_and_host,
    read_record,
    user_lock,
)


@dataclass(frozen=True)
class SnapshotWorktree:
    """A worktree git-slurm made: its admin dir, where it is, and what its admin dir says."""

    admin: Path
    path: Path
    record: Optional[SnapshotRecord]  # None: locked as being made, no record (yet)
    # without a record: (branch, host) its "being made" lock reason names, read when found
    # (a report after its removal still names the branch)
    making: Optional[tuple[str, Optional[str]]] = None
    # where git's links say it is, when it was found elsewhere (the repository was moved);
    # `git worktree repair` makes git find it again
    moved_from: Optional[Path] = None

    @property
    def id(self) -> str:
        """The admin dir's name under `<common dir>/worktrees/`."""
        return self.admin.name

    @property
    def branches(self) -> list[str]:
        """Every launch's branch; a half-made one's from its lock reason."""
        if self.record is not None:
            return self.record.branches
        return [self.making[0]] if self.making else []

    def lock_reason(self) -> Optional[str]:
        """The text of its `git worktree lock` as it is now; None: not locked."""
        return lock_text(self.admin)

    def user_lock(self) -> Optional[str]:
        """The reason of a lock that is not git-slurm's (then it is never touched)."""
        return user_lock(self.admin)

    def last_activity(self) -> float:
        """When it was last used (its record), or for a half-made one when it last changed:
        its admin dir, its files, the worktree's top directory."""
        if self.record is not None:
            return self.record.last_used
        paths = [self.admin, *self.admin.iterdir(), self.path]
        times = []
        for path in paths:
            try:
                times.append(path.lstat().st_mtime)
            except OSError:
                continue
        return max(times, default=0.0)


def find_all(common_dir: Path, search: Sequence[Path] = ()) -> list[SnapshotWorktree]:
    """Every worktree git-slurm made in this repository, by admin dir. One whose directory is
    not where git last saw it is looked for in `search` (the worktree dirs): a repository
    moved with its snapshots inside leaves git's links pointing at the old place."""
    found = []
    for admin in sorted((common_dir / "worktrees").glob("*")):
        record = read_record(admin)
        making = None if record is not None else making_of(admin)
        if record is None and making is None:
            continue
        path = worktree_of(admin) or (Path(record.worktree) if record else None)
        if path is None:
            continue
        moved = None
        if search and not os.path.lexists(path / ".git"):
            moved = relocated(admin, path.name, search)
        found.append(SnapshotWorktree(admin, moved or path, record, making, moved and path))
    return found


def recorded(common_dir: Path) -> list[SnapshotWorktree]:
    """Those with a record (every one but the half-made), sorted by admin dir."""
    return [worktree for worktree in find_all(common_dir) if worktree.record is not None]


def records_of(common_dir: Path) -> list[SnapshotRecord]:
    """The records of `recorded`."""
    return [found.record for found in recorded(common_dir) if found.record is not None]


def worktree_of(admin: Path) -> Optional[Path]:
    """Where git itself believes the worktree is (`gitdir` names its `.git` file)."""
    text = _gitdir(admin)
    return Path(text).parent if text else None


def admin_dirs_for(common_dir: Path, path: Path) -> list[Path]:
    """The admin dirs (ours or not) whose gitdir file names the worktree at `path`."""
    wanted = str(path / ".git")
    return [admin for admin in (common_dir / "worktrees").glob("*") if _gitdir(admin) == wanted]


def _gitdir(admin: Path) -> Optional[str]:
    try:
        return read_git_file(admin / "gitdir").strip()
    except OSError:
        return None


def making_of(admin: Path) -> Optional[tuple[str, Optional[str]]]:
    """(branch, host) when locked by `worktrees.add_worktree` and never given a record: being
    made, or crashed, by us."""
    return making_branch_and_host(lock_text(admin) or "")


def relocated(admin: Path, name: str, search: Sequence[Path]) -> Optional[Path]:
    """The directory `name` in one of `search` whose `.git` file names admin dir `admin`
    (by its id: the path it names is the old one)."""
    for directory in dict.fromkeys(search):
        path = directory / name
        try:
            text = read_git_file(path / ".git").strip()
        except OSError:
            continue
        if text.startswith("gitdir: ") and PurePosixPath(text[8:]).parts[-2:] == (
            "worktrees",
            admin.name,
        ):
            return path
    return None
