"""A snapshot killed between reserving its worktree's directory and `git worktree add` left
the directory, empty, in a worktree dir that repositories may share: the next snapshot that
makes a worktree there removes it, and never one that a live snapshot still holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gitrepo import Repo

from git_slurm.faults import ENV as FAULT

SNAPSHOT = str(Path(sys.executable).parent / "git-slurm-snapshot")


def started(repo: Repo, shared: Path, fault: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SNAPSHOT, "--json", "--no-push", "--worktree-dir", str(shared)],
        cwd=repo.path,
        env={**os.environ, FAULT: fault},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_empty_directory_of_a_killed_snapshot_is_removed_by_the_next(
    repo: Repo, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    killed = started(repo, shared, "reserved:KILL")
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    (left,) = shared.iterdir()
    assert left.is_dir() and not any(left.iterdir())
    kept = shared / "notes-20240101-120000"  # of a snapshot's name, but with something in it
    kept.mkdir()
    (kept / "todo.txt").write_text("mine\n")
    other = Repo.create(tmp_path / "other")  # another repository sharing the worktree dir
    made = other.snapshot_json("--no-push", "--worktree-dir", str(shared))
    assert all(any(p.iterdir()) for p in shared.iterdir())  # (`left`'s name may be reused)
    assert sorted(p.name for p in shared.iterdir()) == sorted(
        [Path(made["worktree"]).name, kept.name]
    )
    assert (kept / "todo.txt").read_text() == "mine\n"


def test_a_reservation_still_held_is_left_alone(repo: Repo, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first = started(repo, shared, "reserved:STOP")
    _, status = os.waitpid(first.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    (held,) = shared.iterdir()
    other = Repo.create(tmp_path / "other")
    other.write("pkg/model.py", "VERSION = 2\n")
    made = other.snapshot_json("--no-push", "--worktree-dir", str(shared))
    assert held.is_dir() and Path(made["worktree"]) != held
    os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert (held / "pkg" / "model.py").read_text() == "VERSION = 1\n"
