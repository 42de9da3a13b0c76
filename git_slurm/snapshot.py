"""`take_snapshot`: capture, commit, branch, push, worktree, links and record, in that order.

Every step before the branch only writes objects (harmless and unreferenced); every step after
it is undone when a later one fails, so a failed snapshot leaves nothing behind but objects.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from git_slurm import faults
from git_slurm.branches import (
    SNAPSHOT_REFLOG_MARK,
    create_snapshot_branch,
    delete_snapshot_branch,
    validate_prefix,
)
from git_slurm.capture import DEFAULT_MAX_UNTRACKED, capture_working_tree
from git_slurm.errors import UsageError
from git_slurm.head import Head, read_head
from git_slurm.links import Link, make_links, plan_links, unignored_note
from git_slurm.names import BranchName, Oid
from git_slurm.push import PUSH_TIMEOUT, PushResult, default_remote, push_branch, unpush
from git_slurm.records import (
    Launch,
    SnapshotRecord,
    admin_dir_of,
    repository_lock,
    snapshot_worktrees,
    tree_lock,
    user_lock,
    write_record,
)
from git_slurm.repo import Checkout
from git_slurm.reserve import reserved_worktree_path
from git_slurm.verify import reusable_as_is, settle_checked_out_index
from git_slurm.worktrees import ensure_worktree_dir, remove_worktree

if TYPE_CHECKING:  # imported where used: a snapshot of an unchanged tree needs none of them
    from git_slurm.materialize import Materialised


@dataclass(frozen=True)
class SnapshotOptions:
    """What to snapshot and how; the CLI fills it from switches and git config."""

    prefix: str
    links: list[str]  # relative to the current directory
    worktree_dir: Path
    make_worktree: bool = True
    push: Optional[bool] = None  # None: push when the remote exists, failure only warns
    remote: Optional[str] = None
    message: Optional[str] = None
    command_line: str = "git slurm-snapshot"
    max_untracked: Optional[int] = DEFAULT_MAX_UNTRACKED
    submodules: bool = False  # check submodules out in the worktree, from the local clones
    push_timeout: float = PUSH_TIMEOUT  # seconds; then the push is killed, helpers included
    handoff: Optional[str] = None  # records.Handoff token of the launcher recording the jobs
    captured_fd: Optional[int] = None  # told `captured` once the tree is recorded (launchers)


@dataclass(frozen=True)
class Snapshot:
    """The result of one `git slurm-snapshot`."""

    branch: BranchName
    commit: Oid
    base: Optional[Oid]
    tree: Oid
    dirty: bool
    worktree: Optional[Path]
    workdir: Optional[Path]
    links: list[Link]
    pushed: Optional[str]
    reused: bool
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    materialised: Optional[Materialised] = None  # how a new worktree got its files

    def to_json(self) -> dict[str, Any]:
        """The `--json` object of the contract (plus `tree`, `notes`, `seconds` and how the
        worktree was made: `materialised`, null when none was made or one was reused)."""
        return {
            "branch": str(self.branch),
            "commit": str(self.commit),
            "base": None if self.base is None else str(self.base),
            "dirty": self.dirty,
            "worktree": None if self.worktree is None else str(self.worktree),
            "workdir": None if self.workdir is None else str(self.workdir),
            "links": [{"path": str(ln.path), "target": str(ln.target)} for ln in self.links],
            "pushed": self.pushed,
            "reused": self.reused,
            "tree": str(self.tree),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "materialised": None if self.materialised is None else self.materialised.to_json(),
        }


def commit_message(
    checkout: Checkout, options: SnapshotOptions, base: Optional[Oid], branch: Optional[str]
) -> str:
    """Says what the snapshot is of: base, branch, directory, the user's text, the command."""
    on = branch or "detached HEAD"
    subject = f"git-slurm snapshot of {on}" + (f" at {base[:12]}" if base else " (no commit yet)")
    body = [
        f"Base: {base or '(none)'}",
        f"Branch: {on}",
        f"Checkout: {checkout.toplevel}",
        f"Command: {options.command_line}",
    ]
    text = f"\n\n{options.message}" if options.message else ""
    return f"{subject}{text}\n\n" + "\n".join(body) + "\n"


