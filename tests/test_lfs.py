"""git-lfs files: the snapshot records their pointers, its worktree has their content from the
local LFS store, and nothing is ever downloaded for it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from gitrepo import Repo, git, run_tool, user_state
from silentserver import SilentServer

pytestmark = pytest.mark.usefixtures("git_lfs")

POINTER_START = b"version https://git-lfs.github.com/spec/v1\n"


def lfs_repo(path: Path) -> Repo:
    repo = Repo.create(path)
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.bin")
    (repo.path / "weights.bin").write_bytes(os.urandom(200_000))
    repo.commit("track *.bin with git-lfs")
    return repo


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pointers_recorded_content_materialised(tmp_path: Path) -> None:
    repo = lfs_repo(tmp_path / "repo")
    (repo.path / "weights.bin").write_bytes(os.urandom(100_000))  # an edit
    (repo.path / "new.bin").write_bytes(os.urandom(50_000))  # untracked, LFS-tracked pattern
    before = user_state(repo.path)

    snap = repo.snapshot_json("--no-push")

    worktree = Path(snap["worktree"])
    for name in ("weights.bin", "new.bin"):
        blob = git(repo.path, "cat-file", "blob", f"{snap['commit']}:{name}").encode()
        assert blob.startswith(POINTER_START), name
        assert digest(worktree / name) == digest(repo.path / name)
    assert user_state(repo.path) == before
    assert git(worktree, "status", "--porcelain", "--untracked-files=no") == ""


def test_incremental_snapshot_keeps_lfs_content(tmp_path: Path) -> None:
    repo = lfs_repo(tmp_path / "repo")
    first = Path(repo.snapshot_json("--no-push")["worktree"])
    kept = digest(first / "weights.bin")
    (repo.path / "weights.bin").write_bytes(os.urandom(100_000))
    repo.write("pkg/model.py", "VERSION = 2\n")

    second = repo.snapshot_json("--no-push")

    worktree = Path(second["worktree"])
    assert second["materialised"]["linked"] > 0  # made from the first one's files
    assert digest(worktree / "weights.bin") == digest(repo.path / "weights.bin")
    assert digest(first / "weights.bin") == kept  # the first snapshot is untouched
    assert git(worktree, "status", "--porcelain", "--untracked-files=no") == ""


def test_content_missing_locally_is_never_fetched(
    tmp_path: Path, silent_server: SilentServer
) -> None:
    origin = lfs_repo(tmp_path / "origin")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin.path), str(clone), env={"GIT_LFS_SKIP_SMUDGE": "1"})
    repo = Repo(clone)
    repo.git("lfs", "install", "--local")
    repo.git("config", "lfs.url", silent_server.url)
    (repo.path / "local.bin").write_bytes(os.urandom(30_000))  # its content is local
    before = user_state(repo.path)

    # a download attempt would hang on the silent server: the timeout turns that into a failure
    result = run_tool("slurm-snapshot", "--json", "--no-push", cwd=repo.path, timeout=60)

    assert result.returncode == 0, result.stderr
    worktree = Path(result.json()["worktree"])
    assert (worktree / "weights.bin").read_bytes().startswith(POINTER_START)
    assert digest(worktree / "local.bin") == digest(repo.path / "local.bin")
    assert "weights.bin" in result.stderr and "git lfs fetch" in result.stderr
    assert silent_server.connections() == 0
    assert user_state(repo.path) == before
