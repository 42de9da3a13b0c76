"""The one place that uses pygit2: objects, commits and refs."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Optional

import pygit2

from git_slurm.errors import GitSlurmError
from git_slurm.names import BranchName, Oid


def open_repository(git_dir: Path) -> pygit2.Repository:
    """The repository whose (possibly linked-worktree) git dir is `git_dir`."""
    try:
        return pygit2.Repository(str(git_dir))
    except pygit2.GitError as exc:
        raise GitSlurmError(f"cannot open repository {git_dir}: {exc}") from exc


def head_commit(repo: pygit2.Repository) -> Optional[Oid]:
    """HEAD's commit, or None in a repository with no commit yet."""
    if repo.head_is_unborn:
        return None
    return Oid(str(repo.head.target))


def head_branch(repo: pygit2.Repository) -> Optional[str]:
    """The short name of the checked-out branch (also when unborn), or None when detached."""
    if repo.head_is_detached:
        return None
    target = repo.references["HEAD"].target
    name = str(target)
    return name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else name


def tree_of(repo: pygit2.Repository, commit: Oid) -> Oid:
    obj = repo[commit]
    assert isinstance(obj, pygit2.Commit)
    return Oid(str(obj.tree_id))


def write_tree_from_index(repo: pygit2.Repository, index_file: Path) -> Oid:
    """Write the tree recorded in an index file (entries only; no working tree is read)."""
    try:
        index = pygit2.Index(str(index_file))
        return Oid(str(index.write_tree(repo)))
    except pygit2.GitError as exc:
        raise GitSlurmError(f"cannot write the snapshot tree: {exc}") from exc


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    """The user's identity, or a sane one made from the login and host when none is set."""
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        user = getpass.getuser() or "git-slurm"
        return pygit2.Signature(user, f"{user}@{socket.gethostname() or 'localhost'}")


def create_commit(repo: pygit2.Repository, tree: Oid, parents: list[Oid], message: str) -> Oid:
    """A commit object that no ref points to yet."""
    who = signature(repo)
    oid = repo.create_commit(
        None, who, who, message, pygit2.Oid(hex=tree), [pygit2.Oid(hex=p) for p in parents]
    )
    return Oid(str(oid))


def is_valid_branch_name(name: str) -> bool:
    return bool(pygit2.reference_is_valid_name(f"refs/heads/{name}"))


def branch_exists(repo: pygit2.Repository, name: BranchName) -> bool:
    return name.ref in repo.references


def delete_branch_if(repo: pygit2.Repository, name: BranchName, expected: Oid) -> None:
    """Delete a branch we made, only if it still points where we left it."""
    ref = repo.references.get(name.ref)
    if ref is not None and str(ref.target) == expected:
        ref.delete()


def branch_target(repo: pygit2.Repository, name: BranchName) -> Optional[Oid]:
    ref = repo.references.get(name.ref)
    return None if ref is None else Oid(str(ref.resolve().target))