def take_snapshot(
    checkout: Checkout, options: SnapshotOptions, head: Optional[Head] = None
) -> Snapshot:
    """Record the working tree on a new branch and (unless told not to) materialise it.
    `head`: HEAD as `discover_with_head` just read it (None: read it here)."""
    started = time.monotonic()
    validate_prefix(checkout.git, options.prefix)
    link_rels = plan_links(checkout.git, checkout.toplevel, checkout.prefix, options.links)
    if options.make_worktree:
        refuse_worktree_dir_in_code(checkout, options.worktree_dir)
    worktree_dir = ensure_worktree_dir(options.worktree_dir) if options.make_worktree else None
    head = head or read_head(checkout.git)
    base, on_branch = head.commit, head.branch
    keep_out = [options.worktree_dir, *(checkout.toplevel / rel for rel in link_rels)]
    capture = capture_working_tree(checkout, max_untracked=options.max_untracked, keep_out=keep_out)
    if options.captured_fd is not None:  # a launcher waits for this before it goes on
        announce_captured(options.captured_fd)
    dirty = head.tree != capture.tree
    if not dirty:
        assert base is not None
        commit = base
    else:
        from git_slurm import odb  # only a new commit needs it (and it loads pygit2)

        commit = _earlier_commit(checkout, base, capture.tree) or odb.create_commit(
            checkout.git,
            capture.tree,
            [base] if base else [],
            commit_message(checkout, options, base, on_branch),
        )
    faults.point("commit")
    notes = list(capture.notes)
    unignored = unignored_note(checkout.git, checkout.toplevel, link_rels)
    if unignored:
        notes.append(unignored)
    why = f"{SNAPSHOT_REFLOG_MARK}{on_branch or 'detached HEAD'}"
    pushed = PushResult(None, None)
    branch = create_snapshot_branch(checkout.git, options.prefix, commit, why)
    try:
        faults.point("branch")
        pushed = _push(checkout, options, branch, on_branch)
        faults.point("push")
        if pushed.note:
            notes.append(pushed.note)
        placed = _Placement()
        if worktree_dir is not None:
            target = _Target(
                worktree_dir, branch, commit, base, capture.tree, link_rels, options.submodules,
                options.handoff,
            )  # fmt: skip
            placed = _materialise(checkout, target)
    except BaseException:  # also Ctrl-C: a half-made snapshot is undone, not left behind
        _undo_branch(checkout, options, branch, commit, pushed)
        raise
    lfs_note = placed.materialised.note() if placed.materialised else None
    if lfs_note:
        notes.append(lfs_note)
    workdir = None
    if placed.worktree is not None:
        workdir = placed.worktree / checkout.prefix if checkout.prefix else placed.worktree
    return Snapshot(
        branch=branch,
        commit=commit,
        base=base,
        tree=capture.tree,
        dirty=dirty,
        worktree=placed.worktree,
        workdir=workdir,
        links=placed.links,
        pushed=pushed.remote,
        reused=placed.reused,
        notes=notes,
        seconds=time.monotonic() - started,
        materialised=placed.materialised,
    )


def announce_captured(fd: int) -> None:
    """Tell the launcher on `fd` that edits from now on are not in the snapshot."""
    with contextlib.suppress(OSError):  # the launcher is gone: nobody is waiting
        os.write(fd, b"captured\n")
    with contextlib.suppress(OSError):
        os.close(fd)


def refuse_worktree_dir_in_code(checkout: Checkout, worktree_dir: Path) -> None:
    """Snapshot worktrees may lie in the work tree (they are left out of every capture), but
    not as the work tree itself nor where tracked files are: leaving that out would drop code."""
    try:
        rel = worktree_dir.resolve().relative_to(checkout.toplevel)
    except ValueError:
        return  # outside the work tree
    if not rel.parts:
        raise UsageError(
            f"worktree dir {worktree_dir} is the work tree itself: snapshots would be captured "
            "into later snapshots; choose a directory outside it, or an ignored one in it"
        )
    spec = f":(top,literal){rel.as_posix()}"
    if checkout.git.out("ls-files", "-z", "--full-name", "--", spec):
        raise UsageError(
            f"worktree dir {worktree_dir} holds tracked files: it is left out of every "
            "snapshot, and they would be too; choose a directory outside the work tree"
        )


@dataclass(frozen=True)
class _Placement:
    """Where the snapshot's files are, and how they got there."""

    worktree: Optional[Path] = None
    links: list[Link] = field(default_factory=list)
    reused: bool = False
    materialised: Optional[Materialised] = None


def _earlier_commit(checkout: Checkout, base: Optional[Oid], tree: Oid) -> Optional[Oid]:
    """The commit of an earlier snapshot of the same tree on the same base, to reuse."""
    for _, record in snapshot_worktrees(checkout.common_dir):
        if record.tree == tree and record.base == base and record.launches:
            return Oid(record.launches[0].commit)
    return None


