"""Snapshot branch names: `<prefix>-YYYYMMDD-HHMMSS`, unique, created atomically."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Optional

from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.gitcli import Git
from git_slurm.names import BranchName, Oid

STAMP_FORMAT = "%Y%m%d-%H%M%S"
STAMP_PATTERN = re.compile(r"-(\d{8}-\d{6})(?:-(\d+))?$")
MAX_SAME_SECOND = 10_000
# how a snapshot branch's creation begins in its reflog: gc and the reminder recognise a
# snapshot branch whose worktree is gone by it
SNAPSHOT_REFLOG_MARK = "git-slurm: snapshot of "


def validate_prefix(git: Git, prefix: str) -> None:
    """A prefix is good when `<prefix>-<stamp>` is a valid branch name."""
    example = f"refs/heads/{prefix}-20000101-000000"
    if not prefix or git.run("check-ref-format", example, check=False)[0] != 0:
        raise UsageError(f"invalid branch prefix {prefix!r}: it must make a valid branch name")


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
        if "exists" not in err and "lock" not in err.lower():
            raise GitSlurmError(f"cannot create branch {name}: {err.strip()}")
    raise GitSlurmError(f"more than {MAX_SAME_SECOND} snapshot branches in one second")


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
