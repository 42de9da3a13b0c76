"""A snapshot worktree's index must not stay "racily clean": git trusts an entry's stat data
only when the file is older (in whole seconds) than the index, and compares every other entry
by content at every check. A checkout writes files and index in the same second, so every
reuse check and job start re-read the whole worktree until something rewrote the index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gitrepo import Repo, git

from git_slurm.faults import ENV as FAULT

SNAPSHOT = str(Path(sys.executable).parent / "git-slurm-snapshot")
SECOND = 10**9


def tracked_mtimes(worktree: Path) -> list[int]:
    names = git(worktree, "ls-files", "-z").split("\0")[:-1]
    return [os.lstat(worktree / rel).st_mtime_ns for rel in names]


def index_of(worktree: Path) -> Path:
    return Path(git(worktree, "rev-parse", "--absolute-git-dir").strip()) / "index"


def racily_clean(worktree: Path) -> bool:
    """Does git have to compare some entry by content, as its stat data cannot be trusted?"""
    index = os.stat(index_of(worktree)).st_mtime_ns // SECOND
    return any(mtime // SECOND >= index for mtime in tracked_mtimes(worktree))


def make_racily_clean(worktree: Path) -> int:
    """Put the worktree where a checkout leaves it: files and index dated in one second (a
    past one, T), the index's stat data fresh. Returns T in ns."""
    past = (time.time_ns() // SECOND - 100) * SECOND
    for rel in git(worktree, "ls-files", "-z").split("\0")[:-1]:
        os.utime(worktree / rel, ns=(past, past), follow_symlinks=False)
    git(worktree, "-c", "core.trustctime=false", "update-index", "-q", "--refresh")
    index = index_of(worktree)
    os.utime(index, ns=(past + SECOND // 2, past + SECOND // 2))
    (index.parent / "git-slurm-settled").unlink(missing_ok=True)
    assert racily_clean(worktree)
    return past


def test_a_checked_out_worktree_is_handed_out_without_racily_clean_entries(repo: Repo) -> None:
    """The snapshot stops (its own SIGSTOP) once it made the worktree, until the checkout's
    second has passed: its index, dated after the files before anyone saw them, is trusted."""
    proc = subprocess.Popen(
        [SNAPSHOT, "--json", "--no-push"],
        cwd=repo.path,
        env={**os.environ, FAULT: "links:STOP"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), proc.communicate()
    (index,) = (repo.path / ".git" / "worktrees").glob("*/index")
    written = os.stat(index).st_mtime_ns
    while time.time_ns() // SECOND <= written // SECOND:  # the clock itself is the condition
        time.sleep(0.05)
    while True:  # one stop per link
        os.kill(proc.pid, signal.SIGCONT)
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            break
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, proc.communicate()
    worktree = Path((index.parent / "gitdir").read_text().strip()).parent
    assert not racily_clean(worktree)


def test_a_reuse_ends_racily_clean_entries_once(repo: Repo) -> None:
    worktree = Path(repo.snapshot_json("--no-push")["worktree"])
    past = make_racily_clean(worktree)
    again = repo.snapshot_json("--no-push")
    assert again["reused"] and again["worktree"] == str(worktree)
    assert os.stat(index_of(worktree)).st_mtime_ns // SECOND > past // SECOND
    assert not racily_clean(worktree)


def test_an_edit_hidden_by_racily_clean_stat_data_still_stops_the_reuse(repo: Repo) -> None:
    """Same inode, same size, the mtime set back into the index's second: only git's content
    comparison of racily clean entries sees it, and the settling refresh must not hide it."""
    worktree = Path(repo.snapshot_json("--no-push")["worktree"])
    past = make_racily_clean(worktree)
    module = worktree / "pkg" / "model.py"
    with module.open("r+") as handle:  # in place: root ignores the read-only bits
        handle.write("VERSION = 9\n")
    os.utime(module, ns=(past, past))
    again = repo.snapshot_json("--no-push")
    assert not again["reused"] and again["worktree"] != str(worktree)
    assert (Path(again["worktree"]) / "pkg" / "model.py").read_text() == "VERSION = 1\n"
