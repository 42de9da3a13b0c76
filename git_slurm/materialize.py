"""A snapshot commit as files: hard links to an earlier snapshot worktree, else a checkout.

Creating a file costs far more than linking one (on the reference VM ~250 us of system time per
new file against ~4 us per hard link: benchmarks/), and consecutive snapshots of a repository
differ in a few files. So a new snapshot worktree is made, when it can be, from an earlier one:
every tracked file of that source is hard-linked, then git itself updates what differs with
`git read-tree -m -u <source commit> <commit>` in a copy of the source's index: the two-tree
merge of `git checkout` switching branches, so filters, modes, symlinks and deletions are git's.

Snapshot files are records shared by several worktrees, so every regular file of a snapshot
worktree is made read-only: no job edits a shared file in place (root ignores the bits; the
check below still catches an edit). Directories stay writable (`__pycache__`, removal).

Never linked: the user's own files. A source is a git-slurm snapshot worktree (it has a
record); paths under its link paths (symlinks into the user's checkout) are skipped, and every
directory a link passes through must be a real directory. The result is then compared with
the commit through git's stat cache, copied from the source's index: inode, mtime and size
of every file must be those the source's checkout recorded, so a file a job replaced, edited
or deleted in the source is caught. The new worktree is then removed and made by a plain
checkout, and that source is never linked from again.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from git_slurm import faults, lfs
from git_slurm.errors import GitSlurmError
from git_slurm.gitcli import Git, read_git_file
from git_slurm.names import BranchName, Oid
from git_slurm.records import (
    SnapshotRecord,
    admin_dir_of,
    read_record,
    repository_lock,
    snapshot_worktrees,
    write_record,
)
from git_slurm.worktrees import NO_ASSUMED, STREAMING, add_worktree, remove_worktree

# Hard links share an inode, so each link (and chmod) moves the ctime of every snapshot's copy
# of a file: ctime proves nothing here, inode + mtime + size do (checkStat=default compares the
# inode even when the user chose `minimal`). A copied index carries another worktree's
# fsmonitor token, which must not be trusted. Big files stream (STREAMING); no file git
# writes is marked assume-unchanged, whatever core.ignoreStat says (NO_ASSUMED).
STAT_CHECK = (
    "-c", "core.trustctime=false", "-c", "core.checkStat=default", "-c", "core.fsmonitor=false",
    *STREAMING, *NO_ASSUMED,
)  # fmt: skip
MAX_SOURCES = 2  # a second try when the first source turns out to be edited
GITLINK = "160000"
READ_ONLY = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


@dataclass(frozen=True)
class Materialised:
    """How a new snapshot worktree got its files."""

    admin: Path
    source: Optional[Path]  # the snapshot worktree whose files were linked; None: a checkout
    linked: int  # files hard-linked from the source
    written: int  # files git wrote
    lfs_pointers: tuple[str, ...] = ()  # git-lfs files left as pointers: content not local

    def to_json(self) -> dict[str, Any]:
        source = None if self.source is None else str(self.source)
        return {"source": source, "linked": self.linked, "written": self.written}

    def note(self) -> Optional[str]:
        """What the user must know about the files, if anything."""
        if not self.lfs_pointers:
            return None
        listed = ", ".join(self.lfs_pointers[:3])
        more = f" and {len(self.lfs_pointers) - 3} more" if len(self.lfs_pointers) > 3 else ""
        return (
            f"{len(self.lfs_pointers)} git-lfs file(s) are only pointers in the snapshot, "
            f"their content is not in the local LFS store: {listed}{more} (`git lfs fetch` "
            "gets it for the next snapshot; git-slurm never downloads)"
        )


@dataclass(frozen=True)
class Source:
    """An earlier snapshot worktree whose files may be linked."""

    admin: Path
    worktree: Path
    commit: Oid
    links: tuple[str, ...]


class SourceUnusable(GitSlurmError):
    """The source's files are not those of its commit (a job changed one)."""


