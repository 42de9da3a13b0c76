"""Children end with everything they started: a process group, killed as one, leaves no
process behind, however fast the child forks; a helper that keeps a pipe open does not hold
the caller past its bound."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from git_slurm import processes
from git_slurm.errors import GitSlurmError
from git_slurm.gitcli import run_git
from git_slurm.processes import run_bounded

FORK_LOOP = "while :; do sleep 600 & echo $! >> {pids}; done"


def alive(pid: int) -> bool:
    """Is `pid` a process that has not exited (a zombie has)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def started(pids: Path) -> list[int]:
    return [int(p) for p in pids.read_text().split()] if pids.exists() else []


def test_a_git_child_forking_as_fast_as_it_can_leaves_nothing_behind(tmp_path: Path) -> None:
    """git runs an alias that forks `sleep`s in a loop until the timeout kills it: every one
    of them goes too (a walk of /proc misses those forked after it looked)."""
    pids = tmp_path / "pids"
    loop = FORK_LOOP.format(pids=pids)
    with pytest.raises(GitSlurmError, match="timed out"):
        run_git(["-c", f"alias.forks=!sh -c '{loop}'", "forks"], cwd=tmp_path, timeout=1.0)
    assert len(started(pids)) > 10
    assert [pid for pid in started(pids) if alive(pid)] == []


def test_a_client_that_never_answers_is_killed_with_its_helpers(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 600 & echo $! >> {pids}; exec sleep 600"
    with pytest.raises(subprocess.TimeoutExpired):
        run_bounded(["sh", "-c", script], env={"PATH": "/usr/bin:/bin"}, timeout=0.5)
    assert started(pids) and [pid for pid in started(pids) if alive(pid)] == []


def test_an_answer_is_read_although_a_helper_keeps_the_pipe_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client exits at once but leaves a helper holding stdout: its answer counts, and
    the helper does not outlive the call, also not for the instant in which the kernel has
    closed a killed helper's pipe but not yet ended it (so, many times over)."""
    monkeypatch.setattr(processes, "PIPE_GRACE", 0.02)
    for attempt in range(20):
        pids = tmp_path / f"pids{attempt}"
        script = f"sleep 600 & echo $! >> {pids}; echo answer"
        rc, out, _ = run_bounded(["sh", "-c", script], env={"PATH": "/usr/bin:/bin"}, timeout=60)
        assert (rc, out) == (0, "answer\n")
        assert started(pids) and [pid for pid in started(pids) if alive(pid)] == []
