"""Capture the working tree as `git add -A` would stage it, without touching the user's index.

git itself decides what is staged (so every ignore rule holds exactly as for the user), in a
temporary copy of the user's index whose stat cache means unchanged files are not read again:
one `git status` walk names the changed and untracked paths (untracked files too large are
refused before anything is hashed), `git update-index` stages exactly those, and `git
write-tree` writes the tree of that temporary index.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from git_slurm import faults
from git_slurm.errors import GitSlurmError, UsageError, git_reason
from git_slurm.gitcli import Git
from git_slurm.names import Oid
from git_slurm.records import admin_dir_of
from git_slurm.repo import Checkout
from git_slurm.worktrees import STREAMING

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
    try:
        fd, name = tempfile.mkstemp(prefix="git-slurm-index.", dir=checkout.git_dir)
    except OSError as exc:
        raise GitSlurmError(
            f"cannot capture the working tree: cannot write in {checkout.git_dir} "
            f"({exc.strerror}); a snapshot needs a writable repository"
        ) from exc
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
    """Pathspecs that keep paths out of a capture: git-slurm's own directories (snapshot
    worktrees) and the link paths, which hold outputs, not code. A path counts by where it
    lies in the work tree, not by where a symlink there points (`multirun` -> scratch)."""
    specs = []
    for path in keep_out:
        for where in (Path(os.path.abspath(path)), path.resolve()):
            try:
                rel = where.relative_to(checkout.toplevel)
            except ValueError:
                continue
            if rel.parts:
                specs.append(f":(top,exclude,literal){rel.as_posix()}")
            break
    return specs


@dataclass(frozen=True)
class Changes:
    """What `git add -A` would change in an index: paths to stage, and which are untracked."""

    paths: list[str]  # modified, deleted, type-changed, unmerged and untracked paths
    untracked: list[str]
    embedded: list[str] = field(default_factory=list)  # untracked directories with a .git

    def without(self, left_out: set[str]) -> Changes:
        return Changes(
            [p for p in self.paths if p not in left_out],
            [p for p in self.untracked if p not in left_out],
            [p for p in self.embedded if p not in left_out],
        )


# One walk of the working tree, as `git add -A` makes, but without staging: so that too large
# untracked files are refused before git hashes (and stores) them, and clean files are never
# looked at twice. Porcelain v2 is stable; renames off (each path once); a submodule counts
# only by its commit, as `git add` records it; no optional locks: the index copy is only read.
STATUS = (
    *STREAMING, "--no-optional-locks", "status", "--porcelain=v2", "-z", "--untracked-files=all",
    "--no-renames", "--ignore-submodules=dirty",
)  # fmt: skip


def working_tree_changes(git: Git, env: dict[str, str], pathspec: list[str]) -> Changes:
    """The paths whose working-tree state differs from the index (`GIT_INDEX_FILE` in env)."""
    rc, out, err = git.run(*STATUS, *pathspec, env=env, check=False)
    if rc != 0:
        raise GitSlurmError(f"cannot capture the working tree: {git_reason(err)}")
    return parse_status(out)


def parse_status(porcelain_v2_z: str) -> Changes:
    """Paths to stage from `git status --porcelain=v2 -z`: a worktree change of a tracked
    entry (the second status letter), every unmerged entry, every untracked file."""
    paths, untracked, embedded = [], [], []
    fields = iter(porcelain_v2_z.split("\0"))
    for entry in fields:
        kind = entry[:1]
        if kind == "1" and entry[3] != ".":
            paths.append(entry.split(" ", 8)[8])
        elif kind == "2":  # a rename (only if renames were on): the new path; skip the old
            if entry[3] != ".":
                paths.append(entry.split(" ", 9)[9])
            next(fields, None)
        elif kind == "u":
            paths.append(entry.split(" ", 10)[10])
        elif kind == "?":
            rel = entry[2:].rstrip("/")  # an embedded repository shows as a directory
            paths.append(rel)
            untracked.append(rel)
            if entry.endswith("/"):
                embedded.append(rel)
    return Changes(paths, untracked, embedded)


def own_worktrees(checkout: Checkout, embedded: list[str]) -> set[str]:
    """The embedded repositories that are worktrees of this very repository (snapshot
    worktrees made inside the work tree by an earlier `--worktree-dir`): `git add -A` would
    record each as a gitlink to this repository's own commit, never code of the snapshot."""
    ours = checkout.common_dir / "worktrees"
    return {rel for rel in embedded if _admin_parent(checkout.toplevel / rel) == ours}


def _admin_parent(path: Path) -> Optional[Path]:
    admin = admin_dir_of(path)
    return None if admin is None else admin.parent


def refuse_large_untracked(toplevel: Path, untracked: list[str], limit: int) -> None:
    """Refuse untracked files above `limit` bytes instead of copying a checkpoint into git."""
    offenders = []
    for rel in untracked:
        try:
            size = (toplevel / rel).lstat().st_size
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


def stage(git: Git, env: dict[str, str], paths: list[str]) -> None:
    """Stage exactly `paths` as `git add -A` would: add, update, remove; a file that became a
    directory (or back) replaces the old entry."""
    if not paths:
        return
    rc, _, err = git.run(
        *STREAMING, "update-index", "--add", "--remove", "--replace", "-z", "--stdin",
        env=env, stdin="\0".join(paths) + "\0", check=False,
    )  # fmt: skip
    if rc != 0:
        raise GitSlurmError(f"cannot capture the working tree: {git_reason(err)}")


def write_tree(git: Git, env: dict[str, str]) -> Oid:
    """The index's tree, written by git: `update-index` kept the cache tree of every directory
    it did not touch, so only changed directories are hashed (libgit2 rebuilt them all here,
    2-3x slower)."""
    rc, out, err = git.run("write-tree", env=env, check=False)
    if rc != 0:
        raise GitSlurmError(f"cannot write the snapshot tree: {git_reason(err)}")
    return Oid(out.strip())


def capture_working_tree(
    checkout: Checkout,
    *,
    max_untracked: Optional[int] = DEFAULT_MAX_UNTRACKED,
    keep_out: Optional[list[Path]] = None,
) -> Capture:
    """The tree `git add -A` would stage in a fresh copy of the index."""
    with temporary_index(checkout) as index:
        env = {"GIT_INDEX_FILE": str(index)}
        excluded = _excluded_pathspecs(checkout, keep_out or [])
        pathspec = ["--", ":/", *excluded] if excluded else []
        changes = working_tree_changes(checkout.git, env, pathspec)
        if changes.embedded:
            changes = changes.without(own_worktrees(checkout, changes.embedded))
        if max_untracked is not None:
            refuse_large_untracked(checkout.toplevel, changes.untracked, max_untracked)
        stage(checkout.git, env, changes.paths)
        faults.point("capture")
        tree = write_tree(checkout.git, env)
    return Capture(tree=tree, notes=in_progress_notes(checkout))
