"""The user's intent wins: a worktree they locked with their own reason is never re-locked,
reused or removed; the worktrees of a repository they moved are found again and reclaimed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, run_tool
from test_gc import age

from git_slurm.records import admin_dir_of, lock_text


def gc(repo: Repo, *args: str, cwd: Path | None = None) -> list[dict[str, Any]]:
    res = run_tool("slurm-gc", "--json", "--older-than", "0m", *args, cwd=cwd or repo.path)
    assert res.returncode == 0, res.stderr
    worktrees: list[dict[str, Any]] = res.json()["worktrees"]
    return worktrees


@pytest.mark.parametrize(
    "reason", [["--reason", "keep: paper figures"], []], ids=["reason", "bare"]
)
def test_a_worktree_the_user_locked_is_not_reused_relocked_or_removed(
    repo: Repo, reason: list[str]
) -> None:
    repo.write("pkg/mod.py", "X = 'for the paper'\n")
    first = repo.snapshot_json()
    worktree = Path(first["worktree"])
    repo.git("worktree", "unlock", str(worktree))
    repo.git("worktree", "lock", *reason, str(worktree))
    admin = admin_dir_of(worktree)
    assert admin is not None
    locked = lock_text(admin)

    again = repo.snapshot_json()  # the identical tree: would reuse it
    assert again["reused"] is False and again["worktree"] != str(worktree)
    assert lock_text(admin) == locked
    age(worktree, 30 * 86400)
    assert lock_text(admin) == locked  # writing the record keeps the user's lock too

    for force in ([], ["--force"]):
        (kept,) = [w for w in gc(repo, *force) if w["path"] == str(worktree)]
        assert (kept["action"], kept["reason"]) == ("kept", "locked")
    assert worktree.is_dir() and lock_text(admin) == locked


@pytest.mark.parametrize("dry_run", [False, True], ids=["remove", "dry-run"])
def test_the_worktrees_of_a_moved_repository_are_found_and_reclaimed(
    repo: Repo, tmp_path: Path, dry_run: bool
) -> None:
    worktree = Path(repo.snapshot_json()["worktree"])
    age(worktree, 30 * 86400)
    moved = tmp_path / "moved"
    shutil.move(str(repo.path), moved)
    moved_repo = Repo(moved)
    new_place = moved / worktree.relative_to(repo.path)
    assert new_place.is_dir()

    (only,) = gc(moved_repo, *(["--dry-run"] if dry_run else []), cwd=moved)
    assert only["path"] == str(new_place)
    assert only["action"] == "removed" and only["reason"] == "unused", only
    assert new_place.exists() is dry_run
    if not dry_run:
        assert moved_repo.git("worktree", "list", "--porcelain").count("worktree ") == 1
