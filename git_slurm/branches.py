"""Snapshot branch names: `<prefix>-YYYYMMDD-HHMMSS`, unique, created atomically."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from typing import Optional

from git_slurm.errors import GitSlurmError, UsageError, git_reason
from git_slurm.gitcli import Git
from git_slurm.names import BranchName, Oid
from git_slurm.refnames import is_valid_refname

STAMP_FORMAT = "%Y%m%d-%H%M%S"
STAMP_PATTERN = re.compile(r"-(\d{8}-\d{6})(?:-(\d+))?$")
MAX_SAME_SECOND = 10_000
# how a snapshot branch's creation begins in its reflog: gc and the reminder recognise a
# snapshot branch whose worktree is gone by it
SNAPSHOT_REFLOG_MARK = "git-slurm: snapshot of "


def validate_prefix(git: Git, prefix: str) -> None:
    """A prefix is good when `<prefix>-<stamp>` is a valid branch name that git can create
    here: checked before anything is made, so a bad one costs no spin through every name."""
    example = f"refs/heads/{prefix}-20000101-000000"
    # a leading `-` makes a valid ref but no branch name git accepts (`git switch -x-...`)
    if not prefix or prefix.startswith("-") or not is_valid_refname(example):
        raise UsageError(f"invalid branch prefix {prefix!r}: it must make a valid branch name")
    _refuse_too_long(git, prefix)
    _refuse_under_a_branch(git, prefix)


def _refuse_too_long(git: Git, prefix: str) -> None:
    """Each part of a ref name is a file (`<part>.lock` while it is written; the worktree's
    directory too): one longer than the file system allows can never be created."""
    longest = f"{prefix}-20000101-000000-{MAX_SAME_SECOND}.lock"
    try:
        limit = os.pathconf(git.git_dir, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in longest.split("/"):
        if len(os.fsencode(part)) > limit:
            raise UsageError(
                f"invalid branch prefix {prefix[:40]!r}...: too long; a snapshot branch's name "
                f"would be a file name of {len(os.fsencode(part))} bytes, and the file system "
                f"allows {limit}"
            )


def _refuse_under_a_branch(git: Git, prefix: str) -> None:
    """git stores `a/b` as a file under `a/`: no branch `a/b-...` while a branch `a` exists."""
    parts = f"refs/heads/{prefix}".split("/")
    above = ["/".join(parts[:n]) for n in range(3, len(parts))]
    if not above:
        return
    listed = git.out("for-each-ref", "--format=%(refname)", "--", *above).splitlines()
    clash = next((ref for ref in above if ref in listed), None)
    if clash is not None:
        short = clash.removeprefix("refs/heads/")
        raise UsageError(
            f"invalid branch prefix {prefix!r}: the branch {short!r} exists, and git cannot "
            f"have a branch {short!r} and branches under {short + '/'!r} at once; choose "
            "another prefix"
        )


def candidate_names(prefix: str, now: dt.datetime) -> Iterator[BranchName]:
    """The name for `now` (local time, Hydra's clock), then `-2`, `-3`, ... for the same second."""
    base = f"{prefix}-{now.strftime(STAMP_FORMAT)}"
    yield BranchName(base)
    for n in range(2, MAX_SAME_SECOND):
        yield BranchName(f"{base}-{n}")


def create_snapshot_branch(
    git: Git,
    prefix: str,
    target: Oid,
    why: str,
    now: Optional[dt.datetime] = None,
) -> BranchName:
    """Create the first free snapshot branch name; never moves or overwrites an existing ref.

    `git update-ref <ref> <oid> ""` checks that the ref is absent *under its lock*; libgit2's
    create-without-force checked before locking, and concurrent snapshots overwrote each other.
    """
    for name in candidate_names(prefix, now or dt.datetime.now()):
        rc, _, err = git.run("update-ref", "-m", why, name.ref, target, "", check=False)
        if rc == 0:
            return name
        if not _taken(git, name, err):
            raise GitSlurmError(f"cannot create branch {name}: {git_reason(err)}")
    raise GitSlurmError(f"more than {MAX_SAME_SECOND} snapshot branches in one second")


def _taken(git: Git, name: BranchName, err: str) -> bool:
    """Did creating `name` fail only because the name is in use: the branch (or one under
    `name/`) exists, or a concurrent snapshot holds its lock? Anything else is a real failure
    that every further name would meet too."""
    if "File exists" in err:  # `<ref>.lock`: another snapshot is creating this very name
        return True
    return bool(git.out("for-each-ref", "--count=1", "--format=%(refname)", "--", name.ref))


def stamp_time(name: str) -> Optional[dt.datetime]:
    """The local time a snapshot branch name records, if it has the snapshot form."""
    match = STAMP_PATTERN.search(name)
    if match is None:
        return None
    try:
        return dt.datetime.strptime(match.group(1), STAMP_FORMAT)
    except ValueError:  # the form, but no real time (`backup-20240231-120000`): not ours
        return None


def delete_snapshot_branch(git: Git, name: BranchName, expected: Oid) -> None:
    """Delete a branch we made, only if it still points where we left it (checked under the
    ref's lock by git; a branch someone moved meanwhile is theirs now)."""
    git.run(
        "update-ref", "-m", "git-slurm: snapshot abandoned", "-d", name.ref, expected, check=False
    )