def materialise(
    git: Git,
    common_dir: Path,
    path: Path,
    commit: Oid,
    branch: BranchName,
    base: Optional[Oid],
    link_rels: list[str],
) -> Materialised:
    """Make the worktree `path` of `commit`, locked: linked from an earlier snapshot when one
    is usable, else checked out. Its regular files end read-only."""
    for source in link_sources(common_dir, path, base)[:MAX_SOURCES]:
        try:
            return link_from(git, common_dir, source, path, commit, branch, link_rels)
        except SourceUnusable:
            mark_unshareable(common_dir, source.admin)
        except UnstableInodes:
            break  # the file system's nature: no other source links better
        except (OSError, GitSlurmError):
            pass  # e.g. another file system, or `git slurm-gc` removed the source meanwhile
    return check_out(git, common_dir, path, commit, branch)


def check_out(
    git: Git, common_dir: Path, path: Path, commit: Oid, branch: BranchName
) -> Materialised:
    """A plain checkout (as `git worktree add` makes it), its regular files then read-only."""
    admin = add_worktree(git, common_dir, path, commit, branch)
    try:
        pointers = lfs.fill_in(Git(admin, path)) if lfs.uses_lfs(git) else []
        written = read_only_tree(path)
    except BaseException:
        remove_worktree(git, path)
        raise
    return Materialised(admin, None, 0, written, tuple(pointers))


# ---- choosing a source ---------------------------------------------------------------------


def link_sources(common_dir: Path, path: Path, base: Optional[Oid]) -> list[Source]:
    """Snapshot worktrees on the file system where `path` will be, best first: those of the
    same base (their trees differ least), then the most recently used."""
    device = next(p.stat().st_dev for p in path.parents if p.exists())
    ranked = []
    for admin, record in snapshot_worktrees(common_dir):
        source = _source(admin, record, device)
        if source is not None:
            ranked.append((record.base == base, record.last_used, source))
    ranked.sort(key=lambda item: item[:2], reverse=True)
    return [source for _, _, source in ranked]


def _source(admin: Path, record: SnapshotRecord, device: int) -> Optional[Source]:
    if not record.shareable:
        return None
    worktree = Path(record.worktree)
    try:
        info = worktree.lstat()
        head = read_git_file(admin / "HEAD").strip()
    except OSError:
        return None
    usable = (
        stat.S_ISDIR(info.st_mode)
        and info.st_dev == device
        and _is_oid(head)
        and admin_dir_of(worktree) == admin
    )
    return Source(admin, worktree, Oid(head), tuple(record.links)) if usable else None


