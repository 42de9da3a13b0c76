"""Submodules: recorded at their commits; with --submodules checked out in the worktree from
the user's own clones, never over the network; removed again by `git slurm-gc`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from gitrepo import Repo, git, run_tool, user_state
from silentserver import SilentServer
from test_gc import age


@pytest.fixture
def project(tmp_path: Path, silent_server: SilentServer) -> Repo:
    """A repository with submodule `lib` (which has submodule `inner`), cloned here, whose
    URLs then point at a server that never answers."""
    inner = Repo.create(tmp_path / "inner-origin")
    lib = Repo.create(tmp_path / "lib-origin")
    lib.git("submodule", "add", "-q", str(inner.path), "inner")
    lib.commit("add inner")
    repo = Repo.create(tmp_path / "repo")
    repo.git("submodule", "add", "-q", str(lib.path), "lib")
    repo.git("submodule", "update", "-q", "--init", "--recursive")
    repo.commit("add lib")
    url = silent_server.url
    repo.git("config", "submodule.lib.url", url)
    git(repo.path / "lib", "config", "remote.origin.url", url)
    git(repo.path / "lib", "config", "submodule.inner.url", url)
    git(repo.path / "lib/inner", "config", "remote.origin.url", url)
    return repo


def snapshot(repo: Repo, *args: str) -> dict[str, object]:
    result = run_tool("slurm-snapshot", "--json", "--no-push", *args, cwd=repo.path, timeout=60)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = result.json()
    return data


def moved_on(repo: Repo) -> str:
    """The submodule moves to a new commit (not committed in the superproject) and has dirty
    and untracked files; returns its new commit."""
    lib = Repo(repo.path / "lib")
    lib.write("lib.py", "VERSION = 2\n")
    lib.git("add", "lib.py")
    lib.git("commit", "-q", "-m", "lib moves on")
    lib.write("lib.py", "VERSION = 'dirty, not committed'\n")
    lib.write("scratch.txt", "untracked\n")
    return lib.git("rev-parse", "HEAD").strip()


def test_recorded_at_their_commits_and_left_empty(project: Repo) -> None:
    recorded = moved_on(project)
    before = user_state(project.path)

    snap = snapshot(project)

    entry = git(project.path, "ls-tree", str(snap["commit"]), "lib").split()
    assert entry[:3] == ["160000", "commit", recorded]
    lib = Path(str(snap["worktree"])) / "lib"
    assert lib.is_dir() and not any(lib.iterdir())
    assert user_state(project.path) == before


def test_checked_out_from_the_local_clones(project: Repo, silent_server: SilentServer) -> None:
    recorded = moved_on(project)
    inner_recorded = git(project.path / "lib/inner", "rev-parse", "HEAD").strip()
    before = user_state(project.path)
    lib_state = user_state(project.path / "lib", project.path / ".git/modules/lib")

    snap = snapshot(project, "--submodules")

    lib = Path(str(snap["worktree"])) / "lib"
    assert git(lib, "rev-parse", "HEAD").strip() == recorded
    assert (lib / "lib.py").read_text() == "VERSION = 2\n"  # the commit, not the dirty edit
    assert not (lib / "scratch.txt").exists()
    assert git(lib / "inner", "rev-parse", "HEAD").strip() == inner_recorded
    assert (lib / "inner/pkg/model.py").read_text() == "VERSION = 1\n"
    assert not (lib / "lib.py").stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert silent_server.connections() == 0
    assert user_state(project.path) == before
    assert user_state(project.path / "lib", project.path / ".git/modules/lib") == lib_state


def test_config_default_and_reuse(project: Repo) -> None:
    project.git("config", "slurm.submodules", "true")
    first = snapshot(project)
    assert (Path(str(first["worktree"])) / "lib/pkg/model.py").exists()
    again = snapshot(project)
    assert again["reused"] and again["worktree"] == first["worktree"]
    without = snapshot(project, "--no-submodules")
    assert not without["reused"]  # a worktree with submodules is not one without
    assert not any((Path(str(without["worktree"])) / "lib").iterdir())


def test_a_submodule_not_cloned_here_is_an_error(project: Repo) -> None:
    project.git("submodule", "deinit", "-q", "--force", "lib")
    branches = project.git("branch", "--list")
    worktrees = project.git("worktree", "list", "--porcelain")
    before = user_state(project.path)

    result = run_tool("slurm-snapshot", "--submodules", cwd=project.path, timeout=60)

    assert result.returncode == 2
    assert result.stderr.startswith("error: submodule lib is not cloned")
    assert len(result.stderr.strip().splitlines()) == 1
    assert project.git("branch", "--list") == branches
    assert project.git("worktree", "list", "--porcelain") == worktrees
    assert user_state(project.path) == before


def test_a_recorded_commit_missing_locally_is_an_error_not_a_fetch(
    project: Repo, silent_server: SilentServer, tmp_path: Path
) -> None:
    """lib's own commit records an `inner` commit that the local clone of inner lacks."""
    upstream = Repo(tmp_path / "inner-origin")
    upstream.write("only-upstream.py", "x = 1\n")
    missing = upstream.commit("a commit the local clone never fetched")
    lib = Repo(project.path / "lib")
    lib.git("update-index", "--cacheinfo", f"160000,{missing},inner")
    lib.git("commit", "-q", "-m", "record an inner commit the clone lacks")
    worktrees = project.git("worktree", "list", "--porcelain")

    result = run_tool("slurm-snapshot", "--submodules", cwd=project.path, timeout=60)

    assert result.returncode == 2
    assert f"submodule lib/inner: its recorded commit {missing[:12]} is not in its clone" in (
        result.stderr
    )
    assert silent_server.connections() == 0
    assert project.git("worktree", "list", "--porcelain") == worktrees
    # the half-made submodule worktrees are gone from the clones too
    assert len(git(project.path / "lib", "worktree", "list").splitlines()) == 1


