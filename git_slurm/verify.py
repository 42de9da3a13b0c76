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
import importlib.machinery
import os
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from git_slurm import lfs
from git_slurm.errors import GitSlurmError
from git_slurm.gitcli import Git, read_git_file
from git_slurm.materialize import (
    CHECKED,
    STAT_CHECK,
    Under,
    make_read_only,
    mark_unshareable,
    name_status,
    parse_tagged,
    read_only_tree,
    tagged_entries,
)
from git_slurm.names import Oid
from git_slurm.records import SnapshotRecord, admin_dir_of, read_record, restore_lock, write_record

# The user's config must not change what differs: no rename pairing, no path relative to the
# current directory, no external diff; reading only (no optional index refresh), so the
# checks of a whole array never contend for the index lock.
DIFF = (
    *STAT_CHECK, "--no-optional-locks",
    "diff", "--no-relative", "--no-renames", "--no-ext-diff", "--no-textconv",
)  # fmt: skip
ADDED = "A"  # in the index but not in the commit: a job ran `git add`
HIDDEN = "H"  # ours: an index entry marked assume-unchanged or skip-worktree, which git's
# diff never looks at (a job ran `git update-index`), so its file may differ unseen
SHOWN = 5  # files named in one message


@dataclass(frozen=True)
class Difference:
    """A tracked path whose worktree file (or index entry) is not the commit's."""

    status: str  # git's letter: M modified, D deleted, T type changed, A added, U unmerged
    path: str

    def __str__(self) -> str:
        words = {"M": "modified", "D": "deleted", "T": "type changed", "A": "added"}
        words[HIDDEN] = "hidden from git's diff by an index flag"
        return f"{self.path} ({words.get(self.status, 'unmerged')})"


def check_args(treeish: str, links: Iterable[str], *, quiet: bool) -> list[str]:
    """git's arguments for the check of a work tree against `treeish`, link paths left out
    (they are symlinks into the original checkout, never the snapshot's files)."""
    how = ["--quiet"] if quiet else ["--name-status", "-z"]
    return [*DIFF, *how, treeish, "--", *(f":(exclude,top,literal){rel}" for rel in links)]


Tagged = list[tuple[str, str, str, str]]  # materialize.tagged_entries


def differences(
    git: Git, treeish: str, links: Iterable[str], entries: Optional[Tagged] = None
) -> list[Difference]:
    """Every tracked path of the work tree that is not `treeish`'s, or may not be.
    `entries`: the index's tagged entries when the caller has them already."""
    out = git.run(*check_args(treeish, links, quiet=False))[1]
    found = [Difference(status[0], rel) for status, rel in name_status(out)]
    seen, linked = {d.path for d in found}, Under(links)
    for tag, _, _, rel in tagged_entries(git) if entries is None else entries:
        if tag != CHECKED and rel not in seen and not linked(rel):
            found.append(Difference(HIDDEN, rel))
            seen.add(rel)
    return found


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
    from git_slurm import submodules  # only a restore needs it, not a reuse's check

    modules = dict(submodules.gitlinks(git, Oid(commit)))
    inside = [d.path for d in found if d.path in modules and d.status == "M"]
    found = [d for d in found if d.path not in inside]
    back = [d.path for d in found if d.status != ADDED]
    added = [d.path for d in found if d.status == ADDED]
    from_file = ("--pathspec-from-file=-", "--pathspec-file-nul")
    hidden = [d.path for d in found if d.status == HIDDEN]
    if hidden:  # seen by git's diff again, and the file rewritten: it may have been edited
        for unflag in ("--no-assume-unchanged", "--no-skip-worktree"):  # one flag per run:
            # update-index applies only the first such option to each path
            update = ("update-index", unflag, "-z", "--stdin")
            git.run(*STAT_CHECK, *update, stdin="\0".join(hidden) + "\0")
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
    for rel in inside:
        put_back_submodule(git.work_tree, rel, modules[rel])


def put_back_submodule(worktree: Path, rel: str, recorded: str) -> None:
    """Check the submodule worktree at `rel` out at its recorded commit again: its files (new
    ones, as git writes them) and its HEAD, detached, so that no branch of the user's clone
    moves. Only a submodule worktree that git-slurm made is touched: a real directory inside
    the snapshot (no symlink on the way) whose admin dir names it as its worktree."""
    sub = Path(worktree, rel)
    where = worktree
    for part in PurePosixPath(rel).parts:
        where = where / part
        if not stat.S_ISDIR(os.lstat(where).st_mode):
            raise GitSlurmError(f"submodule {rel} is no longer a directory of the snapshot")
    admin = admin_dir_of(sub)
    try:
        named = read_git_file(admin / "gitdir").strip() if admin is not None else ""
    except OSError:
        named = ""
    if admin is None or Path(named) != sub / ".git":
        raise GitSlurmError(f"submodule {rel} is no longer the snapshot's own worktree of it")
    inner = Git(admin, sub)
    changed = inner.run(*DIFF, "--name-only", "-z", recorded, check=False)[1].split("\0")
    inner.run(*STAT_CHECK, "checkout", "-q", "-f", "--no-recurse-submodules", "--detach", recorded)
    forget_bytecode(sub, changed)
    read_only_tree(sub)


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
    git = Git(admin, Path(record.worktree))
    try:
        settle_index(git, admin)
        entries, others = entries_and_others(git)
        pristine = not differences(git, record.tree, record.links, entries)
        pristine = pristine and not importable(others, record.links)
    except (GitSlurmError, OSError):
        pristine = False
    if not pristine:
        record.shareable = False
        write_record(admin, record)
    return pristine


