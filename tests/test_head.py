"""Reading HEAD with git itself: commit, tree and branch in every state HEAD can be in."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepo import Repo

from git_slurm.errors import GitSlurmError
from git_slurm.head import read_head
from git_slurm.repo import discover


def head_of(repo: Repo) -> tuple[str | None, str | None, str | None]:
    head = read_head(discover(repo.path).git)
    return head.commit, head.tree, head.branch


def test_on_a_branch(repo: Repo) -> None:
    repo.git("switch", "-q", "-c", "feature/x")
    expected = (repo.git("rev-parse", "HEAD").strip(), repo.git("rev-parse", "HEAD^{tree}").strip())
    assert head_of(repo) == (*expected, "feature/x")


def test_detached(repo: Repo) -> None:
    repo.git("checkout", "-q", "--detach")
    commit, _, branch = head_of(repo)
    assert (commit, branch) == (repo.git("rev-parse", "HEAD").strip(), None)


def test_a_file_named_head_is_not_a_revision(repo: Repo) -> None:
    repo.write("HEAD", "a file, not a revision\n")
    assert head_of(repo)[0] == repo.git("rev-parse", "HEAD").strip()


def test_unborn(tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "new", commit=False)
    assert head_of(repo) == (None, None, repo.git("symbolic-ref", "--short", "HEAD").strip())


def test_a_branch_pointing_at_a_missing_object_is_an_error(repo: Repo) -> None:
    branch = repo.git("symbolic-ref", "HEAD").strip()
    ref_file = repo.path / ".git" / branch
    repo.git("pack-refs", "--all", "--prune")  # the ref now lives in packed-refs only
    assert not ref_file.exists()
    ref_file.parent.mkdir(parents=True, exist_ok=True)
    ref_file.write_text("1" * 40 + "\n")  # git reads the loose ref first
    with pytest.raises(GitSlurmError, match="cannot read HEAD"):
        head_of(repo)