def _is_oid(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def mark_unshareable(common_dir: Path, admin: Path) -> None:
    """Never link from this worktree again: one of its files is not its commit's."""
    with repository_lock(common_dir):
        record = read_record(admin)
        if record is not None and record.shareable:
            record.shareable = False
            write_record(admin, record)


# ---- linking -------------------------------------------------------------------------------


def link_from(
    git: Git,
    common_dir: Path,
    source: Source,
    path: Path,
    commit: Oid,
    branch: BranchName,
    link_rels: list[str],
) -> Materialised:
    """The worktree `path` of `commit` from hard links to `source`'s files plus git's update.

    Any failure removes the half-made worktree (it is locked from birth, so nothing else
    touches it meanwhile).
    """
    changes = tree_changes(git, source.commit, commit)
    if any(PurePosixPath(rel).name == ".gitattributes" for _, rel in changes):
        # unchanged blobs under changed attributes would need a new smudge: a checkout does it
        raise GitSlurmError("attributes changed since the source snapshot")
    admin = add_worktree(git, common_dir, path, commit, branch, checkout=False)
    try:
        return _populate(Git(admin, path), source, commit, changes, link_rels, lfs.uses_lfs(git))
    except BaseException:
        remove_worktree(git, path)
        raise


def _populate(
    git: Git,
    source: Source,
    commit: Oid,
    changes: list[tuple[str, str]],
    link_rels: list[str],
    uses_lfs: bool,
) -> Materialised:
    assert git.work_tree is not None
    # a fresh mtime for the copy: the source's racily clean entries were written by our own
    # checkout before any job could see them, and the check below verifies every entry
    shutil.copyfile(source.admin / "index", git.git_dir / "index")
    for shared in source.admin.glob("sharedindex.*"):  # split by a git run there by hand
        shutil.copyfile(shared, git.git_dir / shared.name)
    files, gitlinks = _linkable(index_entries(git), (*source.links, *link_rels))
    linked = link_files(source.worktree, git.work_tree, files, gitlinks)
    faults.point("worktree")
    git.run(*STAT_CHECK, "read-tree", "-m", "-u", source.commit, commit)
    restored = _restore_uncovered(git, source.links, link_rels)
    written = [rel for status, rel in changes if status != "D"] + restored
    pointers: list[str] = []
    if uses_lfs:  # git-lfs writes new files, linked pointers included: all made read-only
        pointers = lfs.fill_in(git)
        read_only_tree(git.work_tree)
    else:
        make_read_only(git.work_tree, written)
    verify(git, commit, link_rels)
    return Materialised(git.git_dir, source.worktree, linked, len(written), tuple(pointers))


def tree_changes(git: Git, old: Oid, new: Oid) -> list[tuple[str, str]]:
    """(status letter, path) of every file that differs between two commits."""
    return name_status(
        git.run("diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new)[1]
    )


def name_status(out: str) -> list[tuple[str, str]]:
    """(status letter, path) pairs of git's `--name-status -z --no-renames` output."""
    fields = out.split("\0")
    return [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def index_entries(git: Git) -> list[tuple[str, str]]:
    """(mode, path) of every entry of the worktree's index (a copy of the source's); a
    conflict or an entry git's diff would not look at makes it unusable."""
    entries = []
    for tag, mode, stage, rel in tagged_entries(git):
        if stage != "0":
            raise SourceUnusable(f"the source snapshot has an unmerged entry {rel!r}")
        if tag != CHECKED:
            raise SourceUnusable(f"the source snapshot's index hides {rel!r} from git's diff")
        entries.append((mode, rel))
    return entries


CHECKED = "H"  # `ls-files -v`: neither assume-unchanged (lower case) nor skip-worktree (S)


def tagged_entries(git: Git) -> list[tuple[str, str, str, str]]:
    """(tag, mode, stage, path) of every index entry, the tag as `git ls-files -v` gives it.

    A job can set `--assume-unchanged` or `--skip-worktree` on an entry of its worktree's
    index (git update-index); git's diff then never looks at that file, so an edit of it is
    invisible to every check, and an index copied from there would carry the blind spot into
    a new snapshot."""
    return parse_tagged(git.run("ls-files", "-s", "-v", "-z")[1].split("\0"))


def parse_tagged(lines: Iterable[str]) -> list[tuple[str, str, str, str]]:
    """(tag, mode, stage, path) of `git ls-files -s -v -z` lines."""
    entries = []
    for line in filter(None, lines):
        meta, _, rel = line.partition("\t")
        tag, mode, _, stage = meta.split(" ")
        entries.append((tag, mode, stage, rel))
    return entries


def _linkable(
    entries: list[tuple[str, str]], outside: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """(files to link, submodule dirs to create), leaving out everything under link paths."""
    inside = Under(outside)
    files: list[str] = []
    gitlinks: list[str] = []
    for mode, rel in entries:
        if not inside(rel):
            (gitlinks if mode == GITLINK else files).append(rel)
    return files, gitlinks


class Under:
    """Is a repository-relative posix path one of `roots`, or inside one? (Asked of every
    index entry: one C-level `startswith` per path.)"""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = frozenset(roots)
        self.prefixes = tuple(f"{root}/" for root in self.roots)

    def __call__(self, rel: str) -> bool:
        return rel in self.roots or rel.startswith(self.prefixes)


def link_files(source: Path, target: Path, files: list[str], gitlinks: list[str]) -> int:
    """Hard-link `files` from `source` into `target`, directories first.

    A symlink is linked as itself; a directory on the way that is a symlink (a job may have
    replaced one) refuses the source, since a link through it could reach the user's files.
    """
    through = _parents(files)
    try:
        for rel in through:
            if not stat.S_ISDIR(os.lstat(f"{source}/{rel}").st_mode):
                raise SourceUnusable(f"{rel} in the source snapshot is no longer a directory")
        for rel in sorted(through | _parents(gitlinks) | set(gitlinks)):  # parents sort first
            os.mkdir(f"{target}/{rel}")
        for n, rel in enumerate(files):
            os.link(f"{source}/{rel}", f"{target}/{rel}", follow_symlinks=False)
            if n == 0:
                _refuse_unstable_inodes(f"{source}/{rel}", f"{target}/{rel}")
    except FileNotFoundError as exc:
        raise SourceUnusable(f"{exc.filename} is missing from the source snapshot") from exc
    return len(files)


class UnstableInodes(GitSlurmError):
    """The file system gives each name its own inode number (sshfs): a linked worktree's stat
    cache, copied from the source's index, would match no file and git would read them all."""


def _refuse_unstable_inodes(source: str, link: str) -> None:
    """Checked on the first link, before thousands more are made only to be thrown away."""
    if os.lstat(source).st_ino != os.lstat(link).st_ino:
        raise UnstableInodes(f"{link}: a hard link got an inode number of its own")


def _parents(files: list[str]) -> set[str]:
    found: set[str] = set()
    for rel in files:
        parent = rel.rpartition("/")[0]
        while parent and parent not in found:
            found.add(parent)
            parent = parent.rpartition("/")[0]
    return found


def _restore_uncovered(git: Git, source_links: tuple[str, ...], link_rels: list[str]) -> list[str]:
    """Check out the tracked files under the source's link paths that are not link paths here
    (the source had symlinks there, so nothing was linked)."""
    linked_here = Under(link_rels)
    uncovered = [rel for rel in source_links if not linked_here(rel)]
    if not uncovered:
        return []
    listed = git.run("--literal-pathspecs", "ls-files", "-z", "--", *uncovered)[1]
    paths = [rel for rel in listed.split("\0") if rel and not linked_here(rel)]
    if paths:
        git.run(*STAT_CHECK, "checkout-index", "-f", "-u", "-z", "--stdin", stdin="\0".join(paths))
    return paths


def verify(git: Git, commit: Oid, link_rels: list[str]) -> None:
    """Every file (link paths aside) is the commit's, by the stat cache and index entries."""
    out = git.run(*STAT_CHECK, "diff-index", "--name-only", "-z", commit)[1]
    linked_here = Under(link_rels)
    stale = [rel for rel in out.split("\0") if rel and not linked_here(rel)]
    if stale:
        more = f" and {len(stale) - 3} more" if len(stale) > 3 else ""
        raise SourceUnusable(f"changed in the source snapshot: {', '.join(stale[:3])}{more}")


# ---- read-only files -----------------------------------------------------------------------


def make_read_only(root: Path, rels: Iterable[str]) -> None:
    """Drop the write bits of the regular files `rels` (gone and symlinked ones are skipped)."""
    for rel in rels:
        try:
            info = os.lstat(f"{root}/{rel}")
        except FileNotFoundError:
            continue
        _drop_write(f"{root}/{rel}", info)


def read_only_tree(root: Path) -> int:
    """Drop the write bits of every regular file under `root` but its `.git` file; the count.

    Directories stay writable (jobs write `__pycache__`; removal unlinks), symlinks are skipped.
    """
    count, pending = 0, [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False) and entry.path != f"{root}/.git":
                    _drop_write(entry.path, entry.stat(follow_symlinks=False))
                    count += 1
    return count


def _drop_write(path: str, info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode) and info.st_mode & ~READ_ONLY:
        os.chmod(path, stat.S_IMODE(info.st_mode) & READ_ONLY)