# Python imports a package directory or an extension module ahead of a `.py` of the same
# name, and the worktree is first on a job's path (ahead of site-packages too).
MODULE_SUFFIXES = tuple(importlib.machinery.all_suffixes())
BYTECODE_CACHE = "__pycache__"  # validated against its source's mtime and size on import


OTHER = "? "  # `ls-files -v --others`: an untracked file (an entry's tag is a letter)


def entries_and_others(git: Git) -> tuple[Tagged, list[str]]:
    """The index's tagged entries and every untracked file, ignored or not, in one git run."""
    out = git.run("--no-optional-locks", "ls-files", "-s", "-v", "--others", "-z")[1]
    lines = out.split("\0")
    others = [line[2:] for line in lines if line.startswith(OTHER)]
    return parse_tagged(line for line in lines if not line.startswith(OTHER)), others


def importable(others: Iterable[str], links: Iterable[str]) -> list[str]:
    """Untracked files, ignored or not, that Python could import from the worktree: modules a
    job left there (a generated package, an in-place `build_ext`) that would stand in for
    the snapshot's code in the jobs of a launch reusing it."""
    linked = Under(links)
    return [
        rel
        for rel in others
        if rel.endswith(MODULE_SUFFIXES)
        and BYTECODE_CACHE not in rel.split("/")
        and not linked(rel)
    ]


# ---- the worktree's stat cache -------------------------------------------------------------

# git trusts an index entry's stat data only when the file's mtime is older than the index
# file's own (in whole seconds here: git is built without USE_NSEC); a "racily clean" entry is
# compared by content at every check, and a read-only check (--no-optional-locks) never writes
# the index that would end it. A checkout writes its files and its index in the same second:
# every later check of that worktree (each reuse, each job's start) then read and hashed all
# of its files, ~450 ms for the reference repository's 8000. This file in the admin dir holds
# the identity of the index last known to have no racily clean entry, so that a check pays
# for it at most once per index that git writes.
SETTLED_NAME = "git-slurm-settled"
SECOND = 10**9


def _index_identity(admin: Path) -> str:
    info = os.stat(admin / "index")
    return f"{info.st_ino} {info.st_size} {info.st_mtime_ns}\n"


def _remember_settled(admin: Path) -> None:
    (admin / SETTLED_NAME).write_text(_index_identity(admin), encoding="utf-8")


def _is_settled(admin: Path) -> bool:
    try:
        return (admin / SETTLED_NAME).read_text(encoding="utf-8") == _index_identity(admin)
    except OSError:
        return False


def settle_checked_out_index(admin: Path) -> None:
    """Once a checkout's second has passed, date its index now: entries then are not racily
    clean. Sound only while nobody else can have written the worktree since git recorded
    its files' stat data: a new worktree of fresh inodes (a checkout, not hard links to
    another snapshot's), locked as being made and not yet recorded, so no job has seen it."""
    written = os.stat(admin / "index").st_mtime_ns
    now = time.time_ns()
    if now // SECOND > written // SECOND:
        os.utime(admin / "index", ns=(now, now))
        _remember_settled(admin)


def settle_index(git: Git, admin: Path) -> None:
    """Let git refresh a worktree's index that may hold racily clean entries (git compares
    each by content and writes the index anew), unless this very index is known to hold none.
    Under the restore lock: a job restoring files takes the index lock too, and would fail
    on ours. Only saves time: every check is git's own and right with or without it."""
    if _is_settled(admin):
        return
    with restore_lock(admin):
        before = os.stat(admin / "index").st_mtime_ns
        started = time.time_ns()
        rc = git.run(*STAT_CHECK, "update-index", "-q", "--refresh", check=False)[0]
        after = os.stat(admin / "index").st_mtime_ns
        rewritten_later = after // SECOND > before // SECOND
        untouched_and_old = after == before and started // SECOND > after // SECOND
        if rc == 0 and (rewritten_later or untouched_and_old):
            _remember_settled(admin)