def _push(
    checkout: Checkout, options: SnapshotOptions, branch: BranchName, on_branch: Optional[str]
) -> PushResult:
    if options.push is False:
        return PushResult(None, None)
    remote = options.remote or default_remote(checkout.git, on_branch)
    return push_branch(
        checkout.git,
        branch,
        remote,
        explicit=options.push is True,
        remote_given=options.remote is not None,
        timeout=options.push_timeout,
    )


def _undo_branch(
    checkout: Checkout,
    options: SnapshotOptions,
    branch: BranchName,
    commit: Oid,
    pushed: PushResult,
) -> None:
    """Delete the branch of a snapshot that failed after making it: on the remote it was pushed
    to, then here (each only while it still points at the snapshot)."""
    if pushed.remote is not None:
        unpush(checkout.git, branch, pushed.remote, commit, options.push_timeout)
    delete_snapshot_branch(checkout.git, branch, commit)


@dataclass(frozen=True)
class _Target:
    """What a snapshot's worktree must hold, and where it goes."""

    worktree_dir: Path
    branch: BranchName
    commit: Oid
    base: Optional[Oid]
    tree: Oid
    link_rels: list[str]
    submodules: bool
    handoff: Optional[str] = None


def _materialise(checkout: Checkout, target: _Target) -> _Placement:
    """Reuse a worktree with the identical tree, links and submodules, else make a new one."""
    with tree_lock(checkout.common_dir, target.tree):
        reused = _reuse(checkout, target)
        if reused is not None:
            links = _existing_links(reused, checkout.toplevel, target.link_rels)
            return _Placement(reused, links, reused=True)
        return _new_worktree(checkout, target)


def _reuse(checkout: Checkout, target: _Target) -> Optional[Path]:
    """Record this launch in a worktree that already holds what `target` needs, if any."""
    now = time.time()
    launch = Launch(str(target.branch), str(target.commit), now, target.handoff)
    with repository_lock(checkout.common_dir):
        for admin, record in snapshot_worktrees(checkout.common_dir):
            if _reusable(record, admin, checkout.toplevel, target) and reusable_as_is(
                admin, record
            ):
                record.launches.append(launch)
                record.last_used = now
                write_record(admin, record)
                return Path(record.worktree)
    return None


def _new_worktree(checkout: Checkout, target: _Target) -> _Placement:
    from git_slurm import submodules
    from git_slurm.materialize import materialise

    now = time.time()
    launch = Launch(str(target.branch), str(target.commit), now, target.handoff)
    with reserved_worktree_path(target.worktree_dir, target.branch) as path:
        try:
            made = materialise(
                checkout.git,
                checkout.common_dir,
                path,
                target.commit,
                target.branch,
                target.base,
                target.link_rels,
            )
        except BaseException:
            with contextlib.suppress(OSError):
                path.rmdir()  # still the empty reservation (a worktree made is removed already)
            raise
    nested: list[str] = []
    try:
        if target.submodules:
            nested = submodules.check_out(checkout.git, checkout.toplevel, path, target.commit)
        links = make_links(path, checkout.toplevel, target.link_rels)
        if made.source is None:  # as late as can be: the checkout's second may have passed
            settle_checked_out_index(made.admin)
        record = SnapshotRecord(
            worktree=str(path),
            origin=str(checkout.toplevel),
            tree=str(target.tree),
            base=None if target.base is None else str(target.base),
            links=target.link_rels,
            created=now,
            last_used=now,
            launches=[launch],
            submodules=nested if target.submodules else None,
        )
        faults.point("record")
        with repository_lock(checkout.common_dir):
            write_record(made.admin, record)
    except BaseException:  # still locked as being made (no record): nothing else touched it
        submodules.remove(path, nested)
        remove_worktree(checkout.git, path)
        raise
    return _Placement(path, links, materialised=made)


def _reusable(record: SnapshotRecord, admin: Path, origin: Path, target: _Target) -> bool:
    worktree = Path(record.worktree)
    return (
        record.tree == target.tree
        and record.origin == str(origin)
        and sorted(record.links) == sorted(target.link_rels)
        and (record.submodules is not None) == target.submodules
        and worktree.parent == target.worktree_dir
        and admin_dir_of(worktree) == admin
        and all(os.path.islink(worktree / rel) for rel in target.link_rels)
        and user_lock(admin) is None  # the user locked it for a reason of their own: hands off
    )


def _existing_links(worktree: Path, origin: Path, rels: list[str]) -> list[Link]:
    return [Link(rel=rel, path=worktree / rel, target=origin / rel) for rel in rels]
