"""What HEAD is: its commit and tree (None before the first commit) and its branch.

Read with one `git rev-parse` (a second call only in a repository with no commit yet): a
snapshot that reuses a commit or a worktree then never loads libgit2, whose import alone costs
more than every git call of such a snapshot together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from git_slurm.errors import GitSlurmError, git_reason
from git_slurm.gitcli import Git
from git_slurm.names import Oid


@dataclass(frozen=True)
class Head:
    commit: Optional[Oid]  # None: no commit yet (unborn branch)
    tree: Optional[Oid]
    branch: Optional[str]  # short name of the checked-out branch, None when detached


# `--` keeps a file named HEAD from making the revision ambiguous
HEAD_REVISIONS = ("HEAD", "HEAD^{tree}", "--symbolic-full-name", "HEAD", "--")


def read_head(git: Git) -> Head:
    rc, out, err = git.run("rev-parse", *HEAD_REVISIONS, check=False)
    if rc == 0:
        return head_from_lines(out.splitlines()[:3])
    # no commit yet, or HEAD is broken: only an unborn branch is a state to snapshot
    ref = git.run("symbolic-ref", "-q", "HEAD", check=False)[1].strip()
    if ref and git.run("rev-parse", "-q", "--verify", ref, check=False)[0] == 1:
        return Head(None, None, _short(ref))
    raise GitSlurmError(f"cannot read HEAD: {git_reason(err) or ref}")


def head_from_lines(lines: list[str]) -> Head:
    """What rev-parse said of HEAD_REVISIONS: commit, tree, full branch name (or `HEAD`)."""
    commit, tree, name = lines
    return Head(Oid(commit), Oid(tree), _short(name))


def _short(full_name: str) -> Optional[str]:
    """`refs/heads/x` -> `x`; `HEAD` (what rev-parse says of a detached HEAD) -> None."""
    if full_name == "HEAD":
        return None
    return full_name.removeprefix("refs/heads/")
