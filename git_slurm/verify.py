"""Is a snapshot worktree still exactly its commit? Asked when a job starts and before a
worktree is reused; what differs is restored from git's object store.

A job can change its worktree's code: `sed -i`, a cache written over a module, a root job
(root ignores the read-only bits, materialize.py) or one that ran `chmod` writing into a
file in place. Snapshot worktrees share unchanged files by hard links, so an in-place write
also changes every other snapshot holding that inode, whose jobs may still be queued.

The check is git's own diff of the commit against the work tree through the worktree's index:
one lstat per tracked file against the index's stat data (inode, mtime, size; never ctime,
which every hard link moves: STAT_CHECK), and a content comparison only for the files whose
stat data differ, so a file merely touched is no difference. An in-place write moves the
mtime of the inode, so every snapshot sharing it sees it. Restoring is `git checkout <commit>
-- <paths>`, which unlinks each file and writes a new one: the other snapshots' links are
never written through. Jobs of one array start together: restores of one worktree take
turns under a lock in its admin dir, and each re-checks under it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from git_slurm import lfs
from git_slurm.errors import GitSlurmError
from git_slurm.gitcli import Git
from git_slurm.materialize import STAT_CHECK, make_read_only, mark_unshareable, name_status
from git_slurm.records import SnapshotRecord, admin_dir_of, read_record, restore_lock, write_record

# The user's config must not change what differs: no rename pairing, no path relative to the
# current directory, no external diff; reading only (no optional index refresh), so the
# checks of a whole array never contend for the index lock.
DIFF = (
    *STAT_CHECK, "--no-optional-locks",
    "diff", "--no-relative", "--no-renames", "--no-ext-diff", "--no-textconv",
)  # fmt: skip
ADDED = "A"  # in the index but not in the commit: a job ran `git add`
SHOWN = 5  # files named in one message


@dataclass(frozen=True)
class Difference:
    """A tracked path whose worktree file (or index entry) is not the commit's."""

    status: str  # git's letter: M modified, D deleted, T type changed, A added, U unmerged
    path: str

    def __str__(self) -> str:
        words = {"M": "modified", "D": "deleted", "T": "type changed", "A": "added"}
        return f"{self.path} ({words.get(self.status, 'unmerged')})"


def check_args(treeish: str, links: Iterable[str], *, quiet: bool) -> list[str]:
    """git's arguments for the check of a work tree against `treeish`, link paths left out
    (they are symlinks into the original checkout, never the snapshot's files)."""
    how = ["--quiet"] if quiet else ["--name-status", "-z"]
    return [*DIFF, *how, treeish, "--", *(f":(exclude,top,literal){rel}" for rel in links)]


def differences(git: Git, treeish: str, links: Iterable[str]) -> list[Difference]:
    """Every tracked path of the work tree that is not `treeish`'s."""
    out = git.run(*check_args(treeish, links, quiet=False))[1]
    return [Difference(status[0], rel) for status, rel in name_status(out)]


def listed(found: Sequence[Difference]) -> str:
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    return ", ".join(str(d) for d in found[:SHOWN]) + more


# ---- at a job's start ----------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    """What a job's start found changed in its worktree and put back."""

    worktree: Path
    commit: str
    files: tuple[Difference, ...]  # empty: the worktree was its commit (or another job of
    # the same worktree restored it meanwhile)


def restore_worktree(worktree: Path, commit: str) -> Restored:
    """Make the worktree's tracked files its commit's again, or raise saying why not."""
    admin = admin_dir_of(worktree)
    record = read_record(admin) if admin is not None else None
    if admin is None or record is None:
        raise GitSlurmError(f"{worktree} is not a git-slurm snapshot worktree")
    git = Git(admin, worktree)
    try:  # the job script's own check found a difference: no need to ask twice unlocked
        with restore_lock(admin):
            found = differences(git, commit, record.links)  # maybe restored meanwhile
            if found:
                put_back(git, commit, found)
                left = differences(git, commit, record.links)
                if left:
                    raise GitSlurmError(f"still not the commit's after restoring: {listed(left)}")
    except OSError as exc:
        raise GitSlurmError(f"cannot restore the files of {worktree}: {exc}") from exc
    if found:  # a failure to say so is no reason to stop a job whose files are right now
        with contextlib.suppress(OSError):
            mark_unshareable(admin.parent.parent, admin)
    return Restored(worktree, commit, tuple(found))


def put_back(git: Git, commit: str, found: Sequence[Difference]) -> None:
    """Write the commit's version of every differing path as a new file (git unlinks the old
    one first, so no hard link is written through), read-only like every snapshot file."""
    assert git.work_tree is not None
    back = [d.path for d in found if d.status != ADDED]
    added = [d.path for d in found if d.status == ADDED]
    from_file = ("--pathspec-from-file=-", "--pathspec-file-nul")
    if back:
        literal = ("--literal-pathspecs", "checkout", "-q", commit, *from_file)
        git.run(*STAT_CHECK, *literal, stdin="\0".join(back))
        forget_bytecode(git.work_tree, back)
    if added:  # out of the index; the file itself is the job's, and stays
        rm = ("--literal-pathspecs", "rm", "-q", "--cached", "--ignore-unmatch", *from_file)
        git.run(*rm, stdin="\0".join(added))
    if back and lfs.uses_lfs(git):
        lfs.fill_in(git)  # a restored LFS file is its pointer until then
    make_read_only(git.work_tree, back)


def forget_bytecode(root: Path, rels: Iterable[str]) -> None:
    """Remove the cached bytecode of restored modules. Python trusts a `.pyc` whose recorded
    source mtime (in seconds) and size match: a job that imported its edited module in the
    same second as the restore would otherwise leave the edit compiled for the next."""
    for rel in rels:
        if rel.endswith(".py"):
            module = Path(root, rel)
            for cached in (module.parent / "__pycache__").glob(f"{module.stem}.*.pyc"):
                cached.unlink(missing_ok=True)


# ---- before a launch reuses a worktree -----------------------------------------------------


def reusable_as_is(admin: Path, record: SnapshotRecord) -> bool:
    """Are the tracked files of a worktree that a launch would reuse still its tree's? One
    that a job changed is marked never to be shared again (the caller holds the repository
    lock, under which the record is rewritten)."""
    if not record.shareable:
        return False
    try:
        pristine = not differences(Git(admin, Path(record.worktree)), record.tree, record.links)
    except (GitSlurmError, OSError):
        pristine = False
    if not pristine:
        record.shareable = False
        write_record(admin, record)
    return pristine
