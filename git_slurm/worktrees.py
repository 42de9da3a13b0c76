"""Materialising a snapshot commit as a locked, detached `git worktree`."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Optional

from git_slurm import faults
from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.gitcli import Git, progress_shown, read_git_file, run_git
from git_slurm.names import BranchName, Oid
from git_slurm.records import admin_dir_of, creation_lock, making_reason
from git_slurm.snapshotworktrees import admin_dirs_for

DEFAULT_DIR_NAME = "slurm-snapshots"
FULL_BELOW = 1024 * 1024  # free bytes under which a failed checkout is put down to a full disk

# Bounded memory whatever the files: blobs above 32 MB are hashed, stored and checked out by
# streaming rather than held whole (git's default threshold is 512 MB), and a pack is mapped
# 32 MB at a time, 64 MB at most, rather than 1 GB windows up to 8 GB (mapped pages count as
# resident). Only how such a blob is stored changes (a pack, not a loose object), never an id.
STREAMING = (
    "-c", "core.bigFileThreshold=32m",
    "-c", "core.packedGitWindowSize=32m", "-c", "core.packedGitLimit=64m",
)  # fmt: skip

# Files git writes into a snapshot worktree are never marked assume-unchanged: with a user's
# `core.ignoreStat=true` every checkout would set that bit, and git's diff never looks at such
# a file again, so the job-start check (verify.py) would miss any edit of it.
NO_ASSUMED = ("-c", "core.ignoreStat=false")


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


def add_worktree(
    git: Git,
    common_dir: Path,
    path: Path,
    commit: Oid,
    branch: BranchName,
    *,
    checkout: bool = True,
) -> Path:
    """Make a worktree of `commit` at `path`, detached and locked from birth; return its
    admin dir. With `checkout=False` it has HEAD but neither files nor an index yet.

    Detached, so the branch stays free for the user to check out; locked with a reason, so
    `git worktree prune` leaves it alone and `git worktree list` says what it is: "being
    made" until the record replaces it, which is how `git slurm-gc` recognises a snapshot
    whose maker died half-way (the caller holds `tree_lock` meanwhile). Hooks are
    off (NO_HOOKS in Git), so the user's post-checkout does not fire. Only the admin dir is
    made under the creation lock; the checkout (what `git worktree add` runs itself, `git
    reset --hard`) runs outside it, with git's parallel checkout.
    """
    reason = making_reason(branch)
    try:
        with creation_lock(common_dir):
            git.run(
                "worktree", "add", "--quiet", "--detach", "--no-checkout", "--lock",
                "--reason", reason, str(path), commit,
            )  # fmt: skip
        admin = admin_dir_of(path)
        if admin is None:
            raise GitSlurmError(f"git worktree add made no worktree at {path}")
        not_sparse(admin)
        if checkout:
            faults.point("worktree")
            files = (*STREAMING, *NO_ASSUMED, *parallel_checkout(git))
            shown = progress_shown()  # git's "Updating files" on a terminal, after 2 s
            quiet = () if shown else ("--quiet",)
            rc, _, err = Git(admin, path).run(
                *files, "reset", "--hard", *quiet, "--no-recurse-submodules", check=False,
                terminal=shown,
            )  # fmt: skip
            if rc != 0:
                raise checkout_failed(path, err)
    except BaseException:
        # also after an interrupt during `git worktree add`, which may have finished: but
        # only a worktree with this very reason is ours (a path taken already is not)
        if _lock_reason(path) == reason:
            remove_worktree(git, path)
        raise
    return admin


def not_sparse(admin: Path) -> None:
    """A snapshot worktree holds every file of its commit: `git worktree add` copied the
    sparse-checkout patterns of the worktree it ran in, which jobs must not inherit."""
    (admin / "info" / "sparse-checkout").unlink(missing_ok=True)
    worktree_config = admin / "config.worktree"
    if worktree_config.exists():
        run_git(["config", "--file", str(worktree_config), "core.sparseCheckout", "false"])


def checkout_failed(path: Path, stderr: str) -> GitSlurmError:
    """Why the checkout failed, in the words a user can act on: git says only "unable to
    write file", so a file system with no room (blocks or inodes) left is named as such.
    Asked before the half-made worktree is removed, which frees the space again."""
    try:
        fs = os.statvfs(path)
        full = fs.f_bavail * fs.f_frsize < FULL_BELOW or fs.f_favail == 0
    except OSError:
        full = False
    if full:
        return GitSlurmError(
            f"cannot check out the snapshot in {path.parent}: "
            f"{os.strerror(errno.ENOSPC)}; free some space there, or make snapshots elsewhere "
            "(--worktree-dir, git config slurm.worktreeDir)"
        )
    first = next((ln for ln in stderr.splitlines() if ln.startswith(("error", "fatal"))), "")
    why = first or stderr.strip() or "git's message is above"  # empty: git spoke to the terminal
    return GitSlurmError(f"cannot check out the snapshot in {path}: {why}")


def _lock_reason(path: Path) -> Optional[str]:
    admin = admin_dir_of(path)
    try:
        return None if admin is None else read_git_file(admin / "locked").strip()
    except OSError:
        return None


def parallel_checkout(git: Git) -> tuple[str, ...]:
    """git's parallel checkout with one worker per core, unless the user chose a number.

    Writing thousands of new files is mostly system time on a local disk and latency on a
    parallel file system; both overlap across workers (about 25% faster on the 2-core
    reference machine: benchmarks/). git < 2.32 ignores the setting.
    """
    if git.run("config", "--get", "checkout.workers", check=False)[0] == 0:
        return ()
    return ("-c", "checkout.workers=0")


def remove_worktree(git: Git, path: Path) -> None:
    """Remove a worktree git-slurm made (used to undo a failed snapshot). When git no longer
    sees a worktree there (`git worktree add` interrupted before its `.git` file), its admin
    dir goes by a prune, but only one that prunes nothing else."""
    git.run("worktree", "unlock", str(path), check=False)
    rc, _, _ = git.run("worktree", "remove", "--force", "--force", str(path), check=False)
    if rc != 0:
        common = Path(git.out("rev-parse", "--path-format=absolute", "--git-common-dir"))
        prune_only(git, {admin.name for admin in admin_dirs_for(common, path)})


def prune_only(git: Git, ids: set[str]) -> bool:
    """`git worktree prune`, but only when it would prune nothing besides the admin dirs
    `ids`: plain prune also takes the user's own vanished worktrees. Whether it ran."""
    _, out, err = git.run("worktree", "prune", "--dry-run", "--verbose", check=False)
    would = {_pruned_id(line) for line in (out + err).splitlines()} - {None}
    if not would or not would <= ids:
        return False
    git.run("worktree", "prune", check=False)
    return True


def _pruned_id(line: str) -> Optional[str]:
    """`Removing worktrees/<id>: <why>` -> id."""
    head = line.strip().partition(":")[0]
    return head.removeprefix("Removing worktrees/") if head.startswith("Removing ") else None