def test_gc_removes_them_through_their_clones(project: Repo) -> None:
    snap = snapshot(project, "--submodules")
    worktree = Path(str(snap["worktree"]))
    age(worktree, 3600)  # past the hand-off to jobs
    assert len(git(project.path / "lib", "worktree", "list").splitlines()) == 2
    before = user_state(project.path)

    result = run_tool("slurm-gc", "--older-than", "0m", "--json", cwd=project.path)

    assert result.returncode == 0, result.stderr
    assert [w["reason"] for w in result.json()["worktrees"]] == ["unused"]
    assert not worktree.exists()
    assert len(git(project.path / "lib", "worktree", "list").splitlines()) == 1
    assert len(git(project.path / "lib/inner", "worktree", "list").splitlines()) == 1
    assert user_state(project.path) == before


def test_gc_keeps_ignored_files_a_job_wrote_inside_a_submodule(project: Repo) -> None:
    """The worktree's own `git status --ignored` does not look into a submodule: a file the
    submodule's .gitignore hides (a checkpoint) must still keep the snapshot."""
    snap = snapshot(project, "--submodules")
    age(Path(str(snap["worktree"])), 3600)
    (Path(str(snap["worktree"])) / "lib/inner/model.ckpt").write_text("weights\n")  # ignored

    result = run_tool("slurm-gc", "--older-than", "0m", "--json", cwd=project.path)

    assert result.returncode == 0, result.stderr
    (report,) = result.json()["worktrees"]
    assert report["reason"] == "job-files"
    assert "lib/inner/model.ckpt" in report["job_files"]
    assert (Path(str(snap["worktree"])) / "lib/inner/model.ckpt").exists()


def test_gc_keeps_files_a_job_wrote_inside_a_submodule(project: Repo) -> None:
    snap = snapshot(project, "--submodules")
    age(Path(str(snap["worktree"])), 3600)
    (Path(str(snap["worktree"])) / "lib/inner/checkpoint.pt").write_text("job output\n")

    result = run_tool("slurm-gc", "--older-than", "0m", "--json", cwd=project.path)

    assert result.returncode == 0, result.stderr
    (report,) = result.json()["worktrees"]
    assert report["reason"] == "job-files"
    assert (Path(str(snap["worktree"])) / "lib/inner/checkpoint.pt").exists()


def test_a_snapshot_killed_before_its_record_is_reclaimed_with_its_submodules(
    project: Repo,
) -> None:
    """SIGKILL after the submodules were checked out, before the record named them: gc finds
    them in the half-made worktree and removes them through their clones too."""
    before = user_state(project.path)
    result = run_tool(
        "slurm-snapshot",
        "--submodules",
        cwd=project.path,
        env={"GIT_SLURM_TEST_FAULT": "record:KILL"},
    )
    assert result.returncode == 128 + 9, result.stderr  # git: "died of signal 9"
    assert len(git(project.path / "lib", "worktree", "list").splitlines()) == 2

    gc = run_tool("slurm-gc", "--older-than", "0m", "--json", cwd=project.path)

    assert gc.returncode == 0, gc.stderr
    (report,) = gc.json()["worktrees"]
    assert report["reason"] == "abandoned"
    assert report["branches"] and report["branches"][0].startswith("slurm-job-")  # named still
    assert len(git(project.path / "lib", "worktree", "list").splitlines()) == 1
    assert len(git(project.path / "lib/inner", "worktree", "list").splitlines()) == 1
    assert user_state(project.path) == before
